"""The dashboard driven by keys (textual Pilot): selection, reconnect, help, quit, scale, CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from replay import TUI_FIXTURES, replayed, replayed_pairs
from textual.pilot import Pilot

from migtui.address import parse_address
from migtui.model.events import QmpEvent
from migtui.transport import ConnectionStatus, ConnState, Monitor
from migtui.tui.app import MigtuiApp, make_app
from migtui.tui.messages import SessionsChanged
from migtui.tui.screens.help import HelpScreen
from migtui.tui.widgets.block_jobs import BlockJobsPanel
from migtui.tui.widgets.dirty_panel import DirtyPanel
from migtui.tui.widgets.event_log import EventLog
from migtui.tui.widgets.migration_panel import MigrationPanel
from migtui.tui.widgets.monitor_header import MonitorHeader
from migtui.tui.widgets.monitor_list import MonitorList
from migtui.tui.widgets.text_line import TextLine
from migtui.workflow.session import MonitorSession
from qemu_util import QemuProcess

REPO = Path(__file__).resolve().parents[2]




def app_for(sessions: list[MonitorSession], now: float | None = None) -> MigtuiApp:
    clock = (lambda: now) if now is not None else time.time
    return make_app(sessions=sessions, clock=clock, tz=timezone.utc, term="xterm-256color")


async def until(pilot: Pilot, pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.02)


def text(app: MigtuiApp, widget: type[TextLine] | str) -> str:
    """What a line (TextLine or FieldRow) shows."""
    return app.dashboard.query_one(widget).shown.plain  # type: ignore[attr-defined]


def entry_text(app: MigtuiApp, name: str) -> str:
    monitors = app.dashboard.query_one(MonitorList)
    return str(monitors.get_option(name).prompt)


async def test_arrows_and_tab_select_a_monitor() -> None:
    sessions, now = replayed("storage", 16.9)
    app = app_for(sessions, now)
    async with app.run_test(size=(80, 24)) as pilot:
        dash = app.dashboard
        assert dash.selected is sessions[0]
        assert text(app, MonitorHeader).startswith("src")
        assert "pre-switchover" in text(app, "#mig-status")
        assert "▸src" in entry_text(app, "src")
        await pilot.press("down")
        assert dash.selected is sessions[1]
        assert text(app, MonitorHeader).startswith("dst")
        assert "active" in text(app, "#mig-status")
        assert "▸dst" in entry_text(app, "dst") and "▸" not in entry_text(app, "src")
        await pilot.press("tab")  # wraps around
        assert dash.selected is sessions[0]
        await pilot.press("shift+tab")
        assert dash.selected is sessions[1]
        await pilot.press("up")
        assert dash.selected is sessions[0]


async def test_panels_show_the_replayed_migration() -> None:
    sessions, now = replayed("storage", 16.9)
    app = app_for(sessions, now)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        ram = text(app, "#mig-ram")
        assert ram == "left   1.2 of 128.5 MiB · sent  52.4 MiB"
        downtime = text(app, "#mig-downtime")
        assert "expected downtime" in downtime and "limit 300 ms" in downtime
        assert "pass 13" in text(app, "#mig-status")
        jobs = app.dashboard.query_one(BlockJobsPanel)
        assert "mirror-data0" in jobs._rows and jobs._rows["mirror-data0"]["status"] == "ready"
        log = app.dashboard.query_one(EventLog)
        assert any("pre-switchover" in line for line in log.texts)


async def test_quiet_updates_do_not_repaint() -> None:
    sessions, now = replayed("storage", 16.9)
    app = app_for(sessions, now)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.dashboard.query_one(MigrationPanel)
        lines = list(panel.query(TextLine))
        before = [line.shown for line in lines]
        app.dashboard.show(sessions[0], None)  # same data again
        assert all(line.set(old) is False for line, old in zip(lines, before))


async def test_a_burst_of_events_is_one_repaint() -> None:
    sessions, now = replayed("storage", 3.0)
    messages: list[SessionsChanged] = []

    def hook(message: Any) -> None:
        if isinstance(message, SessionsChanged):
            messages.append(message)

    app = app_for(sessions, now)
    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        await pilot.pause(0.1)
        messages.clear()
        count = sessions[0].event_count
        for n in range(200):
            ev = QmpEvent("MIGRATION_PASS", {"pass": n}, now)
            sessions[0]._notify(sessions[0].apply_event(ev))
        await until(pilot, lambda: bool(messages), what="SessionsChanged")
        await pilot.pause(0.1)
        assert len({id(m) for m in messages}) == 1  # the hook may see one message twice
        assert sessions[0].event_count == count + 200
        log = app.dashboard.query_one(EventLog)
        assert "pass=199" in log.texts[-1]


@pytest.mark.qemu
async def test_reconnect_is_shown(tmp_path: Path) -> None:
    path = tmp_path / "late.qmp"
    monitor = Monitor(parse_address(f"late=unix:{path}"), backoff=(0.05, 0.2))
    session = MonitorSession(monitor, interval=0.2)
    app = app_for([session])
    qemu = QemuProcess(path, machine="pc")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: " waiting " in entry_text(app, "late"), what="waiting shown")
            assert " waiting " in text(app, MonitorHeader) and "lost" not in text(app, MonitorHeader)
            qemu.start()
            await until(pilot, lambda: "running" in entry_text(app, "late"), what="connected shown")
            assert "connected" in text(app, MonitorHeader)
            qemu.kill()
            await until(pilot, lambda: "retrying" in entry_text(app, "late")
                        or " waiting " in entry_text(app, "late"), what="drop shown")
            assert "lost" not in entry_text(app, "late")
            qemu.start()
            await until(pilot, lambda: "running" in entry_text(app, "late"), what="reconnected shown")
            await pilot.press("q")
        assert session.status.state is ConnState.CLOSED  # the app stopped its sessions
    finally:
        qemu.kill()


@pytest.mark.qemu
async def test_d_measures_the_dirty_rate(tmp_path: Path) -> None:
    qemu = QemuProcess(tmp_path / "vm.qmp", machine="pc").start()
    try:
        session = MonitorSession(Monitor(parse_address(f"vm=unix:{qemu.socket_path}")), interval=0.2)
        app = app_for([session])
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: session.polls >= 1, what="first poll")
            await pilot.pause(0.1)
            assert app.dashboard.check_action("measure_dirty_rate", ()) is True
            dirty = app.dashboard.query_one(DirtyPanel)
            await pilot.press("d")
            await until(pilot, lambda: "measuring" in (dirty.border_title or ""), what="measuring shown")
            assert app.dashboard.check_action("measure_dirty_rate", ()) is None  # greyed meanwhile
            await until(pilot, lambda: "measured" in (dirty.border_title or ""), what="result shown")
    finally:
        qemu.kill()


async def test_d_is_disabled_without_a_live_monitor() -> None:
    sessions, now = replayed("measure", 5.0)
    app = app_for(sessions, now)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.dashboard.check_action("measure_dirty_rate", ()) is None
        await pilot.press("d")  # a disabled key does nothing, and nothing breaks
        assert "measured 4.0 MiB/s" in app.dashboard.query_one(DirtyPanel).border_title


async def test_help_lists_the_keys_and_closes() -> None:
    sessions, now = replayed("storage", 16.9)
    app = app_for(sessions, now)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        body = str(app.screen.query_one("#help-text").render())
        for words in ("Next monitor", "Abort (not available now)", "All events", "Quit", "Help"):  # paused: no d
            assert words in body
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)


async def test_e_toggles_all_monitors_events() -> None:
    sessions, now = replayed("storage", 20.0)
    app = app_for(sessions, now)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.dashboard.query_one(EventLog)
        assert "src" in log.border_title and not any(" dst " in line for line in log.texts)
        await pilot.press("e")
        assert "all monitors" in log.border_title
        assert any(" dst RESUME" in line for line in log.texts)
        await pilot.press("e")
        assert "all monitors" not in log.border_title


async def test_q_quits() -> None:
    sessions, now = replayed("storage", 2.0)
    app = app_for(sessions, now)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0


def visible_entries(app: MigtuiApp) -> list[str]:
    """The monitors list's lines as on screen (its scrolled window)."""
    monitors = app.dashboard.query_one(MonitorList)
    return [monitors.render_line(y).text for y in range(monitors.size.height)]


