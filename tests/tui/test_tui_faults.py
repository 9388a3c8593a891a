"""The screen after faults, against real QEMU (issue 9): the dashboard, a view of its
engine, driven with Pilot while the lab's QEMUs are killed, frozen or watched from mid-pause.

- the source QEMU killed with the dialog open: "source QEMU gone", the clock stops, the
  last figures are marked, the keys say why not;
- quitting over the dialog quits the view only: the engine keeps the pause and says so;
  the arm question answers to ``a``, never to ``y`` (which resumes in the dialog);
- migtui started during a pause: the clock says "at least ..., at most ..." (the
  migration's total time bounds it), and after the resume QEMU's downtime replaces it;
- a frozen QEMU (SIGSTOP): its figures are marked stale once its polls time out; a resume
  it never got is said in the dialog (no toast over it) and can be tried again;
- a new QEMU at the source's socket ends the dialog's pause.

What needs no real QEMU (sizes, notices, libvirt's pauses) is in test_tui_screen.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest
from conftest import app_for, until
from qemu_util import QemuProcess
from tui_util import banner, dialog, dialog_shown, lab_monitors, migrate_to_pause, qemu_status

from migtui.format import format_ms
from migtui.lab.lab import Lab
from migtui.model.coerce import as_mapping
from migtui.model.switchover import Outcome
from migtui.tui.screens.switchover import SwitchoverScreen
from migtui.tui.widgets.field_row import FieldRow
from migtui.tui.widgets.hanging import HangingLines
from migtui.tui.widgets.migration_panel import MigrationPanel
from migtui.tui.widgets.monitor_header import MonitorHeader
from migtui.tui.widgets.pause_banner import PauseBanner

MiB = 1 << 20


@pytest.mark.qemu
async def test_a_killed_source_stops_the_clock_and_says_its_qemu_is_gone(lab: Lab) -> None:
    async with app_for(lab_monitors(lab), size=(100, 30)) as view:
        app = view.app
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog")
        box = dialog(app)
        assert "all green" in box.section("checks")

        os.kill(lab.src.pid, signal.SIGKILL)  # the source QEMU dies in its pause
        await until(lambda: box.query_one("#sw-box").border_title == "src: source QEMU gone (monitor lost)", 30,
                    "the dialog to say the source is gone")
        await until(lambda: box.section("clock").startswith("Source monitor lost · guest stopped "), 10,
                    "the clock to stop")
        stopped = box.section("clock")
        assert not box.clock_running
        box.tick(time.time() + 5.0)  # five seconds on: the same figure
        assert box.section("clock") == stopped, (stopped, box.section("clock"))
        checks = box.section("checks")
        assert checks.startswith("Last known, before the monitor was lost (not current)"), checks
        assert "all green" not in checks
        # No green tick from stale data: every line of the list is muted.
        listed = box.query_one("#sw-checks", HangingLines).content
        assert not any("$success" in str(span.style) for span in listed.spans)
        for key in ("resume", "abort"):
            assert box.check_action(key, ()) is None  # shown unavailable ...
        assert "source QEMU gone" in box.unavailable_reason("y")  # ... and y says why
        assert "source QEMU gone" in box.section("note")
        # The dashboard beneath waits for the dialog's first frame (pause_watch.OPENING_HOLD_S).
        await until(lambda: "source QEMU gone" in banner(app), 10, "the banner beneath to say it")
        assert "STOPPED" not in banner(app), banner(app)
        line = banner(app)
        app.dashboard.query_one(PauseBanner).update(time.time() + 5.0)
        assert banner(app) == line  # the banner's figure does not tick either
        await view.press("n", "q")
        await until(lambda: not app.is_running, 10, "the view to quit")
    assert view.sent.mutating() == []


@pytest.mark.qemu
async def test_quitting_over_the_dialog_quits_the_view_only_and_the_engine_keeps_the_pause(
        lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """Textual's quit key works in the dialog too: no question (the engine guards the pause,
    with or without this view), the guest stays stopped, and one line says what the engine
    keeps guarding."""
    async with app_for(lab_monitors(lab), size=(80, 24)) as view:
        app = view.app
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog")
        box = dialog(app)
        # Resume and abort in different colours.
        assert key_styles(box, "y") == {"bold $success"} and key_styles(box, "x") == {"bold $error"}
        await view.press("ctrl+q")
        await until(lambda: not app.is_running, 10, "the view to quit")
        assert view.engine_session("src").state.in_pre_switchover  # the engine still has the pause
    assert view.code == 0
    out = capsys.readouterr().out
    assert re.search(r"migtui: the engine keeps guarding src: paused .* before switchover; .*"
                     r" -- `migtui attach` to watch again", out), out
    assert view.sent.mutating() == []
    assert await qemu_status(lab) == "pre-switchover"  # the guest stays stopped


def key_styles(box: SwitchoverScreen, key: str) -> set[str]:
    """The styles of the key ``key`` at the start of its line in the dialog's actions."""
    shown = box.query_one("#sw-actions", HangingLines).content
    lines = shown.plain.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{key}  "))
    offset = sum(len(line) + 1 for line in lines[:start])
    return {str(span.style) for span in shown.spans if span.start <= offset < span.end}


