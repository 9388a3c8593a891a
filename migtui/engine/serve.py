"""Running the engine: the engine lock, the socket and the signals, until it stops.

``migtui engine --foreground`` (and the engine a view starts) run :func:`serve`. The
lock makes one engine per runtime directory; the socket appears once it listens. The
engine raises its soft limit of file descriptors to the hard one (the shell's default
soft limit is often 1024: views, QMP connections and files share it).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import resource
import signal
import sys
from typing import IO

from ..protocol.runtime import Runtime
from ..whole_file import write_whole
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


def raise_fd_limit() -> int:
    """The soft limit of file descriptors raised to the hard one; returns the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as err:
            log.warning("cannot raise the limit of open files from %d to %d: %s", soft, want, err)
    return int(soft)


def _fail(message: str) -> None:
    """One line on stderr (engine.err for an engine a view started) and in the log."""
    log.error("%s", message)
    with contextlib.suppress(OSError):
        print(f"migtui engine: {message}", file=sys.stderr, flush=True)


async def serve(rt: Runtime, *, persist: bool) -> int:
    held = lock(rt)
    if held is None:
        log.info("another engine runs in %s", rt.directory)
        return 3
    nofile = raise_fd_limit()
    engine = Engine(persist=persist, records=rt.directory)
    await engine.durable.adopt()  # what an engine armed here before: watched again at once
    await engine.guards.adopt()  # and the pauses it guarded on sources it did not arm
    server = EngineServer(engine, rt, nofile=nofile)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(server.loop_error)
    try:
        await server.start()
        # Whole or not at all: it says the engine is up, and one found created but not yet written
        # (the engine stopped in between: a fresh-clone CI run caught it) read as no engine.
        write_whole(rt.pid_file, f"{os.getpid()}\n".encode(), mode=0o644)
    except OSError as err:  # a full runtime directory (tmpfs), most often
        _fail(f"cannot start in {rt.directory}: {err.strerror or err}"
              f"{f' ({err.filename})' if err.filename else ''}")
        await server.close()
        with contextlib.suppress(OSError):
            rt.pid_file.unlink()
        held.close()
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.stop_soon, f"stopped ({signal.Signals(sig).name})")
    loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP ignored: the engine outlives terminals"))
    log.info("engine %d serving %s (%s)", os.getpid(), rt.socket, "stays" if persist else "exits with its last view")
    gc.freeze()  # what start-up made lives as long as the engine: out of every collection's way
    if not persist:  # a view started us: it attaches within a moment, or we go
        loop.call_later(10.0, engine.maybe_exit_soon)
    try:
        await engine.stopped.wait()
    finally:
        await engine.disarm_own()
        lines = engine.guarding()
        if lines:
            log.warning("stopping while guarding (left as they are, without a deadline): %s", "; ".join(lines))
        await server.close(goodbye=engine.stopped_by)
        await engine.stop()
        with contextlib.suppress(FileNotFoundError):
            rt.pid_file.unlink()
        held.close()
        log.info("engine %d stopped", os.getpid())
    return 0