async def test_fifty_monitors_stay_usable() -> None:
    # How long a key takes is bench/pilot_bench.py's business (docs/benchmarks.md).
    sessions, now = replayed_pairs("storage", 25, 1.0)
    app = app_for(sessions, now)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert any("▸src00" in line for line in visible_entries(app))
        for _ in range(49):
            await pilot.press("down")
        await pilot.pause()
        # The 50th monitor is selected, shown, and scrolled into view in the list.
        assert app.dashboard.selected is sessions[-1]
        assert text(app, MonitorHeader).startswith("dst24")
        assert "completed" in text(app, "#mig-status")  # dst24 is 20.2 s into its run: done
        shown = visible_entries(app)
        assert any("▸dst24" in line for line in shown), shown
        assert not any("src00" in line for line in shown)  # the list scrolled
        # A change on a monitor that is not shown touches its list entry only.
        session = sessions[3]
        session._notify(session.apply_event(QmpEvent("MIGRATION", {"status": "failed"}, now)))
        await until(pilot, lambda: "failed" in entry_text(app, session.name), what="entry updated")
        assert "failed" not in text(app, "#mig-status")


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "migtui", *args], capture_output=True, text=True,
                          timeout=30, env=env, stdin=subprocess.DEVNULL, **kwargs)


