"""``migtui engine``: run the user's engine; ``migtui engine stop``: stop it.

Views start an engine by themselves when none runs; this command is for those who
keep one under systemd or in a tmux window (``--foreground``). An engine started
here stays until ``migtui engine stop``; one a view started exits with its last view
once it guards nothing. ``stop`` refuses while the engine guards a pause or an armed
migration (the guard would be gone): ``--force`` stops it anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
from typing import IO

from ..errors import MigtuiError
from ..logfile import setup_logging
from .runtime import Runtime, runtime

log = logging.getLogger("migtui.engine")


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime-dir", metavar="DIR", default=None,
                        help="the engine's directory (default: $MIGTUI_RUNTIME_DIR, else $XDG_RUNTIME_DIR/migtui,"
                             " else /tmp/migtui-UID)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["start", "stop"], default="start",
                        help="start (default) or stop the engine")
    parser.add_argument("--foreground", action="store_true", help="run in this process (systemd, tmux)")
    parser.add_argument("--force", action="store_true", help="stop even while the engine guards a pause")
    parser.add_argument("--log-file", metavar="PATH", help="the engine's log (default: DIR/engine.log)")
    parser.add_argument("--auto", action="store_true", help=argparse.SUPPRESS)  # started by a view
    add_runtime_argument(parser)


def _lock(rt: Runtime) -> IO[str] | None:
    """The engine lock, or None when another engine holds it."""
    fd = open(rt.lock, "a+")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fd.close()
        return None
    return fd


async def serve(rt: Runtime, *, persist: bool) -> int:
    from .engine import Engine
    from .server import EngineServer

    lock = _lock(rt)
    if lock is None:
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
        lock.close()
        log.info("engine %d stopped", os.getpid())
    return 0


async def _stop(rt: Runtime, force: bool) -> int:
    from ..view.client import EngineClient, EngineNotRunning

    client = EngineClient(rt, kind="migtui engine stop")
    try:
        await client.connect(start=False)
    except EngineNotRunning:
        print(f"migtui engine: none runs in {rt.directory}")
        return 0
    try:
        guarding = await client.guarding(stopping=True)  # what it armed itself it disarms
        if guarding and not force:
            print("migtui engine: not stopped: it guards " + "; ".join(guarding)
                  + " (--force stops it anyway and leaves them without a deadline)", file=sys.stderr)
            return 1
        await client.stop_engine(10)
        names = ", ".join(line.split(": ", 1)[0] for line in guarding)
        print("migtui engine: stopped" + (f"; left as they are, with no deadline any more: {names}" if guarding
                                          else ""))
        return 0
    finally:
        await client.close()


def run(args: argparse.Namespace) -> int:
    rt = runtime(args.runtime_dir)
    try:
        rt.ensure()
        if args.action == "stop":
            return asyncio.run(_stop(rt, args.force))
        log_file = args.log_file or str(rt.default_log)
        try:
            setup_logging(log_file)
        except OSError as err:
            print(f"migtui engine: --log-file {log_file}: {err.strerror or err}", file=sys.stderr)
            return 2
        if args.foreground:
            code = asyncio.run(serve(rt, persist=not args.auto))
            if code == 3 and not args.auto:
                print(f"migtui engine: one already runs in {rt.directory}", file=sys.stderr)
                return 1
            return 0 if code == 3 else code
        return _start_detached(rt, log_file)
    except MigtuiError as err:
        print(f"migtui engine: {err}", file=sys.stderr)
        return 1


def _start_detached(rt: Runtime, log_file: str) -> int:
    from ..view.client import spawn_engine

    if rt.socket.exists() and _lock(rt) is None:
        print(f"migtui engine: one already runs in {rt.directory}")
        return 0
    spawn_engine(rt, log_file, auto=False)
    print(f"migtui engine: started in {rt.directory} (log {log_file}); `migtui engine stop` stops it")
    return 0
