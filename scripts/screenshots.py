#!/usr/bin/env python3
"""Screenshots of the migtui dashboard, taken during real lab migrations.

    .venv/bin/python scripts/screenshots.py [--out screenshots]

Starts real QEMU pairs (``migtui.lab``) with the lab's scenarios at their normal
4 MiB/s, runs the real app headless on their monitors (``make_app``, the CLI's own
factory) and saves an SVG, then a PNG (``rsvg-convert``), whenever the state the
picture is about has been reached. Every wait is on session state with a deadline;
nothing is staged or replayed. About a minute and a half:

  stuck lab    active.svg           100x30, 30 s into a migration that cannot converge
               dashboard-80x24.svg  the same migration at 80x24
               lost.svg             the destination QEMU killed: its monitor lost
  storage lab  storage-mirror.svg   RAM copy under way, the disk mirror ready
               pre-switchover.svg   QEMU paused before switchover: the dialog
               completed.svg        after `y`: mirror finished, migration completed
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from textual.pilot import Pilot  # noqa: E402

from migtui.address import parse_addresses  # noqa: E402
from migtui.errors import MigtuiError  # noqa: E402
from migtui.lab.lab import MIRROR_JOB, Lab  # noqa: E402
from migtui.lab.scenarios import SCENARIOS, setup_scenario  # noqa: E402
from migtui.logfile import setup_logging  # noqa: E402
from migtui.transport import ConnState, Monitor  # noqa: E402
from migtui.tui.app import COALESCE_S, MigtuiApp, make_app  # noqa: E402
from migtui.tui.widgets.monitor_header import MonitorHeader  # noqa: E402
from migtui.workflow.session import MonitorSession  # noqa: E402

try:  # issue 4's dialog; without it the pre-switchover shot is the dashboard alone
    from migtui.tui.screens.switchover import SwitchoverScreen
except ImportError:  # pragma: no cover - depends on the checkout
    SwitchoverScreen = None  # type: ignore[assignment,misc]  # a checkout before the dialog: None says so

WIDE = (100, 30)
SMALL = (80, 24)
TERM = "xterm-256color"  # the screenshots show the full-colour theme whatever runs the script
ACTIVE_FOR_S = 30.0  # history the chart shows in active.png (the issue asks for >= 20 s)
SMALL_ACTIVE_FOR_S = 20.0
# Seconds of dirty-rate history before the mirror shot: QEMU reports a dirty rate only
# from the second pass (~4 s in) and the chart draws complete 2 s buckets only.
MIRROR_DIRTY_FOR_S = 4.0
SETTLE_S = 4 * COALESCE_S
CLOCK_SHOWN_S = 1.0  # the downtime clock has visibly run when the dialog is shot


class ShotError(Exception):
    """A wait ran out: the picture would not show what it claims."""


def say(text: str) -> None:
    # The real stdout: while an app runs, textual captures sys.stdout.
    print(f"screenshots: {text}", file=sys.__stdout__, flush=True)


async def until(pilot: Pilot, pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise ShotError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.05)


class Camera:
    """Saves SVGs and converts them to PNGs (if rsvg-convert is there)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rsvg = shutil.which("rsvg-convert")
        self.files: list[Path] = []

    async def shoot(self, app: MigtuiApp, pilot: Pilot, name: str) -> None:
        # The app merges session changes for COALESCE_S before it repaints, and a
        # resized field needs a layout pass after that: let both land first.
        await pilot.pause(SETTLE_S)
        await pilot.pause()
        svg = self.out / f"{name}.svg"
        app.save_screenshot(svg.name, str(self.out))
        self.files.append(svg)
        if self.rsvg is None:
            say(f"{svg} (no PNG: apt-get install -y librsvg2-bin for rsvg-convert)")
            return
        png = svg.with_suffix(".png")
        text = for_librsvg(svg.read_text(encoding="utf-8"))
        # Twice the SVG's size: sharp text in the README on high-density screens.
        subprocess.run([self.rsvg, "--zoom", "2", "--output", str(png)], input=text.encode(), check=True)
        self.files.append(png)
        say(f"{svg} + {png.name}")


# The SVG's cell is 12.2 px wide; DejaVu Sans Mono (1233/2048 em per glyph) fills it
# at this size. librsvg ignores textLength, so at textual's 20 px a long run of "─"
# falls short of the corner that ends it.
PNG_FONT = "font-family: DejaVu Sans Mono, monospace;\n        font-size: 20.26px;"


