"""The dashboard's parts without an app: the text, figures and rows it draws, its command line.

Pure functions of the TUI (``migtui/tui/``), fed real recordings where they read QEMU's
replies (``tests/replay.py``: a session offline is the model here, not a view). The
dashboard itself, driven by keys as a view of an engine, is in ``tests/tui/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from replay import TUI_FIXTURES, replayed

from migtui.model.pauseclock import PauseClock
from migtui.model.qmpinput import QmpInput
from migtui.model.switchover import Outcome, Step, StepState, SwitchoverResult
from migtui.tui.pause_text import (
    banner_line,
    clock_figure,
    clock_line,
    clock_text,
    clock_words,
    dialog_title,
    step_items,
)
from migtui.tui.widgets.hanging import hang
from migtui.workflow.pairing import destination_for, pair_key
from migtui.workflow.session import MonitorSession
from migtui.workflow.switchover import Switchovers

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- repaints, charts, rows


def test_only_changed_cells_are_repainted() -> None:
    from textual.content import Content
    from textual.geometry import Region

    from migtui.tui.repaint import changed_regions

    def regions(old: Content, new: Content, width: int) -> list[Region]:
        found = changed_regions(old, new, width)
        assert found is not None, "the whole widget repainted"
        return found

    # A ticking figure: its own cells.
    (r,) = regions(Content("total 12.7 s"), Content("total 13.7 s"), 40)
    assert (r.x, r.width) == (7, 1)
    # A bar that grows one cell: that cell, though the styled span moved.
    a = Content.assemble(("RAM ", "bold"), ("█" * 10, "$primary"), ("░" * 10, "dim"))
    b = Content.assemble(("RAM ", "bold"), ("█" * 11, "$primary"), ("░" * 9, "dim"))
    (r,) = regions(a, b, 24)
    assert (r.x, r.width) == (14, 1)
    # A styled figure that ticks, its spans in place: its own cells.
    d = Content.assemble(("sent ", "$text-muted"), ("148.1 MiB", "bold"))
    e = Content.assemble(("sent ", "$text-muted"), ("148.4 MiB", "bold"))
    (r,) = regions(d, e, 24)
    assert (r.x, r.width) == (9, 1)
    # Same cells, new colour: the whole line.
    c = Content.assemble(("RAM ", "bold"), ("█" * 10, "$success"), ("░" * 10, "dim"))
    (r,) = regions(a, c, 24)
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


def _ram_replies(scenario: str) -> list[dict[str, Any]]:
    entries = json.loads((TUI_FIXTURES / f"{scenario}.json").read_text())["entries"]
    return [e["return"] for e in entries if e["side"] == "src" and e.get("command") == "query-migrate"
            and isinstance(e["return"].get("ram"), dict)]


def test_the_ram_row_says_what_zero_pages_are_through_a_real_migration() -> None:
    """Sent is far below the RAM done (51.6 MiB at 99 % of 128.5 MiB): the rest were zero
    pages, a flag each; the row says how much, and what they are (where there is room)."""
    from migtui.model.migration import MigrationInfo
    from migtui.tui.widgets.migration_panel import RAM_OPTIONAL, ZERO_NOTE, ram_fields

    replies = _ram_replies("stuck") + _ram_replies("storage")
    assert len(replies) > 20
    for reply in replies:
        fields = [f for f in ram_fields(MigrationInfo.from_qmp(reply)) if f is not None]
        text = " · ".join(f.plain for f in fields[:RAM_OPTIONAL])
        assert re.fullmatch(r"left +(<0\.1|\d+\.\d) of 128\.5 MiB · sent +\d+(\.\d)? (B|KiB|MiB)"
                            r" · zero +\d+(\.\d)? (B|KiB|MiB)", text), text
        assert fields[RAM_OPTIONAL].plain == ZERO_NOTE
        # Fits 80 columns (54 cells beside the monitors) without the note.
        assert len(text) <= 54, text


def test_sent_beyond_the_ram_size_is_shown_as_it_is() -> None:
    from migtui.model.migration import MigrationInfo
    from migtui.tui.widgets.migration_panel import ram_fields

    MiB = 1 << 20
    info = MigrationInfo.from_qmp({"status": "active", "ram": {
        "transferred": int(209.1 * MiB), "remaining": int(3.1 * MiB), "total": int(128.5 * MiB)}})
    left, sent = (f.plain for f in ram_fields(info) if f is not None)  # no zero pages said: none
    assert left == "left   3.1 of 128.5 MiB"  # padded to the total: a ticking figure keeps its width
    assert sent == "sent 209 MiB"  # re-sent pages: more than the RAM, and said so plainly
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
    assert fitting_columns(rows, 55) == ("id", "status", "progress", "type", "more")  # "…" for limit
    assert fitting_columns(rows, 40) == ("id", "status", "progress", "more")  # never fewer than these


@pytest.mark.parametrize("width", [80, 60, 55, 47, 40, 30, 20])
def test_block_jobs_fit_their_width_and_every_cut_cell_ends_in_an_ellipsis(width: int) -> None:
    from migtui.model.blockjobs import BlockJob
    from migtui.tui.widgets.block_jobs import COLUMNS, MORE, cut, job_row, layout

    rows = {job: job_row(BlockJob(job, type="mirror", status="running", ready=True, len=1 << 26,
                                  offset=1 << 25, speed=0)) for job in ("mirror-data0", "mirror-boot-disk")}
    columns = layout(rows, width)
    assert sum(w + 2 for _, w in columns) <= max(width, 2 * 3 * len(columns)), columns
    keys = [key for key, _ in columns]
    assert keys[:3] == ["id", "status", "progress"], keys
    assert ("more" in keys) == ("limit" not in keys), keys  # a dropped column leaves its "…"
    headers = dict((*COLUMNS, MORE))
    for row in rows.values():
        for key, w in columns:
            text, shown = row.get(key, "…"), cut(row.get(key, "…"), w)
            assert shown == text or (shown.endswith("…") and len(shown) == w), (key, w, text, shown)
        assert cut(headers["progress"], 3) == "pr…"





# ---------------------------------------------------------------------- the command line


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
    (["--interval", "0", "./vm.qmp"], "--interval"),
    (["--log-file", "/nonexistent-dir/x.log", "./vm.qmp"], "--log-file"),
    (["./vm.qmp"], "needs a terminal"),
])
def test_cli_usage_errors_are_one_line(args: list[str], words: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr



def test_auto_resume_and_read_only_exclude_each_other() -> None:
    result = run_cli("--auto-resume", "--read-only", "./vm.qmp")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--auto-resume and --read-only exclude each other" in lines[0], result.stderr


# ---------------------------------------------------------------------- the pause's words and clock


def test_clock_and_pairing_helpers() -> None:
    assert clock_text(0.04) == "0 ms" and clock_text(0.38) == "300 ms" and clock_text(12.38) == "12.3 s"
    assert clock_text(59.99) == "59.9 s" and clock_text(125.9) == "2m 05s" and clock_text(3725) == "1h 02m"
    assert banner_line("src", PauseClock(100.0, True), 109.94).plain == (
        " ‖ src STOPPED 9.9 s · s opens ")
    assert banner_line("src", PauseClock(100.0, True), 109.94, "abort in 50.1 s").plain == (
        " ‖ src STOPPED 9.9 s · abort in 50.1 s · s opens ")  # the clock and the deadline first
    assert "STOPPED ≥9.9 s" in banner_line("src", PauseClock(100.0, False), 109.94).plain  # seen late: at least
    assert pair_key("src01") == pair_key("dst01") == "01"
    assert pair_key("web-source") == pair_key("web-dest") == "web"
    a, b, c = (MonitorSession.offline(n) for n in ("src1", "dst1", "dst2"))
    assert destination_for(a, [a, b, c]) is b  # the names pair them
    lone = MonitorSession.offline("vm-a")
    assert destination_for(lone, [lone, b, c]) is None  # two candidates, no name: not guessed


def test_steps_stay_one_line_at_80_and_100_columns() -> None:
    """The resume's steps as the workflow labels them, at the dialog's text width at 80
    and 100 columns: one line each, times in one right-aligned column; a failure's
    reason follows in full."""
    def step(key: str, label: str, state: StepState, detail: str = "", took: float | None = 0.002) -> Step:
        return Step(key, label, state, 1000.0, None if took is None else 1000.0 + took, detail)

    done = SimpleNamespace(steps=[
        step("check", "Check the source and its mirrors", StepState.DONE,
             "fresh query-block-jobs: 1 mirror(s) ready", 0.001),
        step("mirror:mirror-data0", "Finish mirror mirror-data0 (block-job-cancel)", StepState.DONE,
             "completed: the destination's copy is final"),
        step("continue", "Continue the migration (migrate-continue)", StepState.DONE, took=0.016),
        step("complete", "Wait for the migration to complete", StepState.DONE,
             "completed, downtime 1430 ms", 0.011),
        step("destination", "Destination dst runs", StepState.DONE, "running", 0.0),
    ])
    for width in (76, 96):  # the dialog's text width at 80 and 100 columns
        lines = hang(step_items(done), width).plain.split("\n")  # type: ignore[arg-type]
        assert len(lines) == len(done.steps), lines
        assert all(len(line) == width and line.endswith(" ms") for line in lines), lines
        assert lines[0].endswith("  1 ms") and lines[2].endswith(" 16 ms"), lines
    failed = SimpleNamespace(steps=[
        step("mirror:mirror-data0", "Finish mirror mirror-data0 (block-job-cancel)", StepState.FAILED,
             "ended with an error (Input/output error), the destination's copy is not complete"),
        step("continue", "Continue the migration (migrate-continue)", StepState.SKIPPED),
    ])
    lines = hang(step_items(failed), 76).plain.split("\n")  # type: ignore[arg-type]
    assert lines[0].startswith("✗ Finish mirror mirror-data0") and lines[0].endswith(" 2 ms"), lines
    assert " ".join(line.strip() for line in lines[1:-1]).endswith("copy is not complete"), lines
    assert lines[-1].startswith("– Continue the migration"), lines


def test_dialog_title_says_how_the_pause_ended() -> None:
    def title(action: str | None, outcome: Outcome | None) -> str:
        result = None if outcome is None else SwitchoverResult(action or "watch", outcome, "why")
        return dialog_title("src", SimpleNamespace(action=action, result=result))  # type: ignore[arg-type]

    assert title(None, None) == "src: paused before switchover"
    assert title("resume", None) == "src: resuming the switchover"
    assert title("resume", Outcome.COMPLETED) == "src: switchover completed"
    assert title("abort", Outcome.ABORTED) == "src: switchover aborted"
    assert title("resume", Outcome.FAILED) == "src: switchover failed"
    assert title("resume", Outcome.STOPPED) == "src: switchover failed, guest still stopped"
    assert title("abort", Outcome.ERROR) == "src: abort failed"
    assert title("watch", Outcome.OTHER_CLIENT) == "src: switchover ended by another client"


def test_pause_clock_reads_qemu_timestamps(version: str) -> None:
    sessions, now = replayed("storage", "paused", version=version)
    src = sessions[0]
    clock = PauseClock.of(src.state)
    assert clock is not None and clock.exact
    assert clock.start == src.state.stopped_since  # STOP, 1.4 ms before MIGRATION pre-switchover
    assert round(clock.seconds(now), 1) == 1.2
    assert Switchovers().current(src) is None  # looking creates no controller


def clock_of(state: Any, recorded: float | None = None) -> PauseClock:
    clock = PauseClock.of(state, recorded)
    assert clock is not None
    return clock


def _reply(status: str, total_ms: int | None = None) -> dict[str, object]:
    reply: dict[str, object] = {"status": status, "ram": {"transferred": 1 << 20, "remaining": 1 << 20,
                                                          "total": 2 << 20, "mbps": 32.0, "page-size": 4096}}
    if total_ms is not None:
        reply["total-time"] = total_ms
    return reply


def test_a_pause_first_seen_by_a_poll_is_bounded_by_the_migrations_total_time() -> None:
    """The engine (or migtui) started 20 s into a migration, during its pause: the first
    poll finds it. The clock says at least what it saw and, by total-time, at most since the
    migration began; the banner the same."""
    session = MonitorSession.offline("src")
    session.apply_reply("query-migrate", _reply("pre-switchover", total_ms=20_400), now=1000.0)
    clock = PauseClock.of(session.state)
    assert clock is not None and not clock.exact and clock.start == 1000.0
    assert clock_figure(clock, 1002.0) == "≥2.0 s, ≤22.4 s"
    assert clock_words(clock, 1002.0) == "at least 2.0 s, at most 22.4 s"
    assert "STOPPED ≥2.0 s, ≤22.4 s · s opens" in banner_line("src", clock, 1002.0).plain
    # Seen active by an earlier poll: the pause began after that.
    session = MonitorSession.offline("src")
    session.apply_reply("query-migrate", _reply("active", total_ms=18_000), now=998.0)
    session.apply_reply("query-migrate", _reply("pre-switchover", total_ms=20_000), now=1000.0)
    assert clock_figure(clock_of(session.state), 1002.0) == "≥2.0 s, ≤4.0 s"


def test_a_slow_answer_keeps_the_bound_true() -> None:
    """On a busy machine QEMU's answer can be read 100s of ms after it was written. Its
    total-time and "active" are from some moment after the query was sent, so the bound
    counts from the sending, not the reading (CI saw the pause "at most" 0.1 s too short).
    A view replaying the engine's feed gets the same bound."""
    session = MonitorSession.offline("src")
    entries: list[QmpInput] = []
    session.add_input_listener(entries.append)
    session.apply_reply("query-migrate", _reply("pre-switchover", total_ms=20_400), now=1000.0, asked=999.7)
    clock = PauseClock.of(session.state)
    assert clock is not None and clock.start == 1000.0  # at least: read then, so paused by then
    assert clock_figure(clock, 1002.0) == "≥2.0 s, ≤22.7 s"
    view = MonitorSession.offline("src")
    view.replay(entries)
    assert clock_figure(clock_of(view.state), 1002.0) == "≥2.0 s, ≤22.7 s"
    # The "active" before the pause: true when QEMU answered, which may be just after sending.
    session = MonitorSession.offline("src")
    session.apply_reply("query-migrate", _reply("active", total_ms=18_000), now=998.0, asked=997.5)
    session.apply_reply("query-migrate", _reply("pre-switchover", total_ms=20_000), now=1000.0, asked=999.9)
    assert clock_figure(clock_of(session.state), 1002.0) == "≥2.0 s, ≤4.5 s"


