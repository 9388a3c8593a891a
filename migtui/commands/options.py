"""Options several commands share: one definition each, so their help and checks agree."""

from __future__ import annotations

import argparse

from ..protocol.messages import PolicyInfo
from ..workflow.policy import DEFAULT_MAX_PAUSE_S, DEFAULT_ON_MAX_PAUSE, ON_MAX_PAUSE

MONITOR_HELP = "[NAME=](PATH | unix:PATH | HOST:PORT | tcp:HOST:PORT | [IPv6]:PORT), one per QEMU monitor"


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime-dir", metavar="DIR", default=None,
                        help="the engine's directory (default: $MIGTUI_RUNTIME_DIR, else $XDG_RUNTIME_DIR/migtui,"
                             " else /tmp/migtui-UID)")


def add_qemu_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qemu", default=None, metavar="PATH",
                        help="the qemu-system-x86_64 to run (default: $MIGTUI_QEMU, else the one on PATH); "
                             "its qemu-img is the one beside it, if any")


def interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0.1 to 3600 seconds")
    return value


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
        "--auto-resume", action="store_true",
        help="resume each pre-switchover pause at once when its checklist passes (finish the mirrors,"
        " migrate-continue); when it fails, wait for the operator. The engine does it, view or not",
    )
    parser.add_argument(
        "--max-pause", type=_seconds, default=None, metavar="SECONDS",
        help=f"longest a pre-switchover pause may last before --on-max-pause applies (default {DEFAULT_MAX_PAUSE_S:g})",
    )
    parser.add_argument(
        "--on-max-pause", choices=ON_MAX_PAUSE, default=None,
        help="at the deadline: abort (default), resume (only if the checklist passes, else abort) or wait",
    )


def policy_of(args: argparse.Namespace) -> PolicyInfo:
    """The policy these flags ask the engine for; ``explicit`` names the flags given."""
    explicit = {flag for flag, given in (("auto_resume", args.auto_resume), ("max_pause", args.max_pause is not None),
                                         ("on_max_pause", args.on_max_pause is not None)) if given}
    return PolicyInfo(auto_resume=args.auto_resume,
                      max_pause_s=args.max_pause if args.max_pause is not None else DEFAULT_MAX_PAUSE_S,
                      on_max_pause=args.on_max_pause or DEFAULT_ON_MAX_PAUSE, explicit=sorted(explicit))
