"""The dashboard driven by keys (textual Pilot): selection, reconnect, help, quit, scale.

Each test runs the dashboard as production does, a view of an engine (``conftest.app_for``),
on a real QEMU or on recorded ones (``replay.recorded``) for a fixed picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import app_for, screen_text, until
from qemu_util import QemuProcess
from replay import RecordedQemu, recorded, recorded_pairs
from tui_util import close_dialogs, dialog_shown, entry_text, text

from migtui.tui.app import MigtuiApp
from migtui.tui.glyphs import console_text
from migtui.tui.messages import SessionsChanged
from migtui.tui.screens.help import HelpScreen
from migtui.tui.terminal_cues import BELL, POP_TITLE, PUSH_TITLE, TerminalCues
from migtui.tui.themes import ANSI
from migtui.tui.widgets.advice_panel import AdvicePanel
from migtui.tui.widgets.block_jobs import BlockJobsPanel
from migtui.tui.widgets.dirty_panel import DirtyPanel
from migtui.tui.widgets.event_log import EventLog
from migtui.tui.widgets.migration_panel import MigrationPanel
from migtui.tui.widgets.monitor_header import MonitorHeader
from migtui.tui.widgets.monitor_list import MonitorList
from migtui.tui.widgets.rate_chart import RateChart
from migtui.tui.widgets.text_line import TextLine


async def test_arrows_and_tab_select_a_monitor() -> None:
    async with app_for(recorded("storage", 16.9)) as view:
        app, sessions = view.app, view.sessions
        await until(lambda: dialog_shown(app), 10, "the dialog of the pause, by itself")
        await view.press("n")  # the dashboard behind it
        dash = app.dashboard
        assert dash.selected is sessions[0]
        assert text(app, MonitorHeader).startswith("src")
        assert "pre-switchover" in text(app, "#mig-status")
        assert "▸src" in entry_text(app, "src")
        await view.press("down")
        assert dash.selected is sessions[1]
        assert text(app, MonitorHeader).startswith("dst")
        assert "active" in text(app, "#mig-status")
        assert "▸dst" in entry_text(app, "dst") and "▸" not in entry_text(app, "src")
        await view.press("tab")  # wraps around
        assert dash.selected is sessions[0]
        await view.press("shift+tab")
        assert dash.selected is sessions[1]
        await view.press("up")
        assert dash.selected is sessions[0]


async def test_a_key_shows_the_monitor_it_highlights_in_the_same_turn() -> None:
    """A key's one frame draws the list's highlight and the monitor's panels together: the
    dashboard shows the monitor before anything else runs (Textual's OptionHighlighted climbs
    to the screen a pump at a time, and a frame came first: keys took ~30 ms more)."""
    async with app_for(recorded("storage", 16.9)) as view:
        app, sessions = view.app, view.sessions
        await until(lambda: dialog_shown(app), 10, "the dialog of the pause, by itself")
        await view.press("n")
        dash = app.dashboard
        assert dash.selected is sessions[0]
        monitors = app.query_one(MonitorList)
        monitors.action_move("down")  # what "j" and "down" run; no await: nothing runs in between
        assert dash.selected is sessions[1]
        assert text(app, MonitorHeader).startswith("dst")
        monitors.action_move("first")
        assert dash.selected is sessions[0]


async def test_panels_show_the_recorded_migration() -> None:
    async with app_for(recorded("storage", 16.9), size=(120, 40)) as view:
        app = view.app
        ram = text(app, "#mig-ram")
        assert ram.startswith("left   1.2 of 128.5 MiB · sent 52.4 MiB · zero ")
        downtime = text(app, "#mig-downtime")
        assert "expected downtime" in downtime and "limit 300 ms" in downtime
        assert "pass 13" in text(app, "#mig-status")
        assert "QEMU 7.2.22 · unix:src.qmp" in text(app, MonitorHeader)  # what the engine's monitor read
        jobs = app.dashboard.query_one(BlockJobsPanel)
        assert "mirror-data0" in jobs._rows and jobs._rows["mirror-data0"]["status"] == "ready"
        log = app.dashboard.query_one(EventLog)
        assert any("pre-switchover" in line for line in log.texts)


async def test_quiet_updates_do_not_repaint() -> None:
    async with app_for(recorded("storage", 16.9)) as view:
        panel = view.app.dashboard.query_one(MigrationPanel)
        lines = list(panel.query(TextLine))
        before = [line.shown for line in lines]
        view.app.dashboard.show(view.sessions[0], None)  # same data again
        assert all(line.set(old) is False for line, old in zip(lines, before, strict=True))


async def test_a_burst_of_events_is_one_repaint_per_batch_the_view_gets() -> None:
    """QEMU sends 200 events at once: the engine forwards them in batches, the view folds
    each batch in one go, and the app repaints once for the batches that arrive within its
    coalescing window -- never once per event."""
    repaints: set[int] = set()

    def hook(message: Any) -> None:
        if isinstance(message, SessionsChanged) and "src" in message.changes:
            repaints.add(id(message))  # the hook may see one message twice

    scene = recorded("storage", 3.0)
    async with app_for(scene, message_hook=hook) as view:
        app, src = view.app, view.sessions[0]
        batches: list[frozenset[str]] = []
        src.add_change_listener(lambda _session, kinds: batches.append(kinds))
        repaints.clear()
        count = src.event_count
        assert isinstance(scene.qemus["src"], RecordedQemu)
        for n in range(200):
            scene.qemus["src"].emit({"event": "MIGRATION_PASS", "data": {"pass": 100 + n},
                                     "timestamp": {"seconds": int(scene.now), "microseconds": n}})
        await until(lambda: src.event_count == count + 200, 15, "the 200 events in the view")
        log = app.dashboard.query_one(EventLog)
        await until(lambda: "pass=299" in log.texts[-1], 5, "the last event in the log")
        assert 1 <= len(repaints) <= len(batches) < 200, (len(repaints), len(batches))


@pytest.mark.qemu
async def test_reconnect_is_shown(tmp_path: Path) -> None:
    path = tmp_path / "late.qmp"
    qemu = QemuProcess(path, machine="pc")
    try:
        async with app_for([f"late=unix:{path}"], wait=False) as view:
            app = view.app
            await until(lambda: " waiting " in entry_text(app, "late"), 30, "waiting shown")
            assert " waiting " in text(app, MonitorHeader) and "lost" not in text(app, MonitorHeader)
            qemu.start()
            await until(lambda: "running" in entry_text(app, "late"), 30, "connected shown")
            assert "connected" in text(app, MonitorHeader)
            qemu.kill()
            await until(lambda: "retrying" in entry_text(app, "late")
                        or " waiting " in entry_text(app, "late"), 30, "drop shown")
            assert "lost" not in entry_text(app, "late")
            qemu.start()
            await until(lambda: "running" in entry_text(app, "late"), 60, "reconnected shown")
            await view.press("q")
            await until(lambda: not app.is_running, 10, "the view to quit")
            # Only the view went: the engine keeps its connection.
            assert view.engine_session("late").connected
    finally:
        qemu.kill()
    assert view.code == 0


@pytest.mark.qemu
async def test_d_measures_the_dirty_rate(tmp_path: Path) -> None:
    qemu = QemuProcess(tmp_path / "vm.qmp", machine="pc").start()
    try:
        async with app_for([f"vm=unix:{qemu.socket_path}"]) as view:
            app = view.app
            assert app.dashboard.check_action("measure_dirty_rate", ()) is True
            dirty = app.dashboard.query_one(DirtyPanel)
            advice = app.dashboard.query_one(AdvicePanel)
            greyed: list[object] = []

            def measuring() -> bool:  # seen while QEMU measures (1 s), with d greyed meanwhile
                shown = "measuring" in (dirty.border_title or "")
                if shown:
                    greyed.append(app.dashboard.check_action("measure_dirty_rate", ()))
                return shown

            await view.press("d")
            # The result is an estimate over its window, the advisor's (never a verdict). A view
            # loaded enough to take the measurement's start and end in one batch of changes
            # (a fresh-clone run) goes straight to it: "measuring" is checked when it was shown.
            await until(lambda: measuring() or "dirtied over 1.0 s" in str(advice.border_title or ""), 30,
                        "measuring or its result shown")
            assert all(g is None for g in greyed), greyed  # greyed while measuring
            await until(lambda: "dirtied over 1.0 s" in str(advice.border_title or ""), 30, "result shown")
            assert [(name, args) for _, name, args in view.sent.mutating()] == [("calc-dirty-rate", {"calc-time": 1})]
    finally:
        qemu.kill()


async def test_d_is_not_offered_to_a_read_only_view() -> None:
    async with app_for(recorded("measure", 5.0), read_only=True) as view:
        app = view.app
        assert app.dashboard.check_action("measure_dirty_rate", ()) is False  # not in the footer (issue 16)
        assert "d Dirty rate" not in screen_text(app).splitlines()[-1]
        await view.press("d")  # pressed anyway: it does nothing, and says why
        await until(lambda: any("read-only" in t for t in view.toasts), 5, "the reason, as a notice")
        title = str(app.dashboard.query_one(AdvicePanel).border_title or "")
        assert "estimate ~4.0 MiB/s dirtied over 1.0 s" in title, title
        assert ("calc-dirty-rate", {"calc-time": 1}) not in view.recorded.qemus["src"].received  # type: ignore[union-attr]


async def test_help_lists_the_keys_and_closes() -> None:
    async with app_for(recorded("storage", 16.9), read_only=True) as view:
        app = view.app
        await until(lambda: dialog_shown(app), 10, "the dialog of the pause")
        await view.press("n", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        body = app.screen.text
        for words in ("Next / previous monitor", "Abort (not now)", "All events", "Quit", "Help"):  # read-only
            assert words in body, body
        assert "Dirty rate (not now)" in body  # paused: d does not apply; the help lists it dimmed
        await view.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await view.press("question_mark")
        await view.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)


async def test_e_toggles_all_monitors_events() -> None:
    async with app_for(recorded("storage", 20.0), size=(120, 40)) as view:
        log = view.app.dashboard.query_one(EventLog)
        assert log.border_title is not None
        assert "src" in log.border_title and not any(" dst " in line for line in log.texts)
        await view.press("e")
        assert "all monitors" in log.border_title
        assert any(" dst RESUME" in line for line in log.texts)
        await view.press("e")
        assert "all monitors" not in log.border_title


async def test_q_quits_the_view_only() -> None:
    async with app_for(recorded("storage", 2.0)) as view:
        await view.press("q")
        await until(lambda: not view.app.is_running, 10, "the view to quit")
        assert view.app.return_code == 0
        assert view.engine_session("src").connected  # the engine still watches
    assert view.code == 0


def visible_entries(app: MigtuiApp) -> list[str]:
    """The monitors list's lines as on screen (its scrolled window)."""
    monitors = app.dashboard.query_one(MonitorList)
    return [monitors.render_line(y).text for y in range(monitors.size.height)]


