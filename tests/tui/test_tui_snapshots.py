"""Snapshots of the key screens at 80x24 and 120x40 (pytest-textual-snapshot).

The dashboard is a view of an engine that watches recorded QEMUs: real QMP exchanges
recorded from lab migrations on every recorded QEMU (tests/fixtures/qmp/<version>/tui/,
see tests/fixtures/record_tui.py), served on sockets at named moments of each run
(``replay.recorded``), with a fixed clock, UTC timestamps and fixed names, so every run
draws the same screen; the version is in each test id and snapshot name. Regenerate with
``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import app_for, until
from pytest_textual_snapshot import SVGImageExtension
from replay import DeadSocket, Recorded, recorded, recorded_pairs, reply
from tui_util import close_dialogs, dialog_shown, screen_lines, screenshot

from migtui.tui.glyphs import FONT
from migtui.tui.screens.start import StartScreen

SMALL = (80, 24)
LARGE = (120, 40)


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the CI terminal says, snapshots are taken in one known setting.
    monkeypatch.delenv("NO_COLOR", raising=False)


async def shot(scene: Recorded, size: tuple[int, int], *keys: str, term: str = "xterm-256color") -> str:
    """The screen of the dashboard on ``scene`` after ``keys`` (pause dialogs closed first)."""
    async with app_for(scene, size=size, term=term) as view:
        await close_dialogs(view)
        for key in keys:
            await view.press(key)
        return await screenshot(view)


def svg(snapshot: Any) -> Any:
    return snapshot.use_extension(SVGImageExtension)


# --- a migration with storage, pause-before-switchover armed -------------------

# The active migration is not a snapshot here: the advisor's figures of a migration under
# way (the send rate an expected downtime divides by) depend on how many live polls of the
# recorded QEMU the engine made before the picture, which a loaded machine changes. The
# active dashboard is looked at on real QEMU (tests/tui/test_screenshots_script.py, the
# screenshots) and its parts by the pilot tests.


async def test_pre_switchover_80x24(snapshot: Any, version: str) -> None:
    """The dashboard behind the dialog (closed): the banner says who is stopped, and for how long."""
    assert svg(snapshot) == await shot(recorded("storage", "paused", version=version), SMALL)


async def test_completed_with_all_events_120x40(snapshot: Any, version: str) -> None:
    assert svg(snapshot) == await shot(recorded("storage", "completed", version=version), LARGE, "e")


async def test_destination_selected_80x24(snapshot: Any, version: str) -> None:
    assert svg(snapshot) == await shot(recorded("storage", "active", version=version), SMALL, "down")


# --- dirty rate -------------------------------------------------------------------

async def test_dirty_rate_close_to_bandwidth_80x24(snapshot: Any, version: str) -> None:
    assert svg(snapshot) == await shot(recorded("stuck", "late", version=version), SMALL)


async def test_dirty_rate_measured_without_migration_80x24(snapshot: Any, version: str) -> None:
    assert svg(snapshot) == await shot(recorded("measure", "measured", version=version), SMALL)


# --- starting a migration (m) --------------------------------------------------------

def before_any_migration(version: str) -> Recorded:
    """The pair before its migration (the destination on -incoming), with each QEMU's real
    query-block of the lab (recorded apart: the TUI runs do not ask it)."""
    disks = {side: {"query-block": reply(version, f"start/{side}-query-block-lab")} for side in ("src", "dst")}
    return recorded("measure", "measured", version=version, replies=disks)


ADDRESS = ("tab", *"unix:/run/dst.migrate")  # the recorded monitors' paths are relative: nothing picked


async def start_shot(version: str, *keys: str) -> str:
    """The start screen (``m``) with the address typed in, after ``keys``. The keys wait for the
    screen: on a loaded machine a `tab` pressed before it is on top went to the dashboard."""
    async with app_for(before_any_migration(version), size=SMALL) as view:
        await view.press("m")
        await until(lambda: isinstance(view.app.screen, StartScreen), 10, "the start screen")
        for key in (*ADDRESS, *keys):
            await view.press(key)
        return await screenshot(view)


async def test_start_screen_80x24(snapshot: Any, version: str) -> None:
    """m: the destination, its address, what both QEMUs offer, the disks."""
    assert svg(snapshot) == await start_shot(version)


async def test_start_summary_80x24(snapshot: Any, version: str) -> None:
    """enter: the summary to confirm (m starts, n steps back)."""
    assert svg(snapshot) == await start_shot(version, "enter")


# --- monitors in trouble ----------------------------------------------------------

async def test_missing_and_refusing_monitors_80x24(snapshot: Any, version: str) -> None:
    """Beside a recorded source: a monitor whose socket is not there, and one whose socket
    is bound but nobody listens (what a QEMU that crashed leaves); the errors are the
    engine's own, from real connect attempts."""
    scene = recorded("storage", "active", {"src": "src"}, version=version)
    scene.qemus["dst"] = DeadSocket(Path("/nonexistent/migtui-snapshot/dst.qmp"))
    scene.qemus["old"] = DeadSocket(Path("old.qmp"), stale=True)
    assert svg(snapshot) == await shot(scene, SMALL, "down")