async def wait_qemu_status(lab: Lab, status: str, timeout: float = 60) -> float:
    """Poll the lab's control monitor until QEMU reports ``status``; returns when it saw it."""
    ctl = await lab.control(lab.src)
    deadline = time.monotonic() + timeout
    while as_mapping(await ctl.execute("query-migrate")).get("status") != status:
        assert time.monotonic() < deadline, f"QEMU never reached {status}"
        await asyncio.sleep(0.05)
    return time.time()


@pytest.mark.qemu
async def test_a_pause_seen_late_is_bounded_and_qemus_downtime_replaces_the_estimate(lab: Lab) -> None:
    """The engine starts during a pause: it cannot know when the pause began, so the clock
    says "at least" what it saw and, from the migration's total time, "at most"; after the
    resume the dialog gives QEMU's own downtime instead of its estimate."""
    started = time.time()  # the migration starts after this: the pause too
    await migrate_to_pause(lab)
    seen = await wait_qemu_status(lab, "pre-switchover")
    await asyncio.sleep(2.0)  # the pause goes on with nobody watching: the scene to bound
    async with app_for(lab_monitors(lab), size=(100, 30)) as view:
        app, (src, _dst) = view.app, view.sessions
        await until(lambda: dialog_shown(app), 30, "the dialog (the first poll finds the pause)")
        box = dialog(app)
        change = next(c for c in src.state.status_changes if c.status == "pre-switchover")
        assert change.source == "poll"  # seen late: no event told migtui when it began
        await until(lambda: ", at most " in box.section("clock"), 10, "the clock with both bounds")
        assert "src STOPPED · see the dialog" in banner(app), banner(app)  # the banner beneath: no second clock
        # The truth lies between: the pause began after the migration started and before the
        # lab saw it; the clock's bounds hold it.
        pause = src.pause.clock  # the engine's
        now = time.time()
        assert pause is not None and not pause.exact
        most = pause.at_most(now)
        assert most is not None and pause.seconds(now) <= now - seen <= most, (pause, now, seen)
        # Not looser than the truth by more than the query's round trip: QEMU's total-time is
        # counted when it answers, somewhere between the query's sending and its answer.
        latest = src.state.history.latest
        assert latest is not None and src.state.migration_asked is not None
        lag = latest.time - src.state.migration_asked
        assert most <= now - started + lag, (pause, now, started, lag)
        assert most >= pause.seconds(now) + 1.5, pause  # no longer one figure that understates it
        clock = box.section("clock")
        assert clock.startswith("Guest stopped at least ") and ", at most " in clock, clock

        await view.press("y")
        await until(lambda: box.controller.result is not None, 30, "the resume to finish")
        assert box.controller.result.outcome is Outcome.COMPLETED, box.controller.result  # type: ignore[union-attr]
        await until(lambda: src.state.final_downtime_ms is not None, 10, "QEMU's downtime")
        expected = f"Guest was stopped {format_ms(src.state.final_downtime_ms)} (QEMU's downtime"
        await until(lambda: box.section("clock").startswith(expected), 10, f"{expected!r} in the clock line")
        assert "at least" not in box.section("clock")


@pytest.mark.qemu
async def test_a_frozen_qemu_has_its_last_figures_marked_stale(lab: Lab) -> None:
    await lab.prepare(storage=False, pause=False, max_bandwidth=1 * MiB)  # stays active until we say
    async with app_for([f"src=unix:{lab.src.qmp_path}"], size=(100, 30)) as view:
        app, (src,) = view.app, view.sessions
        await lab.migrate()
        header = app.dashboard.query_one(MonitorHeader)
        panel = app.dashboard.query_one(MigrationPanel)
        await until(lambda: "connected · running" in header.shown.plain and src.state.migration.ram is not None
                    and " active " in app.dashboard.query_one("#mig-status", FieldRow).shown.plain, 30,
                    "the migration shown")
        assert not panel.has_class("-stale")
        os.kill(lab.src.pid, signal.SIGSTOP)  # hung: the socket stays open, nothing answers
        try:
            await until(lambda: src.poll_error is not None, 30, "a poll to time out")
            assert src.connected  # the connection itself is still up
            await until(lambda: panel.has_class("-stale"), 10, "the figures marked stale")
            shown = header.shown.plain
            assert "connected ·  poll error  · last: running" in shown and "connected · running" not in shown, shown
            assert app.dashboard.query_one("#mig-status", FieldRow).shown.plain.startswith("last: active"), \
                app.dashboard.query_one("#mig-status", FieldRow).shown.plain
            assert app.dashboard.query_one("#dirty").has_class("-stale")
            assert "poll error: the last figures seen" in str(app.dashboard.query_one("#dirty").border_title)
        finally:
            os.kill(lab.src.pid, signal.SIGCONT)
        await until(lambda: src.poll_error is None and not panel.has_class("-stale"), 30, "fresh again")
        assert "connected · running" in header.shown.plain


