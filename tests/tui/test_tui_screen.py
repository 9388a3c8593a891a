"""What the screen says after faults and at awkward sizes (issue 9, "also wrong on screen").

The dashboard a view of an engine that watches recorded QEMUs (``replay.recorded``),
driven with Pilot: the dialog after many quick resizes, the footer at 80x24 and 40x10,
one "not available" notice at a time, libvirt's pauses, a key that becomes unavailable,
the sent rate during a pause, a dialog whose pause is over. Real-QEMU faults are in
``test_tui_faults.py``; the pause clock's words in ``tests/unit/test_tui_parts.py``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from conftest import View, app_for, screen_text, until
from replay import LIBVIRT_SIGNS, RecordedQemu, recorded, tui_run
from textual.content import Content
from tui_util import close_dialogs, dialog, dialog_shown

from migtui.tui.app import MigtuiApp
from migtui.tui.screens.help import HelpScreen
from migtui.tui.screens.switchover import SwitchoverScreen
from migtui.tui.screens.switchover_dashboard import SwitchoverDashboard
from migtui.tui.widgets.dirty_panel import chart_data
from migtui.tui.widgets.flash_line import FlashLine
from migtui.tui.widgets.footer import KeyFooter
from migtui.tui.widgets.hanging import HangingLines
from migtui.tui.widgets.text_line import TextLine


async def fresh_dialog(version: str, size: tuple[int, int]) -> str:
    """The screen of the recorded pause's dialog, opened at ``size``."""
    async with app_for(recorded("storage", "paused", version=version), size=size) as view:
        await until(lambda: dialog_shown(view.app), 10, "the dialog")
        await view.pilot.pause()
        return screen_text(view.app)


async def test_the_dialog_keeps_no_blank_rows_after_many_quick_resizes(version: str) -> None:
    rng = random.Random(2)
    sizes = [(rng.randint(40, 140), rng.randint(10, 50), rng.random() < 0.3) for _ in range(40)]
    sizes.append((100, 40, False))
    fresh = await fresh_dialog(version, (100, 40))
    async with app_for(recorded("storage", "paused", version=version), size=(80, 24)) as view:
        app = view.app
        await until(lambda: dialog_shown(app), 10, "the dialog")
        for width, height, breath in sizes:
            await view.pilot.resize_terminal(width, height)
            if breath:  # now and then the app gets a turn between two resizes
                await view.pilot.pause(0)
        try:
            await until(lambda: screen_text(app) == fresh, 10, "the same screen as a dialog opened at 100x40")
        except AssertionError as err:
            resized = screen_text(app).splitlines()
            diff = "\n".join(f"{a!r}\n{b!r}" for a, b in zip(resized, fresh.splitlines(), strict=False) if a != b)
            raise AssertionError(f"{err}\n{diff}") from None


def footer(app: MigtuiApp) -> str:
    return screen_text(app).splitlines()[-1]


async def test_the_footer_shows_help_whole_at_80x24_with_every_key_on_offer(version: str) -> None:
    # An idle QEMU beside the pair (no migration, not armed): a Arm applies to it.
    scene = recorded("storage", "paused", version=version) | recorded("measure", "measured", {"src": "idle"},
                                                                       version=version)
    async with app_for(scene) as view:
        app = view.app
        await close_dialogs(view)
        await view.press("down", "down")  # the idle one: it can be armed, and src is paused
        await until(lambda: app.dashboard.selected is view.sessions[2], 5, "idle selected")
        await until(lambda: "a Arm" in footer(app), 5, "a Arm in the footer")
        row = footer(app)
        for key in ("s Switchover", "x Abort", "a Arm", "q Quit", "? Help"):
            assert key in row, row
        assert row.rstrip().endswith("? Help") or "^p palette" in row, row