def test_cli_rejects_a_malformed_monitor_before_the_tui() -> None:
    result = run_cli("src=/tmp/a.qmp", "localhost:99999")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "99999" in lines[0] and lines[0].startswith("migtui: ")


@pytest.mark.parametrize("args, words", [
    (["--interval", "0", "vm.qmp"], "--interval"),
    (["--log-file", "/nonexistent-dir/x.log", "vm.qmp"], "--log-file"),
    (["vm.qmp"], "needs a terminal"),
])
def test_cli_usage_errors_are_one_line(args: list[str], words: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


async def test_linux_console_gets_the_ansi_theme_and_no_color_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    sessions, now = replayed("storage", 12.5)
    app = make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term="linux")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color
        assert app.theme == "ansi-dark"
        chart = app.dashboard.query_one("RateChart")
        assert "▁" not in str(chart.render().plain)  # no eighth blocks on the Linux console


async def test_the_first_frame_shows_the_monitors() -> None:
    # How long it takes to get there is bench/pilot_bench.py's business (docs/benchmarks.md).
    sessions, now = replayed("storage", 16.9)
    app = app_for(sessions, now)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        entries = " ".join(visible_entries(app))
        assert "▸src" in entries and "dst" in entries and "pre-switchover" in entries
        assert text(app, MonitorHeader).startswith("src")
        assert "pre-switchover" in text(app, "#mig-status")
        assert "STOPPED" in text(app, "#pause-lines")


# --- the pure helpers the widgets rely on -------------------------------------------

def test_only_changed_cells_are_repainted() -> None:
    from textual.content import Content

    from migtui.tui.repaint import changed_regions

    # A ticking figure: its own cells.
    (r,) = changed_regions(Content("total 12.7 s"), Content("total 13.7 s"), 40)
    assert (r.x, r.width) == (7, 1)
    # A bar that grows one cell: that cell, though the styled span moved.
    a = Content.assemble(("RAM ", "bold"), ("█" * 10, "$primary"), ("░" * 10, "dim"))
    b = Content.assemble(("RAM ", "bold"), ("█" * 11, "$primary"), ("░" * 9, "dim"))
    (r,) = changed_regions(a, b, 24)
    assert (r.x, r.width) == (14, 1)
    # Same cells, new colour: the whole line.
    c = Content.assemble(("RAM ", "bold"), ("█" * 10, "$success"), ("░" * 10, "dim"))
    (r,) = changed_regions(a, c, 24)
    assert (r.x, r.width) == (0, 24)
    assert changed_regions(Content("a"), Content("a\nb"), 10) is None


def test_chart_buckets_scale_and_window() -> None:
    from migtui.tui.widgets.rate_chart import bar_rows, bucket, column_step, nice_ceiling

    assert column_step(1.0, 50, span=10) == 2.0  # young history: fine columns (2 s minimum)
    assert column_step(1.0, 50, span=600) == 5.0  # old history: about three minutes
    assert column_step(5.0, 50, span=10) == 5.0  # never finer than the poll interval
    values = bucket([(10.0, 4.0), (11.0, 6.0), (14.5, 8.0)], now=15.0, step=2.0, columns=4)
    assert values == [None, 5.0, None, 8.0]
    held = bucket([(10.0, 4.0), (11.0, 6.0), (14.5, 8.0)], now=15.0, step=2.0, columns=4, hold=1.5)
    assert held == [None, 5.0, 5.0, 8.0]  # a poll that missed a bucket does not draw a gap
    assert nice_ceiling(4.2e6) == 5e6 and nice_ceiling(1.0e6) == 1e6 and nice_ceiling(0) == 0
    rows = bar_rows([None, 0.0, 0.1, 10.0], scale=10.0, rows=2, glyphs=" ▁▂▃▄▅▆▇█")
    assert rows == ["   █", "  ▁█"]  # unknown and zero are blank, a small value a sliver


