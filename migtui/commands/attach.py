"""``migtui attach [--read-only]``: a view of everything the engine watches.

For a second operator, a trainer's class, or coming back after quitting: the state
and the recent history (chart, events) show at once. A read-only view can never
change a VM: the engine refuses its requests, whatever it sends.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..logfile import setup_logging
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
    from ..tui.view_run import view_main

    async def everything(_client: object) -> None:
        return None

    return asyncio.run(view_main(args.runtime_dir, everything, read_only=args.read_only, start=False,
                                 prog="migtui attach", bell=args.bell))