async def test_fifty_monitors_120x40(snapshot: Any, version: str) -> None:
    assert svg(snapshot) == await shot(recorded_pairs("storage", 25, 0.5, version=version), LARGE, *["down"] * 30)


# --- help, terminals --------------------------------------------------------------

async def test_help_80x24(snapshot: Any, version: str) -> None:
    assert svg(snapshot) == await shot(recorded("storage", "active", version=version), SMALL, "question_mark")


async def test_linux_console_80x24(snapshot: Any, version: str) -> None:
    assert svg(snapshot) == await shot(recorded("storage", "paused", version=version), SMALL, term="linux")


async def test_linux_console_draws_only_what_its_font_has(version: str) -> None:
    """The dialog (round corners, ✓ and ·) and the dashboard behind it (▸, ‖, the footer's ▏):
    ASCII, the PC set's lines and blocks, nothing else."""
    async with app_for(recorded("storage", "paused", version=version), size=SMALL, term="linux") as view:
        await until(lambda: dialog_shown(view.app), 10, "the pause dialog")
        shown = [await screenshot(view) and "\n".join(screen_lines(view))]
        await close_dialogs(view)
        await screenshot(view)
        shown.append("\n".join(screen_lines(view)))
    for text in shown:
        assert "STOPPED" in text and "src" in text
        assert not {c for c in text if not c.isascii() and c not in FONT}, text


async def test_no_color_80x24(snapshot: Any, version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert svg(snapshot) == await shot(recorded("stuck", "late", version=version), SMALL)


# --- keys and messages (issue 16) -------------------------------------------------

async def dialog_shot(scene: Recorded, size: tuple[int, int], *keys: str, read_only: bool = False) -> str:
    """The pause dialog that opened by itself, after ``keys``."""
    async with app_for(scene, size=size, read_only=read_only) as view:
        await until(lambda: dialog_shown(view.app), 10, "the dialog")
        for key in keys:
            await view.press(key)
        return await screenshot(view)


async def test_read_only_dialog_offers_only_close_80x24(snapshot: Any, version: str) -> None:
    """Read-only: no y, no x in the dialog or its footer (a key pressed anyway says why on the
    flash line: not in a snapshot, whose picture must not depend on how long it took)."""
    assert svg(snapshot) == await dialog_shot(recorded("storage", "paused", version=version), SMALL,
                                              read_only=True)


async def test_abort_question_in_the_dialog_80x24(snapshot: Any, version: str) -> None:
    """x asks; enter (no action's key) aborts, n goes back."""
    assert svg(snapshot) == await dialog_shot(recorded("storage", "paused", version=version), SMALL, "x")


async def test_monitor_filter_80x24(snapshot: Any, version: str) -> None:
    assert svg(snapshot) == await shot(recorded("storage", "active", version=version), SMALL, "slash", "d")


async def test_help_120x40(snapshot: Any, version: str) -> None:
    assert svg(snapshot) == await shot(recorded("storage", "active", version=version), LARGE, "question_mark")
