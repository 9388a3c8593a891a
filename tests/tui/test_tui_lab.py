"""The dashboard against a real lab migration with storage: what the panels show.

The lab's guest re-dirties its 4 MiB at 8 MiB/s, so at 4 MiB/s the migration
cannot converge: the dirty rate shows up. Then the bandwidth is raised (as an
operator would), QEMU pauses before switchover, the mirror is finished gracefully
and the migration continues to completion. All through the lab's control sockets;
the dashboard, a view of its engine, only watches.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import UTC

import pytest
from conftest import app_for, until
from engine_util import EngineProcess, attached, watch
from qemu_util import QemuProcess
from textual.pilot import Pilot
from tui_util import lab_monitors

from migtui.lab.lab import MIRROR_JOB, Lab
from migtui.transport import ConnState
from migtui.tui.app import MigtuiApp, make_app
from migtui.tui.widgets.block_jobs import BlockJobsPanel
from migtui.tui.widgets.event_log import EventLog
from migtui.tui.widgets.field_row import FieldRow
from migtui.tui.widgets.monitor_header import MonitorHeader
from migtui.tui.widgets.monitor_list import MonitorList
from migtui.tui.widgets.rate_chart import RateChart
from migtui.tui.widgets.text_line import TextLine

MiB = 1024 * 1024


def watching(pred: Callable[[], bool], each: Callable[[], None]) -> Callable[[], bool]:
    """``pred``, calling ``each`` first every time it is asked."""
    def asked() -> bool:
        each()
        return pred()
    return asked


def status_text(app: MigtuiApp) -> str:
    return app.dashboard.query_one("#mig-status", FieldRow).shown.plain


def job_row(app: MigtuiApp) -> dict[str, str] | None:
    return app.dashboard.query_one(BlockJobsPanel)._rows.get(MIRROR_JOB)



async def until_shown(pilot: Pilot, pred: Callable[[], object], timeout: float, what: str) -> None:
    """``until``, then one more turn of the app so the screen shows it too."""
    await until(pred, timeout, what)
    await pilot.pause()

@pytest.mark.qemu
async def test_dashboard_follows_a_real_storage_migration(lab: Lab) -> None:
    await lab.prepare(storage=True, pause=True, max_bandwidth=4 * MiB)
    ctl = await lab.control(lab.src)
    shown: list[str] = []

    def watch() -> None:  # every status the migration panel displayed, in order
        badge = status_text(app).split(" · ")[0].strip()
        if not shown or shown[-1] != badge:
            shown.append(badge)

    async with app_for(lab_monitors(lab)) as view:
        app, (src, _dst) = view.app, view.sessions
        await until(watching(lambda: job_row(app) is not None, watch), 10, "mirror in the table")
        row = job_row(app)
        assert row is not None and row["status"] == "ready" and row["type"] == "mirror"
        assert "armed" in app.dashboard.query_one(MonitorHeader).shown.plain

        await lab.migrate()
        chart = app.dashboard.query_one(RateChart)
        await until(watching(lambda: (chart._data.dirty_now or 0) > 0, watch), 60, "a dirty rate")
        values = app.dashboard.query_one("#chart-values", TextLine).shown.plain.splitlines()
        assert values[0].strip().endswith("MiB/s") or values[0].strip().endswith("KiB/s"), values
        assert any(s.dirty_rate_bytes_per_s for s in src.state.history)

        # The operator gives it room; QEMU converges and pauses before switching over.
        await ctl.execute("migrate-set-parameters", {"max-bandwidth": 1024 * MiB, "downtime-limit": 2000})
        await until(watching(lambda: "pre-switchover" in status_text(app), watch), 60, "pre-switchover")
        await ctl.execute("block-job-cancel", {"device": MIRROR_JOB})
        await until(watching(lambda: (job_row(app) or {}).get("status", "").startswith("completed"), watch), 30,
                    "mirror completed")
        await ctl.execute("migrate-continue", {"state": "pre-switchover"})
        await until(watching(lambda: "completed" in status_text(app), watch), 30, "completed")
        downtime = app.dashboard.query_one("#mig-downtime", FieldRow)
        # The event said completed; the next poll brings QEMU's final downtime.
        await until(lambda: downtime.shown.plain.startswith("downtime "), 10, "final downtime")
        # Parameters are re-read on each MIGRATION event (and every few seconds).
        await until(lambda: "limit 2.0 s" in downtime.shown.plain, 20, "new downtime-limit")
        # The pause was QEMU's to end here (the lab's client did): the dialog came and went.
        await until(lambda: app.screen is app.dashboard, 10, "the dialog gone")

        await view.press("down")
        await until(lambda: "completed" in status_text(app), 30, "destination completed")
        log_lines = app.dashboard.query_one(EventLog).texts
        assert any("RESUME" in line for line in log_lines)

    # Before the first poll lands (slow on a busy machine) the panel honestly says "unknown".
    known = [s for s in shown if s != "migration status unknown"]
    assert known[0] == "no migration", shown
    order = [s for s in shown if s in ("active", "pre-switchover", "completed")]
    assert order == ["active", "pre-switchover", "completed"], shown
    events = [ev.data.get("status") for ev in src.state.events if ev.name == "MIGRATION"]
    assert events == ["setup", "active", "pre-switchover", "device", "completed"]


@pytest.mark.qemu
async def test_a_killed_destination_keeps_its_events_and_shows_its_status_as_stale(lab: Lab) -> None:
    # lost.png showed an empty log for a destination that died mid-migration: that
    # dashboard had connected after the migration started, and QMP never replays
    # events. One that watched the start keeps them through the loss.
    await lab.prepare(storage=False, pause=False, max_bandwidth=1 * MiB)  # stays active
    async with app_for(lab_monitors(lab), size=(100, 30)) as view:
        app, (_src, dst) = view.app, view.sessions
        await lab.migrate()
        await until(lambda: dst.state.migration_status == "active" and dst.state.incoming_side,
                    30, "the destination active")
        await view.press("down")
        log = app.dashboard.query_one(EventLog)
        await until(lambda: any("MIGRATION status=active" in line for line in log.texts), 10,
                    "the destination's event in the log")
        ram = app.dashboard.query_one("#mig-ram", FieldRow)
        assert ram.plain == "destination: RAM figures are on the source"

        os.kill(lab.dst.pid, signal.SIGKILL)
        def entry() -> str:
            return str(app.dashboard.query_one(MonitorList).get_option("dst").prompt)

        await until(lambda: dst.status.state is ConnState.LOST and " waiting " in entry(), 30,
                    "the destination lost (the engine waiting for its socket)")
        assert "last: active" in entry() and " active " not in entry()
        assert status_text(app).startswith("last: active")
        assert any("MIGRATION status=active" in line for line in log.texts)  # kept through the loss
        assert app.dashboard.query_one("#migration").has_class("-stale")


@pytest.mark.qemu
async def test_a_dead_qemus_events_are_marked_when_a_new_qemu_answers_at_its_socket(
        lab: Lab, engine: EngineProcess) -> None:
    """Issue 14.5: the source QEMU is killed and another starts at its socket. The events of
    the dead one stay in the Events panel, with a mark below them saying they came from the
    connection before (maybe another QEMU) -- also when the log is rebuilt (e toggles). A
    view that attaches afterwards shows the new connection only, without a mark."""
    await lab.prepare(storage=False, pause=False)
    async with attached(engine.directory) as client:
        src, dst = await watch(client, [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"])
        await until(lambda: src.connected and src.polls, 15, "connected")
        await lab.migrate()
        await until(lambda: src.state.migration_status == "completed", 60, "the migration done")
        app = make_app(sessions=[src, dst], tz=UTC, term="xterm-256color")
        app.engine_client = client
        async with app.run_test(size=(100, 30)) as pilot:
            events = app.dashboard.query_one(EventLog)
            await until_shown(pilot, lambda: any(" MIGRATION status=completed" in t for t in events.texts), 20,
                        "the migration's events")
            before = list(events.texts)
            generation = src.generation
            os.kill(lab.src.pid, signal.SIGKILL)
            await until_shown(pilot, lambda: not src.connected, 15, "the monitor lost")
            fresh = QemuProcess(lab.src.qmp_path, machine="pc").start()
            try:
                await until_shown(pilot, lambda: src.connected and src.generation != generation, 30, "reconnected")
                mark = "reconnected: the events above are from src's connection before (maybe another QEMU)"
                await until_shown(pilot, lambda: any(mark in t for t in events.texts), 10, "the mark")
                texts = events.texts
                at = next(i for i, t in enumerate(texts) if mark in t)
                assert texts[:at] == before, (before, texts)  # the dead QEMU's events, above the mark
                await pilot.press("e")  # all monitors: rebuilt, the mark after src's events before it
                await until_shown(pilot, lambda: any(" src MIGRATION" in t for t in events.texts), 5, "all monitors")
                rebuilt = events.texts
                marks = [i for i, t in enumerate(rebuilt) if "src reconnected: the events above" in t]
                assert len(marks) == 1, rebuilt
                assert len([t for t in rebuilt[:marks[0]] if " src " in t]) == len(before), rebuilt
                await pilot.press("e")  # src alone again: the same as before the toggle
                await until_shown(pilot, lambda: not any(" src MIGRATION" in t for t in events.texts), 5, "src alone")
                assert events.texts[:len(before)] == before and mark in events.texts[len(before)]
                async with attached(engine.directory) as later:  # a view that comes afterwards
                    await later.subscribe()
                    again = later.sessions["src"]
                    assert again.generation == src.generation and again.earlier_events == []
                    assert again.state.run_state is not None  # the picture it was sent, not reset after it
            finally:
                fresh.kill()
