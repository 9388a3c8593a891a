"""Running the engine: the engine lock, the socket and the signals, until it stops.

``migtui engine --foreground`` (and the engine a view starts) run :func:`serve`. The
lock makes one engine per runtime directory; the socket appears once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from typing import IO

from ..protocol.runtime import Runtime
from .engine import Engine
from .server import EngineServer

log = logging.getLogger("migtui.engine")


def lock(rt: Runtime) -> IO[str] | None:
    """The engine lock, or None when another engine holds it."""
    fd = open(rt.lock, "a+")  # noqa: SIM115 (returned open: the lock lasts as long as the file is open)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fd.close()
        return None
    return fd


async def serve(rt: Runtime, *, persist: bool) -> int:
    held = lock(rt)
    if held is None:
        log.info("another engine runs in %s", rt.directory)
        return 3
    engine = Engine(persist=persist, records=rt.directory)
    await engine.durable.adopt()  # what an engine armed here before: watched again at once
    server = EngineServer(engine, rt)
    await server.start()
    rt.pid_file.write_text(f"{os.getpid()}\n")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.stopped.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP ignored: the engine outlives terminals"))
    log.info("engine %d serving %s (%s)", os.getpid(), rt.socket, "stays" if persist else "exits with its last view")
    if not persist:  # a view started us: it attaches within a moment, or we go
        loop.call_later(10.0, engine.maybe_exit_soon)
    try:
        await engine.stopped.wait()
    finally:
        await engine.disarm_own()
        lines = engine.guarding()
        if lines:
            log.warning("stopping while guarding (left as they are, without a deadline): %s", "; ".join(lines))
        await server.close()
        await engine.stop()
        with contextlib.suppress(FileNotFoundError):
            rt.pid_file.unlink()
        held.close()
        log.info("engine %d stopped", os.getpid())
    return 0