def test_the_event_that_comes_after_the_poll_makes_the_clock_exact() -> None:
    """A poll saw the pause first; QEMU's MIGRATION event (sent earlier, read later) has the
    exact start: the clock uses it (a view replaying the engine's journal has both)."""
    session = MonitorSession.offline("src")
    session.apply_reply("query-migrate", _reply("active", total_ms=5_000), now=990.0)
    session.apply_reply("query-migrate", _reply("pre-switchover", total_ms=15_000), now=1000.0)
    stop = {"event": "STOP", "data": {}, "timestamp": {"seconds": 997, "microseconds": 0}}
    pre = {"event": "MIGRATION", "data": {"status": "pre-switchover"},
           "timestamp": {"seconds": 997, "microseconds": 1000}}
    session.replay([{"t": 1000.1, "kind": "event", "event": stop}, {"t": 1000.1, "kind": "event", "event": pre}])
    clock = PauseClock.of(session.state)
    assert clock is not None and clock.exact and clock.start == 997.0, clock
    assert clock_figure(clock, 1002.0) == "5.0 s"
    # The engine's own record of a start earlier than what a view's journal still holds.
    late = MonitorSession.offline("src")
    late.apply_reply("query-migrate", _reply("pre-switchover", total_ms=400_000), now=1300.0)
    assert clock_figure(clock_of(late.state, recorded=1000.0), 1302.0) == "≥5m 02s, ≤6m 42s"