def test_the_verdict_does_not_flap() -> None:
    from migtui.model.convergence import Trend, trend

    assert trend(1.2) is Trend.OVER and trend(0.9) is Trend.CLOSE and trend(0.5) is Trend.FINE
    assert trend(0.98, Trend.OVER) is Trend.OVER  # hovering at the boundary: stays
    assert trend(0.90, Trend.OVER) is Trend.CLOSE
    assert trend(0.78, Trend.CLOSE) is Trend.CLOSE and trend(0.7, Trend.CLOSE) is Trend.FINE


# --- what a reviewer saw wrong in real screenshots ---------------------------------

def _ram_replies(scenario: str) -> list[dict[str, Any]]:
    entries = json.loads((TUI_FIXTURES / f"{scenario}.json").read_text())["entries"]
    return [e["return"] for e in entries if e["side"] == "src" and e.get("command") == "query-migrate"
            and isinstance(e["return"].get("ram"), dict)]


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
        first, second = row.children
        assert second.region.x - first.region.x == len("sent 119.2/128.5 MiB")  # on screen too
        # A second change while the first one's layout is pending (seen on a real
        # dashboard): the first field's idle and a reflow run in between, as they can.
        row.set([Content("destination: RAM figures"), Content("left 123.4 MiB")])
        first._check_refresh()
        app.screen._refresh_layout()
        row.set([Content("destination: RAM figures"), Content("left 1 B")])
        await pilot.pause()
        assert second.region.width == len(" · left 1 B")


def test_the_ram_row_keeps_its_width_through_a_real_migration() -> None:
    from migtui.model.migration import MigrationInfo
    from migtui.tui.widgets.migration_panel import ram_fields

    replies = _ram_replies("stuck") + _ram_replies("storage")
    assert len(replies) > 20
    widths = set()
    for reply in replies:
        fields = [f for f in ram_fields(MigrationInfo.from_qmp(reply)) if f is not None]
        widths.add(tuple(f.cell_length for f in fields))
        text = " · ".join(f.plain for f in fields)
        # Only the padding of a number to its widest value, nowhere else.
        assert re.fullmatch(r"left +(<0\.1|\d+\.\d) of 128\.5 MiB · sent +\d+(\.\d)? (B|KiB|MiB)", text), text
    # Padded to the widest plausible value: the layout never moves while it ticks.
    assert len(widths) == 1, widths


def test_sent_beyond_the_ram_size_is_shown_as_it_is() -> None:
    from migtui.model.migration import MigrationInfo
    from migtui.tui.widgets.migration_panel import ram_fields

    MiB = 1 << 20
    info = MigrationInfo.from_qmp({"status": "active", "ram": {
        "transferred": int(209.1 * MiB), "remaining": int(3.1 * MiB), "total": int(128.5 * MiB)}})
    left, sent = (f.plain for f in ram_fields(info) if f is not None)
    assert left == "left   3.1 of 128.5 MiB"
    assert sent == "sent 209.1 MiB"  # re-sent pages: more than the RAM, and said so plainly
    assert info.ram_progress == pytest.approx((128.5 - 3.1) / 128.5, abs=1e-3)  # the bar: what is left


def test_a_destination_says_where_its_ram_figures_are() -> None:
    from migtui.model.migration import MigrationInfo
    from migtui.model.runstate import RunState
    from migtui.model.vmstate import VmState
    from migtui.tui.widgets.migration_panel import ram_fields

    state = VmState()
    state.apply_run_state(RunState.from_qmp({"status": "inmigrate", "running": False}), 0.0)
    state.apply_run_state(RunState.from_qmp({"status": "running", "running": True}), 1.0)
    assert state.incoming_side  # once a destination, still one after it took over
    (text,) = ram_fields(MigrationInfo.from_qmp({"status": "completed"}), incoming=True)
    assert text is not None and text.plain == "destination: RAM figures are on the source"
    (text,) = ram_fields(MigrationInfo.from_qmp({"status": "setup"}))
    assert text is not None and text.plain == "QEMU gives no RAM figures while setup"