async def test_fifty_monitors_stay_usable() -> None:
    # How long a key takes is bench/pilot_bench.py's business (docs/benchmarks.md).
    scene = recorded_pairs("storage", 25, 1.0)
    async with app_for(scene) as view:
        app, sessions = view.app, view.sessions
        paused = [s.name for s in sessions if s.state.in_pre_switchover]
        assert paused and await close_dialogs(view) == paused  # their dialogs came in turn
        assert any("▸src00" in line for line in visible_entries(app))
        for _ in range(49):
            await view.press("down")
        # The 50th monitor is selected, shown, and scrolled into view in the list.
        assert app.dashboard.selected is sessions[-1]
        assert text(app, MonitorHeader).startswith("dst24")
        assert "completed" in text(app, "#mig-status")  # dst24 is 20.2 s into its run: done
        shown = visible_entries(app)
        assert any("▸dst24" in line for line in shown), shown
        assert not any("src00" in line for line in shown)  # the list scrolled
        # A change on a monitor that is not shown touches its list entry only.
        assert isinstance(scene.qemus["dst01"], RecordedQemu)
        scene.qemus["dst01"].emit({"event": "MIGRATION", "data": {"status": "failed"},
                                   "timestamp": {"seconds": int(scene.now), "microseconds": 0}})
        await until(lambda: "failed" in entry_text(app, "dst01"), 10, "entry updated")
        assert "failed" not in text(app, "#mig-status")


