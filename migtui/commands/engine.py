"""``migtui engine``: run the user's engine; ``migtui engine stop``: stop it.

Views start an engine by themselves when none runs; this command is for those who
keep one under systemd or in a tmux window (``--foreground``). An engine started
here stays until ``migtui engine stop``; one a view started exits with its last view
once it guards nothing. ``stop`` refuses while the engine guards a pause or an armed
migration (the guard would be gone): ``--force`` stops it anyway. An engine that does not
answer (stopped by SIGSTOP, hung) is named with its pid and what to do; ``--force``
ends it by its pid (SIGTERM, then SIGKILL), once /proc shows it is this user's migtui
engine holding this runtime directory's lock.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..engine.serve import lock, serve
from ..errors import MigtuiError
from ..logfile import setup_logging
from ..protocol.runtime import Runtime, runtime
from ..view import engine_process
from ..view.client import EngineClient, EngineError, EngineNotRunning, spawn_engine
from .options import add_runtime_argument

STOP_CALL_S = 10.0  # how long `engine stop` waits for each answer (then the request expires)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["start", "stop"], default="start",
                        help="start (default) or stop the engine")
    parser.add_argument("--foreground", action="store_true", help="run in this process (systemd, tmux)")
    parser.add_argument("--force", action="store_true",
                        help="stop even while the engine guards a pause; end one that does not answer (stopped, hung)"
                             " by its pid")
    parser.add_argument("--log-file", metavar="PATH", help="the engine's log (default: DIR/engine.log)")
    parser.add_argument("--auto", action="store_true", help=argparse.SUPPRESS)  # started by a view
    add_runtime_argument(parser)


async def _stop(rt: Runtime, force: bool) -> int:
    client = EngineClient(rt, kind="migtui engine stop")
    client.call_timeout = STOP_CALL_S
    try:
        await client.connect(start=False)
    except EngineNotRunning:
        print(f"migtui engine: none runs in {rt.directory}")
        return 0
    except EngineError as err:  # there, but it does not answer
        return await _unanswered(rt, str(err), force, client.engine_pid)
    try:
        guarding = await client.guarding(stopping=True)  # what it armed itself it disarms
        if guarding and not force:
            print("migtui engine: not stopped: it guards " + "; ".join(guarding)
                  + " (--force stops it anyway and leaves them without a deadline)", file=sys.stderr)
            return 1
        disarmed = await client.stop_engine(10)
        names = ", ".join(line.split(": ", 1)[0] for line in guarding)
        print("migtui engine: stopped"
              + (f"; disarmed {', '.join(disarmed)}, which it had armed" if disarmed else "")
              + (f"; left as they are, with no deadline any more: {names}" if guarding else ""))
        return 0
    except EngineError as err:  # it answered once, then no more
        return await _unanswered(rt, str(err), force, client.engine_pid)
    finally:
        await client.close()


async def _unanswered(rt: Runtime, why: str, force: bool, pid: int | None) -> int:
    """An engine that does not answer: said (pid, what to do); with --force, ended by its pid."""
    if not force:
        print(f"migtui engine: not stopped: {why}", file=sys.stderr)
        return 1
    proc = engine_process.find(rt, pid)
    if proc is None or proc.gone:
        print(f"migtui engine: not stopped: {why}; and no migtui engine process of this user holds"
              f" {rt.directory} (nothing was signalled)", file=sys.stderr)
        return 1
    how = await engine_process.end(rt, proc)
    print(f"migtui engine: pid {proc.pid} did not answer: {how}; what it guarded is left as it is,"
          " with no deadline any more")
    return 0


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
    if rt.socket.exists() and lock(rt) is None:
        print(f"migtui engine: one already runs in {rt.directory}")
        return 0
    spawn_engine(rt, log_file, auto=False)
    print(f"migtui engine: started in {rt.directory} (log {log_file}); `migtui engine stop` stops it")
    return 0