async def test_a_change_of_keys_repaints_the_footer_and_mounts_no_widget(
        version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The footer is one line of text. When the keys on offer change (another monitor
    selected, a dialog opening) it repaints that line: no widget is mounted for a key
    (Textual's footer mounted and styled one per key, in a batch that held every screen)."""
    scene = recorded("storage", "paused", version=version) | recorded("measure", "measured", {"src": "idle"},
                                                                       version=version)
    async with app_for(scene) as view:
        app = view.app
        await close_dialogs(view)
        mounted: list[str] = []
        original = MigtuiApp._register

        def spy(self: MigtuiApp, parent: Any, *widgets: Any, **kwargs: Any) -> Any:
            mounted.extend(type(w).__name__ for w in widgets)
            return original(self, parent, *widgets, **kwargs)

        monkeypatch.setattr(MigtuiApp, "_register", spy)
        assert "a Arm" not in footer(app)
        await view.press("down", "down")  # the idle one: it can be armed
        await until(lambda: "a Arm" in footer(app), 5, "a Arm in the footer")
        await view.press("s")  # the dialog: its own keys
        await until(lambda: dialog_shown(app) and "y Resume switchover" in footer(app), 5, "the dialog's keys")
        assert "FooterKey" not in mounted and mounted.count("KeyFooter") == 1, mounted  # the dialog's own
        assert not app.screen.query_one(KeyFooter).children


async def test_a_footer_key_clicked_is_that_key_pressed(version: str) -> None:
    async with app_for(recorded("storage", "paused", version=version)) as view:
        app = view.app
        await close_dialogs(view)
        await until(lambda: "? Help" in footer(app), 5, "? Help in the footer")
        await view.pilot.click(KeyFooter, offset=(footer(app).index("? Help") + 3, 0))
        await until(lambda: isinstance(app.screen, HelpScreen), 5, "help, as ? opens it")


async def test_a_too_small_terminal_says_so_and_the_footer_has_only_whole_keys(version: str) -> None:
    def shows(app: MigtuiApp, top: str, bottom: str) -> bool:
        rows = screen_text(app).splitlines()
        return top in rows[0] and rows[-1].rstrip().endswith(bottom) and "▏" not in rows[-1]

    async with app_for(recorded("storage", "paused", version=version), size=(40, 10)) as view:
        app = view.app
        try:
            await until(lambda: dialog_shown(app), 10, "the dialog")
            await until(lambda: shows(app, "40x10: too small", "? Help q Quit"), 5, "the notice over the dialog")
            await view.press("n")
            await until(lambda: shows(app, "40x10: too small, migtui needs 80x24", "q Quit ? Help"), 5,
                        "the notice and a footer of whole keys")
            await view.press("s")
            await until(lambda: dialog_shown(app), 5, "the dialog again")
            await view.pilot.resize_terminal(80, 24)
            await until(lambda: "too small" not in screen_text(app), 5, "the notice gone")
        except AssertionError as err:
            raise AssertionError("\n".join([str(err), screen_text(app)])) from None


def toasts(app: MigtuiApp) -> list[str]:
    """The messages on screen now: the flash line of the screen on top (never a toast)."""
    assert not app.screen.query("Toast")
    return [line.text for line in app.screen.query(FlashLine) if line.text]


async def test_messages_are_one_flash_line_that_covers_nothing(version: str) -> None:
    """Issue 16: a message is one line above the footer, the latest replacing the one before,
    and nothing of the dialog lies under it (k9s's flash line, not toasts)."""
    scene = recorded("storage", "paused", version=version)
    async with app_for(scene, read_only=True, notifications=True) as view:  # read-only: y and x do not apply
        app = view.app
        await until(lambda: dialog_shown(app), 10, "the dialog")
        await view.press("y", "x", "y")
        await until(lambda: len(view.toasts) == 3, 5, "three messages")
        await until(lambda: toasts(app), 5, "a message on screen")
        shown = toasts(app)
        assert len(shown) == 1 and "read-only" in shown[0], shown
        line = app.screen.query_one(FlashLine)
        box = app.screen.query_one("#sw-box")
        assert line.region.height == 1 and not line.region.overlaps(box.region), (line.region, box.region)
        app.notify("something else\nand more", title="Switchover", timeout=30)
        await until(lambda: toasts(app) == ["Switchover: something else · and more"], 5, "the new one, one line")
        await view.press("y")  # the operator's key clears what was said before it; y says why again
        await until(lambda: toasts(app) and "read-only" in toasts(app)[0], 5, "y's reason")
    assert isinstance(scene.qemus["src"], RecordedQemu)
    assert [c for c, _ in scene.qemus["src"].received if not c.startswith(("query-", "qmp_", "qom-"))] == []


async def test_a_pause_libvirt_drives_offers_no_plain_y_or_x(version: str) -> None:
    """The engine recognises a QEMU libvirt manages (its block nodes and secret, as libvirt
    leaves them) and says libvirt drives its pause: y and x are shown unavailable and say why."""
    scene = recorded("storage", "paused", version=version, replies={"src": LIBVIRT_SIGNS})
    async with app_for(scene, size=(100, 30), notifications=True) as view:
        app, src = view.app, view.sessions[0]
        assert src.pause.owner == "libvirt", src.pause
        await until(lambda: dialog_shown(app), 10, "the dialog")  # live: it opens by itself
        box = dialog(app)
        await until(lambda: box.check_action("resume", ()) is None, 5, "y unavailable")
        assert box.check_action("abort", ()) is None
        for key in ("y", "x"):
            assert "libvirt drives this migration and finishes the pause itself" in box.unavailable_reason(key)
        assert "libvirt drives this migration" in box.section("note")
        await view.press("y")
        await until(lambda: len(view.toasts) == 1, 5, "y's reason")
        await until(lambda: toasts(app), 5, "the notice on screen")
        shown = toasts(app)
        assert len(shown) == 1 and "libvirt drives this migration" in shown[0], shown
        assert box.controller.action is None
        await view.press("n")
        assert app.dashboard.check_action("abort_switchover", ()) is None  # the dashboard's x too
        dashboard = app.dashboard
        assert isinstance(dashboard, SwitchoverDashboard)
        assert "libvirt" in dashboard.availability_of("x").reason
    assert view.sent.mutating() == []


def key_styles(view: View, key: str) -> set[str]:
    """The styles of the key ``key`` at the start of its line in the dialog's actions."""
    shown = dialog(view.app).query_one("#sw-actions", HangingLines).content
    assert isinstance(shown, Content)
    lines = shown.plain.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{key}  "))
    offset = sum(len(line) + 1 for line in lines[:start])
    return {str(span.style) for span in shown.spans if span.start <= offset < span.end}


async def test_a_key_that_becomes_unavailable_looks_it(version: str) -> None:
    """The source's QEMU goes away during the pause: y's line keeps its words but must turn
    muted (the same text with a new style is still a change)."""
    scene = recorded("storage", "paused", version=version)
    async with app_for(scene) as view:
        await until(lambda: dialog_shown(view.app), 10, "the dialog")
        assert key_styles(view, "y") == {"bold $success"}  # resume is green (abort is red)
        assert key_styles(view, "x") == {"bold $error"}
        await scene.qemus["src"].stop()
        await until(lambda: "source QEMU gone" in dialog(view.app).section("note"), 30, "the note")
        await until(lambda: key_styles(view, "y") == {"$text-muted"}, 5, "y muted")


# ---------------------------------------------------------------------- the figures during a pause


async def test_during_a_pause_the_rates_say_paused_not_qemus_last_figures(version: str) -> None:
    async with app_for(recorded("storage", "paused", version=version)) as view:
        app, src = view.app, view.sessions[0]
        assert (src.state.migration.throughput_bytes_per_s or 0) > 0  # QEMU's last figure is still there
        values = app.dashboard.query_one("#chart-values", TextLine)
        shown = values.shown.plain.split("\n")
        assert shown[0].strip() == "paused" and shown[2].strip() == "paused", shown
        rows = screen_text(app).splitlines()
        assert not any("MiB/s" in row for row in rows if "sent" in row or "dirty" in row), rows
        data = chart_data(src, view.recorded.now)  # type: ignore[union-attr]
    assert data.sent_now is None  # the pause's columns: nothing sent, nothing dirtied
    assert all(sent == 0.0 for t, _d, sent in data.samples if t >= src.state.pre_switchover_since)  # type: ignore[operator]


# ---------------------------------------------------------------------- a dialog whose pause is over


def event_time(version: str, start: float, event: str, status: str) -> float:
    """When the recorded source's next ``event`` with ``status`` after ``start`` came."""
    return next(e["t"] for e in tui_run(version, "storage") if e["side"] == "src" and e["kind"] == "event"
                and e["t"] > start and e["event"]["event"] == event and e["event"].get("data", {}).get("status")
                == status)


async def test_a_dialog_whose_pause_ended_says_so_everywhere(version: str) -> None:
    """The pause ends without this dialog (libvirt's 10-20 ms pause, or another client): as
    soon as QEMU passes to device, the title, clock and body tell the end, and nothing in
    it still reads "paused" or a checklist of a pause that is over."""
    scene = recorded("storage", "paused", version=version)
    src = scene.qemus["src"]
    assert isinstance(src, RecordedQemu)
    async with app_for(scene, size=(100, 30)) as view:
        app = view.app
        await until(lambda: dialog_shown(app), 10, "the dialog")
        box = dialog(app)
        assert "✓ source" in box.section("checks")
        src.advance(event_time(version, scene.now, "MIGRATION", "device"))  # the recorded QEMU goes on
        await until(lambda: box.query_one("#sw-box").border_title == "src: pause over (migration device)", 10,
                    "the title")
        await until(lambda: "The pause is over" in box.section("checks"), 5, "the body")
        clock, checks, actions = box.section("clock"), box.section("checks"), box.section("actions")
        assert clock.startswith("Guest was stopped ") and clock.endswith(" in this pause"), clock
        assert "The pause is over" in checks and "migration device" in checks, checks
        for stale in ("✗ source", "left to send during the pause", "Checklist"):
            assert stale not in checks, checks
        assert actions.startswith("n  Close") and "Resume" not in actions, actions
        assert not box.clock_running
        await until(lambda: not any("paused before switchover" in row or "STOPPED" in row
                                    for row in screen_text(app).splitlines()), 5, "no pause left on screen")
        src.advance(event_time(version, scene.now, "MIGRATION", "completed"))  # another client's doing
        await until(lambda: not isinstance(app.screen, SwitchoverScreen), 10, "the dialog to close")
        assert any("another client continued the migration" in t for t in view.toasts), view.toasts