@pytest.mark.qemu
async def test_a_resume_a_frozen_qemu_never_got_is_shown_and_can_be_tried_again(lab: Lab) -> None:
    """y while the source QEMU is frozen (SIGSTOP): the engine's check gets no answer and
    nothing is sent; the clocks tick meanwhile; the dialog says so in its outcome line, with
    no toast over it (the engine's notice of it is marked as an attempt), and offers y
    again, which, once QEMU runs again, completes the switchover."""
    async with app_for(lab_monitors(lab), size=(100, 30)) as view:
        app = view.app
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog")
        box = dialog(app)
        await until(lambda: box.can_resume() is True, 10, "resume on offer")
        os.kill(lab.src.pid, signal.SIGSTOP)
        try:
            await view.press("y")
            await until(lambda: box.started, 10, "the resume under way")
            # The check waits for an answer that does not come: the clocks go on meanwhile.
            clock = box.section("clock")
            await until(lambda: box.section("clock") != clock or not box.started, 10, "the clock to tick")
            assert box.started, "the check ended before the clock moved: nothing was shown frozen or not"
            await until(lambda: not box.started, 30, "the attempt's end")
            # Its outcome is painted once the critical phase is over (a repaint it held back).
            await until(lambda: box.section("outcome").endswith("nothing was changed; resume can be tried again"),
                        30, "the attempt's outcome", lambda: box.section("outcome"))
            outcome = box.section("outcome")
            assert "no answer from QEMU" in outcome, outcome
            # The engine's notice of the attempt reached the view, and left the dialog to say it.
            await until(lambda: any("nothing was changed" in text for _, text in view.client.notices), 10,
                        "the engine's notice")
            assert not any("nothing was changed" in toast for toast in view.toasts), view.toasts
            assert view.sent.mutating() == []  # the check never got its answer: nothing else was sent
        finally:
            os.kill(lab.src.pid, signal.SIGCONT)
        assert await qemu_status(lab) == "pre-switchover"
        await until(lambda: box.can_resume() is True, 30, "resume on offer again")
        # Painted with the dialog's next repaint (the offer can come a write before it).
        await until(lambda: "Resume switchover" in box.section("actions"), 30, "resume on the dialog again",
                    lambda: box.section("actions"))
        await view.press("y")
        await until(lambda: box.controller.result is not None, 30, "the outcome")
        assert box.controller.result.outcome is Outcome.COMPLETED, box.controller.result  # type: ignore[union-attr]
        assert "tried again" not in box.section("outcome"), box.section("outcome")


@pytest.mark.qemu
async def test_a_new_qemu_at_the_source_socket_ends_the_dialogs_pause(lab: Lab) -> None:
    """Killed in its pause, then another QEMU starts at the same socket: the dialog does not
    take the new QEMU for the old one. It says the pause is over, keeps the clock where the
    monitor was lost, and offers only to close."""
    async with app_for(lab_monitors(lab), size=(100, 30)) as view:
        app, (src, _dst) = view.app, view.sessions
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog")
        box = dialog(app)
        generation = src.generation
        os.kill(lab.src.pid, signal.SIGKILL)
        await until(lambda: box.section("clock").startswith("Source monitor lost · "), 30, "the loss")
        lost = box.section("clock")
        fresh = QemuProcess(lab.src.qmp_path, machine="pc").start()
        try:
            await until(lambda: src.connected and src.generation != generation, 60, "reconnected")
            await until(lambda: box.query_one("#sw-box").border_title
                        == "src: pause over (another connection to the monitor)", 10, "the dialog to say so")
            assert app.screen is box  # still open: it tells what happened
            assert box.section("clock") == lost  # stopped where the monitor was lost
            assert "The pause is over" in box.section("checks") and "✓" not in box.section("checks")
            assert box.section("actions").startswith("n  Close") and "Resume" not in box.section("actions")
            assert box.check_action("resume", ()) is not True and box.check_action("abort", ()) is not True
            said = len(view.toasts)
            await view.press("y", "x", "y")
            await until(lambda: len(view.toasts) == said + 3, 10, "each key saying why not")
            assert view.sent.mutating() == []  # nothing reaches the new QEMU
        finally:
            fresh.kill()