def test_after_completion_qemus_downtime_replaces_the_estimate() -> None:
    estimate = PauseClock(1000.0, False, 985.0)
    line = clock_line(estimate, 1010.0, 1005.1, downtime_ms=20_400).plain
    assert line == "Guest was stopped 20.4 s (QEMU's downtime; migtui saw the pause only after it began)", line
    assert clock_line(estimate, 1010.0, 1005.1).plain == (
        "Guest was stopped at least 5.1 s, at most 20.1 s in this pause")
    exact = PauseClock(1000.0, True)
    assert clock_line(exact, 1010.0, 1001.2, downtime_ms=1_450).plain == "Guest was stopped 1.2 s in this pause"




def test_a_pause_told_by_libvirts_events_is_bounded_by_the_last_poll_that_saw_the_guest_run() -> None:
    """Read-only libvirt: no QEMU events. The pause is told as it is received (libvirt's
    SUSPENDED_MIGRATED, fed as a reply, now) with when the guest was last seen running: the
    clock says at least since it was received, at most since then."""
    session = MonitorSession.offline("a/vm")
    now = session.clock()
    session.apply_reply("query-migrate", _reply("active", total_ms=18_000), now=now - 2.0)
    session.feed("query-migrate", _reply("pre-switchover", total_ms=19_900), began_after=now - 0.4)
    clock = PauseClock.of(session.state)
    assert clock is not None and not clock.exact and clock.earliest == now - 0.4
    assert clock.start >= now and clock.at_most(clock.start + 0.1) == pytest.approx(clock.start + 0.1 - (now - 0.4))
