"""``migtui [OPTIONS] MONITOR...``: the live dashboard (the default command).

Everything a user can get wrong is checked before the screen is taken over: a bad
MONITOR, a bad --interval, an unwritable --log-file or no terminal each give one
line on stderr and exit 2. Logging goes to --log-file or nowhere, never to the
terminal the TUI draws on.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..address import parse_addresses
from ..engine.command import add_runtime_argument
from ..errors import AddressError
from ..logfile import setup_logging
from ..workflow.policy import DEFAULT_MAX_PAUSE_S, DEFAULT_ON_MAX_PAUSE, ON_MAX_PAUSE, Policy

MONITOR_HELP = "[NAME=](PATH | unix:PATH | HOST:PORT | tcp:HOST:PORT | [IPv6]:PORT), one per QEMU monitor"


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0.1 to 3600 seconds")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("monitors", nargs="+", metavar="MONITOR", help=MONITOR_HELP)
    parser.add_argument(
        "--interval", type=_interval, default=1.0, metavar="SECONDS",
        help="seconds between query-* polls (default: 1); events are shown at once anyway",
    )
    parser.add_argument(
        "--log-file", metavar="PATH",
        help="append a log to PATH (default: no log at all; never the screen)",
    )
    parser.add_argument(
        "--read-only", action="store_true",
        help="send only query commands: nothing that changes a VM (disables measuring)",
    )
    parser.add_argument(
        "--auto-resume", action="store_true",
        help="resume each pre-switchover pause at once when its checklist passes (finish the mirrors,"
        " migrate-continue); when it fails, wait for the operator. The engine does it, view or not",
    )
    add_policy_arguments(parser)
    add_runtime_argument(parser)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: give more than 0 and at most 86400 seconds")
    return value


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-pause", type=_seconds, default=None, metavar="SECONDS",
        help=f"longest a pre-switchover pause may last before --on-max-pause applies (default {DEFAULT_MAX_PAUSE_S:g})",
    )
    parser.add_argument(
        "--on-max-pause", choices=ON_MAX_PAUSE, default=None,
        help="at the deadline: abort (default), resume (only if the checklist passes, else abort) or wait",
    )


def policy_of(args: argparse.Namespace) -> Policy:
    """The policy these flags ask for; ``explicit`` names the flags given."""
    explicit = {flag for flag, given in (("auto_resume", args.auto_resume), ("max_pause", args.max_pause is not None),
                                         ("on_max_pause", args.on_max_pause is not None)) if given}
    return Policy(auto_resume=args.auto_resume,
                  max_pause_s=args.max_pause if args.max_pause is not None else DEFAULT_MAX_PAUSE_S,
                  on_max_pause=args.on_max_pause or DEFAULT_ON_MAX_PAUSE, explicit=frozenset(explicit))


def _fail(message: str) -> int:
    print(f"migtui: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        addresses = parse_addresses(args.monitors)
    except AddressError as err:
        return _fail(str(err))
    if args.auto_resume and args.read_only:
        return _fail("--auto-resume and --read-only exclude each other: read-only never resumes")
    try:
        setup_logging(args.log_file)
    except OSError as err:
        return _fail(f"--log-file {args.log_file}: {err.strerror or err}")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return _fail("the dashboard needs a terminal; for scripts use 'migtui status MONITOR...'")
    logging.getLogger("migtui").info(
        "dashboard on %s (interval %s s%s%s)", ", ".join(a.display for a in addresses),
        args.interval, ", read-only" if args.read_only else "", ", auto-resume" if args.auto_resume else "",
    )
    from .view_run import run_view  # textual loads only once the arguments are good

    return run_view(args, addresses)
