"""``migtui [OPTIONS] MONITOR...``: the live dashboard (the default command).

Everything a user can get wrong is checked before the screen is taken over: a bad
MONITOR, a bad --interval, an unwritable --log-file or no terminal each give one
line on stderr and exit 2. Logging goes to --log-file or nowhere, never to the
terminal the TUI draws on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ..address import LIBVIRT, parse_addresses
from ..errors import AddressError
from ..logfile import setup_logging
from .options import (
    MONITOR_HELP,
    add_bell_argument,
    add_connect_arguments,
    add_policy_arguments,
    add_runtime_argument,
    interval,
    policy_of,
    split_targets,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("monitors", nargs="*", metavar="MONITOR",
                        help=MONITOR_HELP + "; with -c, a bare word is a DOMAIN of its hosts")
    add_connect_arguments(parser)
    parser.add_argument(
        "--interval", type=interval, default=1.0, metavar="SECONDS",
        help="seconds between query-* polls (default: 1; an idle monitor is asked less: docs/design.md);"
             " events are shown at once anyway",
    )
    parser.add_argument(
        "--log-file", metavar="PATH",
        help="append a log to PATH (default: no log at all; never the screen)",
    )
    parser.add_argument(
        "--read-only", action="store_true",
        help="send only query commands: nothing that changes a VM (disables measuring)",
    )
    add_policy_arguments(parser)
    add_bell_argument(parser)
    add_runtime_argument(parser)


def _fail(message: str) -> int:
    print(f"migtui: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        connections, words = split_targets(args)
        addresses = parse_addresses(words)
    except AddressError as err:
        return _fail(str(err))
    if not addresses and not connections:
        return _fail("give MONITOR... (QMP sockets) or -c URI (a libvirt connection)")
    if args.auto_resume and args.read_only:
        return _fail("--auto-resume and --read-only exclude each other: read-only never resumes")
    try:
        setup_logging(args.log_file)
    except OSError as err:
        return _fail(f"--log-file {args.log_file}: {err.strerror or err}")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return _fail("the dashboard needs a terminal; for scripts use 'migtui status MONITOR...'")
    policy = policy_of(args)
    logging.getLogger("migtui").info(
        "dashboard on %s (interval %s s%s%s)", ", ".join(a.display for a in [*addresses, *connections]),
        args.interval, ", read-only" if args.read_only else "", ", auto-resume" if args.auto_resume else "",
    )
    from ..tui.view_run import (
        view_main,  # textual loads only once the arguments are good
    )
    from ..view.client import EngineClient
    from ..view.remote import RemoteSession

    async def setup(client: EngineClient) -> list[str] | None:
        return await client.watch([*addresses, *connections], policy, read_only=args.read_only,
                                  interval=args.interval)

    uris = {str(c.path) for c in connections}

    def follow(session: RemoteSession) -> bool:  # a domain of our -c connections that came later
        return session.address.kind == LIBVIRT and session.address.path in uris

    return asyncio.run(view_main(args.runtime_dir, setup, read_only=args.read_only, bell=args.bell,
                                 follow=follow if connections else None))
