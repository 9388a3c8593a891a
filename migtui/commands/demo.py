"""``migtui demo``: a real lab pair and the dashboard on it, in one command.

For demos and training: it starts the lab (default: the storage scenario, so the
pre-switchover dialog opens), opens the dashboard on both monitors, and starts the
migration a few seconds later, saying when and what to press. Quitting the dashboard
stops both QEMUs: while a migration is under way (or its guest stopped) it asks first,
and every quit prints what happened and what was removed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from functools import partial
from typing import TYPE_CHECKING

from ..address import parse_addresses
from ..errors import LabUsageError, MigtuiError
from ..lab.lab import Lab
from ..lab.scenarios import setup_scenario
from ..logfile import setup_logging
from ..protocol.messages import PolicyInfo
from .options import LabSettings, add_bell_argument, add_lab_arguments, add_runtime_argument, lab_settings

if TYPE_CHECKING:
    from ..tui.app import MigtuiApp
    from ..view.client import EngineClient
    from ..view.remote import RemoteSession


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_lab_arguments(parser, default="storage")
    parser.add_argument("--start-after", type=float, default=3.0, metavar="SECONDS",
                        help="seconds after the dashboard opens to start the migration (default 3)")
    parser.add_argument("--log-file", metavar="PATH", help="append a log to PATH (default: none)")
    parser.add_argument("--auto-resume", action="store_true",
                        help="resume the pause at once when its checklist passes (default: the dialog asks)")
    add_bell_argument(parser)
    add_runtime_argument(parser)


async def _main(args: argparse.Namespace, settings: LabSettings) -> int:
    from ..tui.view_run import (  # textual only once the arguments are good
        stop_engine,
        view_main,
    )

    lab = Lab(memory_mib=args.memory, dirty_mib=args.dirty, disk=True, disk_mib=args.disk_size,
              dirty_rate_mib_s=settings.rate, accel=settings.accel, qemu_binary=args.qemu,
              dirty_ring=args.dirty_ring)
    # The demo's own engine, in its own runtime directory: it never meets the user's.
    runtime_dir = args.runtime_dir or tempfile.mkdtemp(prefix="migtui-demo-")
    print(f"migtui demo: {args.scenario}: {settings.scenario.summary}", flush=True)
    shown: list[MigtuiApp] = []
    try:
        await setup_scenario(lab, settings.scenario, settings.bandwidth, settings.downtime_limit,
                             say=lambda line: print(f"migtui demo: {line}", flush=True))
        addresses = parse_addresses([f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"])
        # The lab armed the source, not migtui: name the deadline explicitly so the demo's
        # pause is guarded like migtui's own (60 s, then abort).
        explicit = {"max_pause", "on_max_pause"} | ({"auto_resume"} if args.auto_resume else set())
        policy = PolicyInfo(auto_resume=args.auto_resume, explicit=sorted(explicit))

        async def watch(client: EngineClient) -> list[str]:
            return await client.watch(addresses, policy, read_only=False, interval=1.0)

        then = NEXT[settings.scenario.pause]

        def start_later(app: MigtuiApp) -> None:
            shown.append(app)
            app.quit_question = partial(quit_question, app)

            async def start_migration() -> None:
                app.notify(f"demo: the migration starts in {args.start_after:g} s; {then}", timeout=args.start_after)
                await asyncio.sleep(args.start_after)
                try:
                    await lab.migrate()
                    app.notify(f"demo: migration started; {then}", timeout=8)
                except MigtuiError as err:
                    app.notify(f"lab: {err}", severity="error")

            app.call_later(lambda: app.run_worker(start_migration(), exit_on_error=False))

        return await view_main(runtime_dir, watch, read_only=False, before_run=start_later,
                               prog="migtui demo", report_guard=False, bell=args.bell)
    finally:
        summary = outcome(shown[0]) if shown else "the dashboard did not open"
        await stop_engine(runtime_dir)
        await lab.stop()
        if not args.runtime_dir:
            shutil.rmtree(runtime_dir, ignore_errors=True)
        print(f"migtui demo: {summary}", flush=True)
        print(f"migtui demo: removed both QEMUs, the demo's engine and {lab.directory}", flush=True)


NEXT = {True: "at the pause its dialog opens: y resumes, x aborts",
        False: "watch the passes converge; x aborts, ? help"}


def _source(app: MigtuiApp) -> RemoteSession | None:
    return app.sessions.get("src")


def quit_question(app: MigtuiApp) -> tuple[str, str] | None:
    """Quitting the demo stops both QEMUs: asked first while a migration is under way."""
    src = _source(app)
    if src is None:
        return None
    if src.pause.paused:
        at_stake = "the source guest is stopped before switchover: quitting stops it for good with both QEMUs"
    elif src.state.migration.is_running:
        at_stake = f"the migration is {src.state.migration_status}: quitting stops it with both QEMUs"
    else:
        return None
    return "Quit the demo?", f"{at_stake}, and removes the lab's files."


def outcome(app: MigtuiApp) -> str:
    """The demo's migration in one line: how it ended, its downtime."""
    src = _source(app)
    if src is None:
        return "no migration"
    state = src.state
    status = state.migration_status
    if status == "completed":
        downtime = f", downtime {state.final_downtime_ms} ms" if state.final_downtime_ms is not None else ""
        return f"migration completed{downtime}"
    if src.pause.paused:
        return "quit during the pause: the guest was stopped; no switchover"
    if status in ("none", ""):
        return "quit before the migration started"
    if status == "cancelled":
        return "migration aborted: the source guest ran on"
    return f"quit with the migration {status}: it did not finish"


def run(args: argparse.Namespace) -> int:
    try:
        settings = lab_settings(args)
    except LabUsageError as err:
        print(f"migtui demo: {err}", file=sys.stderr)
        return 2
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("migtui demo: needs a terminal (for scripts: migtui lab + migtui status)", file=sys.stderr)
        return 2
    try:
        setup_logging(args.log_file)
    except OSError as err:
        print(f"migtui demo: --log-file {args.log_file}: {err.strerror or err}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(args, settings))
    except MigtuiError as err:
        print(f"migtui demo: {err}", file=sys.stderr)
        return 1
