"""What the dashboard shows, read the way the TUI tests read it: its dialog, banner and lines."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from conftest import View, until
from pytest_textual_snapshot import normalize_svg

from migtui.lab.lab import Lab
from migtui.tui.app import MigtuiApp
from migtui.tui.screens.switchover import SwitchoverScreen
from migtui.tui.widgets.monitor_list import MonitorList
from migtui.tui.widgets.pause_banner import PauseBanner


def dialog_shown(app: MigtuiApp) -> bool:
    """The switchover dialog is on top and drawn (not just pushed), and the dashboard beneath
    has what waited for that (pause_watch.OPENING_HOLD_S)."""
    screen = app.screen
    if not isinstance(screen, SwitchoverScreen) or not screen.is_mounted or app.pauses.opening:
        return False
    try:
        return bool(screen.section("clock"))
    except Exception:  # not composed yet
        return False


def dialog(app: MigtuiApp) -> SwitchoverScreen:
    screen = app.screen
    assert isinstance(screen, SwitchoverScreen), f"the screen is {screen!r}"
    return screen


async def close_dialogs(view: View) -> list[str]:
    """Close each pause dialog that opened by itself (they come one after the other);
    returns their sources, in that order."""
    app = view.app

    def pending() -> bool:
        return any(isinstance(s, SwitchoverScreen) for s in app.screen_stack) or bool(app.pauses.queue.queue)

    closed: list[str] = []
    while pending():
        await until(lambda: dialog_shown(app) or not pending(), 10, "the next dialog")
        if dialog_shown(app):
            closed.append(dialog(app).source.name)
            await view.press("n")
    return closed


def banner(app: MigtuiApp) -> str:
    return app.dashboard.query_one(PauseBanner).shown


def text(app: MigtuiApp, widget: type | str) -> str:
    """What a line of the dashboard (a TextLine or FieldRow) shows."""
    return app.dashboard.query_one(widget).shown.plain  # type: ignore[attr-defined]


def entry_text(app: MigtuiApp, name: str) -> str:
    """Monitor ``name``'s entry in the monitors list."""
    return str(app.dashboard.query_one(MonitorList).get_option(name).prompt)


def figure(line: str, prefix: str) -> str:
    """The clock figure after ``prefix`` ("STOPPED ", "Guest stopped "): "1.2 s"."""
    match = re.search(re.escape(prefix) + r"(≥|at least )?([\d.]+ m?s|\d+m \d\ds)", line)
    assert match, f"no {prefix!r} clock in {line!r}"
    return match.group(2)


def lab_monitors(lab: Lab) -> list[str]:
    """The lab pair's dashboard monitors, as MONITOR arguments."""
    return [f"{vm.name}=unix:{vm.qmp_path}" for vm in (lab.src, lab.dst)]


async def migrate_to_pause(lab: Lab) -> None:
    """Mirror in sync, armed, migrate: QEMU converges in its first pass and pauses."""
    await lab.prepare(storage=True, pause=True, max_bandwidth=1 << 30, downtime_limit=500)
    await lab.migrate()


async def qemu_status(lab: Lab) -> str:
    """The source's migration status, asked on the lab's own control socket."""
    ctl = await lab.control(lab.src)
    info: Any = await ctl.execute("query-migrate")
    return str(info.get("status", "none"))


async def screenshot(view: View) -> str:
    """The screen as pytest-textual-snapshot takes it (compare it with the ``snapshot``
    fixture's ``SVGImageExtension``), once it has stopped changing."""
    shots: list[str] = []

    async def take() -> bool:
        await view.pilot.wait_for_scheduled_animations()
        await view.pilot.pause()
        shots.append(normalize_svg(view.app.export_screenshot(simplify=True)))
        return len(shots) > 1 and shots[-1] == shots[-2]

    deadline = asyncio.get_running_loop().time() + 10
    while not await take():
        assert asyncio.get_running_loop().time() < deadline, "the screen kept changing"
        await asyncio.sleep(0.05)
    return shots[-1]


def screen_lines(view: View) -> list[str]:
    """The characters on the screen, as the terminal gets them (line filters applied)."""
    return [strip.text for strip in view.app.screen._compositor.render_strips()]