@pytest.mark.parametrize("size, columns", [
    ((80, 24), ("id", "status", "progress", "type")),
    ((100, 30), ("id", "status", "progress", "type", "limit")),
])
async def test_block_job_columns_fit_the_panel(size: tuple[int, int], columns: tuple[str, ...]) -> None:
    from textual.widgets import DataTable

    sessions, now = replayed("storage", 12.5)
    app = app_for(sessions, now)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        panel = app.dashboard.query_one(BlockJobsPanel)
        table = panel.query_one(DataTable)
        assert panel.columns == columns
        used = sum(column.get_render_width(table) for column in table.columns.values())
        assert used <= table.size.width, f"{used} cells of columns in {table.size.width}"
        assert table.size.width == panel.size.width
        await pilot.resize_terminal(*((100, 30) if size == (80, 24) else (80, 24)))
        await pilot.pause()
        assert panel.columns != columns  # follows the width


def test_block_job_status_and_errors() -> None:
    from migtui.model.blockjobs import BlockJob
    from migtui.tui.widgets.block_jobs import error_lines, fitting_columns, job_row, job_status

    assert job_status(BlockJob("m", status="ready", ready=True, io_status="ok")) == "ready"
    assert job_status(BlockJob("m", status="standby", ready=True)) == "standby, ready"
    assert job_status(BlockJob("m", status="paused", io_status="nospace")) == "paused, io nospace"
    assert job_status(BlockJob("m", status="concluded", ended="completed")) == "completed"
    failed = BlockJob("m", status="concluded", ended="completed", error="Input/output error")
    assert error_lines({"m": failed}).plain == "m: Input/output error"
    rows = {"m": job_row(BlockJob("mirror-data0", type="mirror", status="running", len=1 << 26,
                                  offset=1 << 25, speed=0))}
    assert rows["m"]["limit"] == "none" and rows["m"]["progress"] == "50% 32.0/64.0 MiB"
    assert fitting_columns(rows, 0) == ("id", "status", "progress", "type", "limit")
    assert fitting_columns(rows, 40) == ("id", "status", "progress")  # never fewer than these


async def test_a_lost_monitor_shows_its_last_status_as_stale(tmp_path: Path) -> None:
    sessions, now = replayed("stuck", 12.8)
    src = sessions[0]
    gone = Monitor(parse_address(f"src=unix:{tmp_path / 'gone.qmp'}"), connect_timeout=1.0)
    try:
        await gone.connect()
    except Exception as err:  # the real error a vanished QEMU gives
        error = err
    app = app_for(sessions, now)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        panel = app.dashboard.query_one(MigrationPanel)
        assert " active " in entry_text(app, "src") and not panel.has_class("-stale")
        src.status = ConnectionStatus(ConnState.LOST, 3, error)  # type: ignore[arg-type]
        src._notify({"connection"})
        await until(pilot, lambda: panel.has_class("-stale"), what="stale panel")
        entry = entry_text(app, "src")
        # Still tried all along: "waiting" (for the socket), never "lost".
        assert " waiting " in entry and "last: active" in entry and " active " not in entry
        assert text(app, "#mig-status").startswith("last: active · pass 4")
        assert " waiting " in text(app, MonitorHeader) and "lost" not in entry
        assert app.dashboard.query_one(DirtyPanel).has_class("-stale")
        src.status = ConnectionStatus(ConnState.CONNECTED)
        src._notify({"connection"})
        await until(pilot, lambda: not panel.has_class("-stale"), what="fresh panel")
        assert text(app, "#mig-status").startswith(" active ")
        assert " active " in entry_text(app, "src")


async def test_an_empty_event_log_says_why() -> None:
    from migtui.tui.widgets.event_log import EMPTY

    sessions, now = replayed("storage", 12.5)
    sessions[1].state.events.clear()  # as if the dashboard had connected mid-migration
    app = app_for(sessions, now)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("down")
        log = app.dashboard.query_one(EventLog)
        assert log.texts == []
        assert log.render_line(0).text.startswith(EMPTY[0])
        await pilot.press("up")
        assert not log.render_line(0).text.startswith(EMPTY[0])