def for_librsvg(svg: str) -> str:
    """The SVG as librsvg should rasterise it (the saved SVG stays as textual wrote it)."""
    # librsvg drops a span's leading no-break space (" · connected" would print as
    # "· connected"); browsers keep it.
    svg = svg.replace("<svg ", '<svg xml:space="preserve" ', 1)
    return re.sub(r"font-family: Fira Code, monospace;\s*font-size: 20px;", PNG_FONT, svg, count=1)


def app_on(lab: Lab) -> tuple[MigtuiApp, MonitorSession, MonitorSession]:
    """The dashboard as `migtui src=... dst=...` builds it (default 1 s interval)."""
    addresses = parse_addresses([f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"])
    app = make_app(sessions=[MonitorSession(Monitor(address)) for address in addresses], term=TERM)
    return app, app.sessions["src"], app.sessions["dst"]


async def connected(pilot: Pilot, *sessions: MonitorSession) -> None:
    await until(pilot, lambda: all(s.connected and s.polls >= 1 for s in sessions), 15, "both monitors connected")


def history_span(session: MonitorSession) -> float:
    samples = list(session.state.history)
    return samples[-1].time - samples[0].time if len(samples) >= 2 else 0.0


def dirty_span(session: MonitorSession) -> float:
    """Seconds covered by the samples that carry a dirty rate."""
    times = [s.time for s in session.state.history if s.dirty_rate_bytes_per_s]
    return times[-1] - times[0] if len(times) >= 2 else 0.0


def migrating_with_rates(session: MonitorSession, seconds: float) -> Callable[[], bool]:
    """Active, with ``seconds`` of dirty-vs-sent history and both rates in the last sample."""
    def check() -> bool:
        state = session.state
        latest = state.history.latest
        return (state.migration_status == "active" and history_span(session) >= seconds
                and latest is not None and bool(latest.dirty_rate_bytes_per_s)
                and bool(latest.throughput_bytes_per_s))
    return check


async def new_lab(scenario: str) -> Lab:
    chosen = SCENARIOS[scenario]
    lab = Lab(memory_mib=128, dirty_mib=16, disk=chosen.storage, dirty_rate_mib_s=chosen.dirty_rate_mib_s)
    try:
        await setup_scenario(lab, chosen, chosen.bandwidth_mib_s, None)
    except BaseException:
        await lab.stop()
        raise
    say(f"lab {scenario} up ({lab.accel}, {chosen.bandwidth_mib_s:g} MiB/s)")
    return lab


# ---------------------------------------------------------------------- stuck lab


async def stuck_shots(camera: Camera) -> None:
    lab = await new_lab("stuck")
    try:
        app, src, dst = app_on(lab)
        async with app.run_test(size=WIDE) as pilot:
            await connected(pilot, src, dst)
            await lab.migrate()  # after connecting: the event log shows it start
            say(f"active: waiting for {ACTIVE_FOR_S:g} s of migration history")
            await until(pilot, migrating_with_rates(src, ACTIVE_FOR_S), ACTIVE_FOR_S + 20,
                        f"{ACTIVE_FOR_S:g} s of an active migration with dirty and sent rates")
            await camera.shoot(app, pilot, "active")

        # A fresh dashboard has no history: it watches the same migration again.
        app, src, dst = app_on(lab)
        async with app.run_test(size=SMALL) as pilot:
            await connected(pilot, src, dst)
            say(f"80x24: waiting for {SMALL_ACTIVE_FOR_S:g} s of history")
            await until(pilot, migrating_with_rates(src, SMALL_ACTIVE_FOR_S), SMALL_ACTIVE_FOR_S + 20,
                        f"{SMALL_ACTIVE_FOR_S:g} s of history at 80x24")
            await camera.shoot(app, pilot, "dashboard-80x24")

        app, src, dst = app_on(lab)
        async with app.run_test(size=WIDE) as pilot:
            await connected(pilot, src, dst)
            await until(pilot, lambda: src.state.migration_status == "active", 5, "the migration still active")
            app.dashboard.select_by_name("dst")
            os.kill(lab.dst.pid, signal.SIGKILL)  # the destination host dies mid-migration
            say("lost: destination QEMU killed, waiting for its monitor to be lost")
            # Reconnects back off 0.5, 1, 2, 4 s before the state turns from retrying to lost.
            await until(pilot, lambda: dst.status.state is ConnState.LOST and dst.status.error is not None, 30,
                        "the destination's monitor lost")
            await until(pilot, lambda: src.state.migration_status == "failed", 10, "the source's migration failed")
            await camera.shoot(app, pilot, "lost")
    finally:
        await lab.stop()


# ---------------------------------------------------------------------- storage lab


def mirror_ready(session: MonitorSession) -> bool:
    job = session.state.block_jobs.get(MIRROR_JOB)
    return job is not None and bool(job.ready) and job.in_sync


def dialog_of(app: MigtuiApp) -> object | None:
    if SwitchoverScreen is None:
        return None
    screen = app.screen
    return screen if isinstance(screen, SwitchoverScreen) else None


def checklist_green(dialog: object) -> bool:
    section = getattr(dialog, "section", None)
    if section is None:
        return True  # a dialog without the accessor: trust the wait on QEMU's state
    try:
        return "all green" in section("checks")
    except Exception:  # an older dialog layout: do not fail the shot for it
        return True


async def storage_shots(camera: Camera) -> None:
    lab = await new_lab("storage")
    try:
        app, src, dst = app_on(lab)
        async with app.run_test(size=WIDE) as pilot:
            await connected(pilot, src, dst)
            await until(pilot, lambda: mirror_ready(src), 10, "the mirror job ready in the table")
            await lab.migrate()
            # Pre-switchover comes ~13 s in: if it came first, the deadline says so.
            await until(pilot, lambda: src.state.migration_status == "active" and dirty_span(src) >= MIRROR_DIRTY_FOR_S,
                        20, f"{MIRROR_DIRTY_FOR_S:g} s of dirty rates during the RAM copy")
            if not mirror_ready(src):
                raise ShotError("the mirror left the ready state during the RAM copy")
            await camera.shoot(app, pilot, "storage-mirror")

            await until(pilot, lambda: src.state.in_pre_switchover, 60, "pre-switchover")
            say("pre-switchover reached")
            dialog = None
            if SwitchoverScreen is not None:
                try:
                    await until(pilot, lambda: dialog_of(app) is not None, 5, "the switchover dialog")
                    dialog = dialog_of(app)
                except ShotError as err:
                    say(f"{err}: shooting the dashboard instead")
            else:
                say("no migtui/tui/screens/switchover.py: shooting the dashboard instead")
            if dialog is not None:
                await until(pilot, lambda: checklist_green(dialog), 5, "a green checklist")
            # Let the downtime clock visibly run (QEMU timestamps the pause on the host clock).
            await until(pilot, lambda: (src.state.pre_switchover_for(time.time()) or 0.0) >= CLOCK_SHOWN_S, 10,
                        "the downtime clock to run")
            await camera.shoot(app, pilot, "pre-switchover")

            if dialog is None:
                say("no dialog: completed.svg skipped (the lab finishes nothing by itself)")
                return
            await pilot.press("y")
            controller = getattr(dialog, "controller", None)
            await until(pilot, lambda: src.state.migration_status == "completed"
                        and src.state.final_downtime_ms is not None
                        and (controller is None or controller.finished), 30, "the migration completed")
            await until(pilot, lambda: dst.state.running is True, 10, "the destination guest running")
            # QEMU sets postmigrate only after the completed event: wait for the poll
            # that sees it, and for the header to show it.
            await until(pilot, lambda: "postmigrate" in app.dashboard.query_one(MonitorHeader).shown.plain,
                        5, "the source in postmigrate")
            try:  # ... and for the frame to show it: the dashboard under a dialog can lag
                await until(pilot, lambda: "postmigrate" in app.export_screenshot(), 5, "postmigrate on screen")
            except ShotError as err:
                say(f"{err}: the dashboard under the dialog was not repainted (an app issue); shooting anyway")
            await camera.shoot(app, pilot, "completed")
    finally:
        await lab.stop()


async def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(None)  # as the CLI does: no log record may reach the captured stderr
    camera = Camera(out)
    started = time.monotonic()
    await stuck_shots(camera)
    await storage_shots(camera)
    say(f"{len(camera.files)} files in {out} ({time.monotonic() - started:.0f} s)")
    return 0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="directory (default: screenshots/)")
    return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        return asyncio.run(main(args.out))
    except (MigtuiError, ShotError) as err:
        print(f"screenshots: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
