"""``migtui demo``: a real lab pair and the dashboard on it, in one command.

For demos and training: it starts the lab (default: the storage scenario, so the
pre-switchover dialog opens), opens the dashboard on both monitors, and starts the
migration a few seconds later. Quitting the dashboard stops both QEMUs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from .errors import MigtuiError
from .lab.command import SCENARIOS, add_qemu_argument, setup_scenario
from .lab.lab import Lab
from .address import parse_addresses
from .tui.command import setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", choices=[s for s in SCENARIOS if s != "none"], default="storage",
                        help="storage (default): mirror + pause-before-switchover; converge; stuck")
    parser.add_argument("--start-after", type=float, default=3.0, metavar="S",
                        help="seconds after the dashboard opens to start the migration (default 3)")
    parser.add_argument("--memory", type=int, default=128, metavar="MiB", help="guest RAM (default 128)")
    parser.add_argument("--dirty", type=int, default=16, metavar="MiB",
                        help="memory range the guest keeps dirtying (default 16)")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    add_qemu_argument(parser)
    parser.add_argument("--log-file", metavar="PATH", help="append a log to PATH (default: none)")
    parser.add_argument("--auto-resume", action="store_true",
                        help="resume the pause at once when its checklist passes (default: the dialog asks)")


async def _main(args: argparse.Namespace) -> int:
    from .tui.app import make_app  # textual only once the arguments are good

    scenario = SCENARIOS[args.scenario]
    lab = Lab(memory_mib=args.memory, dirty_mib=args.dirty, disk=True,
              dirty_rate_mib_s=scenario.dirty_rate_mib_s, accel=args.accel, qemu_binary=args.qemu)
    print(f"migtui demo: starting a QEMU pair ({args.scenario}) ...", flush=True)
    try:
        await setup_scenario(lab, scenario, scenario.bandwidth_mib_s, None)
        addresses = parse_addresses([f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"])
        app = make_app(addresses, auto_resume=args.auto_resume)

        async def start_migration() -> None:
            await asyncio.sleep(args.start_after)
            try:
                await lab.migrate()
                app.notify(f"lab: migration started ({args.scenario})", timeout=4)
            except MigtuiError as err:
                app.notify(f"lab: {err}", severity="error", timeout=10)

        starter = asyncio.create_task(start_migration())
        try:
            await app.run_async()
        finally:
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starter
        return int(app.return_code or 0)
    finally:
        await lab.stop()


def run(args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("migtui demo: needs a terminal (for scripts: migtui lab + migtui status)", file=sys.stderr)
        return 2
    try:
        setup_logging(args.log_file)
    except OSError as err:
        print(f"migtui demo: --log-file {args.log_file}: {err.strerror or err}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(args))
    except MigtuiError as err:
        print(f"migtui demo: {err}", file=sys.stderr)
        return 1