async def test_linux_console_gets_the_ansi_theme_and_no_color_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    async with app_for(recorded("storage", 12.5), term="linux") as view:
        app = view.app
        assert app.no_color
        assert app.theme == ANSI and app.ansi_color  # NO_COLOR then strips the ANSI colours
        chart = app.dashboard.query_one(RateChart)
        assert "▁" not in str(chart.render().plain)  # no eighth blocks on the Linux console


async def test_the_first_frame_shows_the_monitors() -> None:
    # How long it takes to get there is bench/pilot_bench.py's business (docs/benchmarks.md).
    async with app_for(recorded("storage", 16.9), size=(100, 30)) as view:
        app = view.app
        entries = " ".join(visible_entries(app))
        assert "▸src" in entries and "dst" in entries and "pre-switchover" in entries
        assert text(app, MonitorHeader).startswith("src")
        assert "pre-switchover" in text(app, "#mig-status")
        assert "STOPPED" in text(app, "#pause-lines")


async def test_a_field_fits_its_text_again_when_it_narrows() -> None:
    # Fields used to keep an earlier, wider width: "sent 119.2/128.5 MiB      · left".
    from textual.app import App, ComposeResult
    from textual.content import Content

    from migtui.tui.widgets.field_row import FieldRow

    class RowApp(App[None]):
        def compose(self) -> ComposeResult:
            yield FieldRow(2)

    app = RowApp()
    async with app.run_test(size=(80, 3)) as pilot:
        row = app.query_one(FieldRow)
        row.set([Content("sent 512.0 KiB/128.5 MiB"), Content("left 3.3 MiB")])
        await pilot.pause()
        row.set([Content("sent 119.2/128.5 MiB"), Content("left 3.3 MiB")])
        await pilot.pause()
        assert row.plain == "sent 119.2/128.5 MiB · left 3.3 MiB"
        assert row.render_line(0).text.rstrip() == row.plain  # on screen too
        # A second change before the first is painted (seen on a real dashboard when each
        # field was a widget of its own, laid out at the first change's width).
        row.set([Content("destination: RAM figures"), Content("left 123.4 MiB")])
        row.set([Content("destination: RAM figures"), Content("left 1 B")])
        await pilot.pause()
        assert row.render_line(0).text.rstrip() == "destination: RAM figures · left 1 B"


