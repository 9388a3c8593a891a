"""``migtui attach [--read-only]``: a view of everything the engine watches.

For a second operator, a trainer's class, or coming back after quitting: the state
and the recent history (chart, events) show at once. A read-only view can never
change a VM: the engine refuses its requests, whatever it sends.

With no engine running it starts none -- unless an engine left records in the runtime
directory (it was killed, or it crashed, with no view to start another) of what it armed
or of a pause it bounded: then a guest may be stopped before switchover with nothing
bounding it, so attach starts an engine, which takes those sources up again (their pause
and its deadline), and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..engine.records import RecordStore
from ..errors import MigtuiError
from ..logfile import setup_logging
from ..protocol.runtime import runtime
from .options import add_bell_argument, add_runtime_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--read-only", action="store_true",
                        help="a view that can change nothing (the engine refuses its requests)")
    parser.add_argument("--log-file", metavar="PATH", help="append this view's log to PATH")
    add_bell_argument(parser)
    add_runtime_argument(parser)


def run(args: argparse.Namespace) -> int:
    try:
        setup_logging(args.log_file)
    except OSError as err:
        print(f"migtui attach: --log-file {args.log_file}: {err.strerror or err}", file=sys.stderr)
        return 2
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("migtui attach: needs a terminal; for scripts use 'migtui status MONITOR...'", file=sys.stderr)
        return 2
    from ..tui.app import MigtuiApp
    from ..tui.view_run import view_main

    async def everything(_client: object) -> None:
        return None

    left = left_armed(args.runtime_dir)

    def say_started(app: MigtuiApp) -> None:
        if app.engine_client is not None and app.engine_client.started:
            app.engine_notices = [*app.engine_notices, started_for(left)]

    return asyncio.run(view_main(args.runtime_dir, everything, read_only=args.read_only, start=bool(left),
                                 before_run=say_started, prog="migtui attach", bell=args.bell))


def left_armed(runtime_dir: str | None) -> list[str]:
    """``src (unix:/run/vm1.qmp) armed by migtui`` for each source an engine armed and
    recorded in the runtime directory (an engine that ends sets back what it armed, and its
    record goes), and likewise for each pause it guarded (its record goes with the pause)."""
    try:
        store = RecordStore(runtime(runtime_dir).directory)
        return ([f"{r.name} ({r.address.display}) armed by migtui" for r in store.load_all()]
                + [f"{r.name} ({r.address.display}) paused, under its deadline" for r in store.load_guards()])
    except (OSError, MigtuiError):
        return []


def started_for(left: list[str]) -> str:
    return (f"no engine ran: the one before (killed, or it crashed) left {', '.join(left)};"
            " a new engine was started to take it up (a pause, and its deadline)")