async def test_a_row_wider_than_the_screen_is_cut_with_an_ellipsis_and_optional_fields_go_whole() -> None:
    from textual.app import App, ComposeResult
    from textual.content import Content

    from migtui.tui.widgets.field_row import FieldRow

    class RowApp(App[None]):
        def compose(self) -> ComposeResult:
            yield FieldRow(3, id="plain")
            yield FieldRow(3, id="optional", optional_from=1)

    app = RowApp()
    async with app.run_test(size=(30, 3)) as pilot:
        values = [Content("left 11.2 of 128.5 MiB"), Content("sent 350 MiB"), Content("zero 112 MiB")]
        app.query_one("#plain", FieldRow).set(values)
        app.query_one("#optional", FieldRow).set(values)
        await pilot.pause()
        assert app.query_one("#plain", FieldRow).plain == "left 11.2 of 128.5 MiB · sent…"
        assert app.query_one("#optional", FieldRow).plain == "left 11.2 of 128.5 MiB"


@pytest.mark.parametrize("size, columns", [
    ((100, 30), ("id", "status", "progress", "type", "limit")),
    ((80, 24), ("id", "status", "progress", "type", "more")),  # "…" stands for the limit
    ((60, 24), ("id", "status", "progress", "more")),
    ((40, 10), ("id", "status", "progress", "more")),
])
async def test_block_job_columns_fit_the_panel_and_every_cut_cell_shows_an_ellipsis(
        size: tuple[int, int], columns: tuple[str, ...]) -> None:
    from textual.widgets import DataTable
    from textual.widgets.data_table import ColumnKey

    async with app_for(recorded("storage", 12.5), size=size) as view:
        panel = view.app.dashboard.query_one(BlockJobsPanel)
        table = panel.query_one(DataTable)
        assert panel.columns == columns
        used = sum(column.get_render_width(table) for column in table.columns.values())
        assert used <= table.size.width, f"{used} cells of columns in {table.size.width}"
        assert table.size.width == panel.size.width
        cut = 0
        for job_id, row in panel._rows.items():
            for key, shown in zip(columns, table.get_row(job_id), strict=True):
                whole = row.get(key, "…")
                width = table.columns[ColumnKey(key)].content_width
                assert shown == whole or (shown.endswith("…") and len(shown) == width), (key, whole, shown, width)
                cut += shown != whole
        assert bool(cut) == (size[0] <= 60), cut  # 60 columns and fewer: id and progress cut, with "…"
        if size[0] >= 80:
            await view.pilot.resize_terminal(*((100, 30) if size == (80, 24) else (80, 24)))
            await until(lambda: panel.columns != columns, 5, "the columns to follow the width")


async def test_a_lost_monitor_shows_its_last_status_as_stale() -> None:
    scene = recorded("stuck", 12.8)
    async with app_for(scene, size=(100, 30)) as view:
        app = view.app
        panel = app.dashboard.query_one(MigrationPanel)
        assert " active " in entry_text(app, "src") and not panel.has_class("-stale")
        await scene.qemus["src"].stop()  # the QEMU is gone, and its socket with it
        await until(lambda: panel.has_class("-stale"), 30, "stale panel")
        await until(lambda: " waiting " in entry_text(app, "src"), 30, "the engine waiting for the socket")
        entry = entry_text(app, "src")
        # Still tried all along: "waiting" (for the socket), never "lost".
        assert " waiting " in entry and "last: active" in entry and " active " not in entry
        assert text(app, "#mig-status").startswith("last: active · pass 4")
        assert " waiting " in text(app, MonitorHeader) and "lost" not in entry
        assert app.dashboard.query_one(DirtyPanel).has_class("-stale")
        await scene.qemus["src"].serve()  # back at its socket: the engine reconnects
        await until(lambda: not panel.has_class("-stale"), 30, "fresh panel")
        await until(lambda: text(app, "#mig-status").startswith(" active "), 10, "the new connection's status")
        assert " active " in entry_text(app, "src")


async def test_an_empty_event_log_says_why() -> None:
    from migtui.tui.widgets.event_log import EMPTY

    scene = recorded("storage", 12.5)
    assert isinstance(scene.qemus["dst"], RecordedQemu)
    scene.qemus["dst"].since = scene.now  # the engine connected to dst mid-migration: QMP replays no event
    async with app_for(scene) as view:
        await view.press("down")
        log = view.app.dashboard.query_one(EventLog)
        assert log.texts == []
        assert log.render_line(0).text.startswith(EMPTY[0])
        await view.press("up")
        assert not log.render_line(0).text.startswith(EMPTY[0])
        assert "EVENT" not in screen_text(view.app)


async def test_the_window_title_says_a_guest_stopped_and_the_bell_rings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: a window in the background still tells a pause: its title, and --bell."""
    written: list[str] = []
    monkeypatch.setattr(MigtuiApp, "_write_terminal", lambda _app, sequence: written.append(sequence))
    async with app_for(recorded("storage", "paused")) as view:
        await until(lambda: any(s.startswith("\x1b]2;‖ src STOPPED 1.2 s") for s in written), 10, "the title")
        assert written[0] == PUSH_TITLE and BELL not in written  # no --bell: no bell
        await close_dialogs(view)
    assert written[-1] == POP_TITLE  # the terminal's own title back
    rings: list[str] = []
    cues = TerminalCues(rings.append, bell=True, glyphs=console_text)
    cues.guest_stopped()
    cues.title("‖ src STOPPED 1.2 s")
    cues.title("‖ src STOPPED 1.2 s")  # unchanged: not written again
    assert rings == [BELL, "\x1b]2;| src STOPPED 1.2 s\a"]  # the Linux console's font: ASCII
