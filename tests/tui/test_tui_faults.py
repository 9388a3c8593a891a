"""The screen after faults, against real QEMU (issue 9): the dashboard on live sessions,
driven with Pilot, while the lab's QEMUs are killed, frozen or watched from mid-pause.

- the source QEMU killed with the dialog open: "source QEMU gone", the clock stops, the
  last figures are marked, the keys say why not, quitting does not warn of a paused guest;
- the quit and arm questions answer to the key that asked (q, a), never to y, which
  resumes in the dialog beneath; resume and abort do not share a colour;
- migtui started during a pause: the clock says "at least ..., at most ..." (the
  migration's total time bounds it), and after the resume QEMU's downtime replaces it;
- a frozen QEMU (SIGSTOP): its figures are marked stale once its polls time out.

What needs no real QEMU (sizes, notices, labels, libvirt's pauses) is in test_tui_screen.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest
from engine_util import until as poll_until
from test_tui_switchover import (
    app_for,
    banner,
    connected,
    dialog,
    dialog_on_a_pause,
    dialog_shown,
    live,
    migrate_to_pause,
    qemu_status,
    until,
)
from test_views import open_terminal, terminals, wait_screen, watch_args  # noqa: F401 (terminals: a fixture)
from textual.content import Content
from tmux_util import Tmux

from migtui.address import parse_address
from migtui.format import format_ms
from migtui.lab.lab import Lab
from migtui.transport import Monitor
from migtui.tui.pause_text import PauseClock
from migtui.tui.screens.confirm import ConfirmScreen
from migtui.tui.screens.switchover import SwitchoverScreen
from migtui.tui.widgets.hanging import HangingLines
from migtui.tui.widgets.migration_panel import MigrationPanel
from migtui.tui.widgets.monitor_header import MonitorHeader
from migtui.workflow.session import MonitorSession
from migtui.workflow.switchover import Outcome
from qemu_util import QemuProcess

MiB = 1 << 20


def key_styles(box: SwitchoverScreen, key: str) -> set[str]:
    """The styles of the key ``key`` at the start of its line in the dialog's actions."""
    shown = box.query_one("#sw-actions", HangingLines).content
    assert isinstance(shown, Content)
    lines = shown.plain.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{key}  "))
    offset = sum(len(line) + 1 for line in lines[:start])
    return {str(span.style) for span in shown.spans if span.start <= offset < span.end}


@pytest.mark.qemu
async def test_a_killed_source_stops_the_clock_and_says_its_qemu_is_gone(lab: Lab) -> None:
    async with dialog_on_a_pause(lab) as paused:
        app, pilot, box, sent = paused.app, paused.pilot, paused.box, paused.sent
        assert "all green" in box.section("checks")

        os.kill(lab.src.pid, signal.SIGKILL)  # the source QEMU dies in its pause
        await until(pilot, lambda: box.query_one("#sw-box").border_title == "src: source QEMU gone (monitor lost)",
                    "the dialog to say the source is gone", 15)
        await until(pilot, lambda: box.section("clock").startswith("Source monitor lost · guest stopped "),
                    "the clock to stop")
        stopped = box.section("clock")
        await pilot.pause(0.5)  # five ticks later: the same figure
        assert box.section("clock") == stopped and not box.clock_running, (stopped, box.section("clock"))
        checks = box.section("checks")
        assert checks.startswith("Last known, before the monitor was lost (not current)"), checks
        assert "all green" not in checks
        # No green tick from stale data: every line of the list is muted.
        listed = box.query_one("#sw-checks", HangingLines).content
        assert isinstance(listed, Content) and not any("$success" in str(span.style) for span in listed.spans)
        for key in ("resume", "abort"):
            assert box.check_action(key, ()) is None  # shown unavailable ...
        assert "source QEMU gone" in box.unavailable_reason("y")  # ... and y says why
        assert "source QEMU gone" in box.section("note")
        assert "source QEMU gone" in banner(app) and "STOPPED" not in banner(app), banner(app)
        line = banner(app)
        await pilot.pause(0.3)
        assert banner(app) == line  # the banner's figure does not tick either
        # Quitting does not warn that the guest stays paused: its QEMU is gone.
        await pilot.press("n", "q")
        await until(pilot, lambda: not app.is_running, "the app to exit without asking", 5)
    assert sent.mutating() == []


@pytest.mark.qemu
async def test_the_quit_question_over_the_dialog_answers_to_q_not_y(lab: Lab) -> None:
    async with dialog_on_a_pause(lab) as paused:
        app, pilot, box, sent = paused.app, paused.pilot, paused.box, paused.sent
        await pilot.press("ctrl+q")  # Textual's quit key works in the dialog too: the question opens over it
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the quit question")
        question = app.screen
        assert app.screen_stack[-2] is box  # it sits on the switchover dialog
        await pilot.press("y")  # resume, beneath: it means nothing here
        await pilot.pause(0.2)
        assert app.is_running and app.screen is question and sent.mutating() == []
        assert question.query_one("#confirm-box").border_title == "Quit while src is paused?"
        keys = str(question.query_one("#confirm-keys").render())
        assert keys.startswith("q  quit, leave src paused") and "y" not in keys.split()[0], keys
        await pilot.press("n")  # stay: back to the dialog
        assert app.screen is box and paused.src.state.in_pre_switchover
        # Resume and abort in different colours.
        assert key_styles(box, "y") == {"bold $success"} and key_styles(box, "x") == {"bold $error"}
        await pilot.press("ctrl+q", "q")
        await until(pilot, lambda: not app.is_running, "the app to exit")
    assert sent.mutating() == []
    assert await qemu_status(lab) == "pre-switchover"  # the guest stays stopped, as the question said


async def real_dialog_on_a_pause(lab: Lab, terminals: list[Tmux], name: str) -> Tmux:
    """The real migtui (a view of its engine) in tmux at 100x30, its dialog open on the
    source's storage-migration pause."""
    await lab.prepare(storage=True, pause=True)
    view = open_terminal(terminals, name, 100, 30).migtui(*watch_args(lab))
    await wait_screen(view, "src · connected")
    await lab.migrate()
    await wait_screen(view, "src: paused before switchover")
    return view


async def wait_qemu_status(lab: Lab, status: str, timeout: float = 30) -> float:
    """Poll the lab's control monitor until QEMU reports ``status``; returns when it saw it."""
    ctl = await lab.control(lab.src)
    deadline = time.monotonic() + timeout
    while (await ctl.execute("query-migrate")).get("status") != status:
        assert time.monotonic() < deadline, f"QEMU never reached {status}"
        await asyncio.sleep(0.05)
    return time.time()


@pytest.mark.qemu
async def test_a_pause_seen_late_is_bounded_and_qemus_downtime_replaces_the_estimate(lab: Lab) -> None:
    """migtui starts during a pause: it cannot know when the pause began, so the clock says
    "at least" what it saw and, from the migration's total time, "at most"; after the
    resume the dialog gives QEMU's own downtime instead of its estimate."""
    started = time.time()  # the migration starts after this: the pause too
    await migrate_to_pause(lab)
    seen = await wait_qemu_status(lab, "pre-switchover")
    await asyncio.sleep(2.0)  # the pause goes on with no migtui watching
    sessions, _sent = live(lab)
    src, _dst = sessions
    app = app_for(sessions)
    async with app.run_test(size=(100, 30)) as pilot:
        await connected(pilot, sessions)
        await until(pilot, lambda: dialog_shown(app), "the dialog (the first poll finds the pause)")
        box = dialog(app)
        change = next(c for c in src.state.status_changes if c.status == "pre-switchover")
        assert change.source == "poll"  # seen late: no event told migtui when it began
        bounded = r"STOPPED ≥[\d.]+ s, ≤[\d.]+ s before switchover"
        await until(pilot, lambda: re.search(bounded, banner(app)) is not None, "the banner with both bounds", 5)
        # The truth lies between: the pause began after the migration started and before the
        # lab saw it; the clock's bounds hold it.
        pause = PauseClock.of(src.state)
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

        await pilot.press("y")
        await until(pilot, lambda: box.controller.result is not None, "the resume to finish", 30)
        assert box.controller.result.outcome is Outcome.COMPLETED, box.controller.result  # type: ignore[union-attr]
        await until(pilot, lambda: src.state.final_downtime_ms is not None, "QEMU's downtime")
        expected = f"Guest was stopped {format_ms(src.state.final_downtime_ms)} (QEMU's downtime"
        await until(pilot, lambda: box.section("clock").startswith(expected), f"{expected!r} in the clock line", 5)
        assert "at least" not in box.section("clock")


@pytest.mark.qemu
async def test_a_frozen_qemu_has_its_last_figures_marked_stale(lab: Lab) -> None:
    await lab.prepare(storage=False, pause=False, max_bandwidth=1 * MiB)  # stays active until we say
    monitor = Monitor(parse_address(f"src=unix:{lab.src.qmp_path}"), command_timeout=1.0)
    src = MonitorSession(monitor, interval=0.25)
    app = app_for([src])
    async with app.run_test(size=(100, 30)) as pilot:
        await connected(pilot, [src])
        await lab.migrate()
        header = app.dashboard.query_one(MonitorHeader)
        panel = app.dashboard.query_one(MigrationPanel)
        await until(pilot, lambda: "connected · running" in header.shown.plain and src.state.migration.ram is not None
                    and " active " in app.dashboard.query_one("#mig-status").shown.plain, "the migration shown")
        assert not panel.has_class("-stale")
        os.kill(lab.src.pid, signal.SIGSTOP)  # hung: the socket stays open, nothing answers
        try:
            await until(pilot, lambda: src.poll_error is not None, "a poll to time out", 15)
            assert src.connected  # the connection itself is still up
            await until(pilot, lambda: panel.has_class("-stale"), "the figures marked stale", 5)
            shown = header.shown.plain
            assert "connected ·  poll error  · last: running" in shown and "connected · running" not in shown, shown
            assert app.dashboard.query_one("#mig-status").shown.plain.startswith("last: active"), \
                app.dashboard.query_one("#mig-status").shown.plain
            assert app.dashboard.query_one("#dirty").has_class("-stale")
            assert "poll error: the last figures seen" in str(app.dashboard.query_one("#dirty").border_title)
        finally:
            os.kill(lab.src.pid, signal.SIGCONT)
        await until(pilot, lambda: src.poll_error is None and not panel.has_class("-stale"), "fresh again", 15)
        assert "connected · running" in header.shown.plain


@pytest.mark.qemu
async def test_a_resume_a_frozen_qemu_never_got_is_shown_and_can_be_tried_again(lab: Lab) -> None:
    """y while the source QEMU is frozen (SIGSTOP): the check gets no answer and nothing is
    sent; the dialog says so in its outcome line and offers y again, which, once QEMU
    runs again, completes the switchover."""
    async with dialog_on_a_pause(lab) as paused:
        pilot, box, sent = paused.pilot, paused.box, paused.sent
        await until(pilot, lambda: box.can_resume() is True, "resume on offer")
        os.kill(lab.src.pid, signal.SIGSTOP)
        try:
            await pilot.press("y")
            await until(pilot, lambda: box.started, "the resume under way", 5)
            # The check waits for an answer that does not come: the clocks go on meanwhile.
            clock = box.section("clock")
            await until(pilot, lambda: box.section("clock") != clock or not box.started, "the clock to tick", 3)
            assert box.started, "the check ended before the clock moved: nothing was shown frozen or not"
            await until(pilot, lambda: not box.started, "the attempt's end", 20)
            outcome = box.section("outcome")
            assert outcome.endswith("nothing was changed; resume can be tried again"), outcome
            assert "no answer from QEMU" in outcome, outcome
            assert sent.mutating() == []  # the check never got its answer: nothing else was sent
        finally:
            os.kill(lab.src.pid, signal.SIGCONT)
        assert await qemu_status(lab) == "pre-switchover"
        await until(pilot, lambda: box.can_resume() is True, "resume on offer again", 15)
        assert "Resume switchover" in box.section("actions")
        await pilot.press("y")
        await until(pilot, lambda: box.controller.result is not None, "the outcome", 30)
        assert box.controller.result.outcome is Outcome.COMPLETED, box.controller.result  # type: ignore[union-attr]
        assert "tried again" not in box.section("outcome"), box.section("outcome")


@pytest.mark.qemu
async def test_the_real_migtui_shows_a_resume_a_frozen_qemu_never_got_in_its_dialog(
        lab: Lab, terminals: list[Tmux]) -> None:
    """The same in the real migtui (a view of its engine) in tmux: the clock ticks while
    the engine's check waits for the frozen QEMU; the dialog's outcome line says nothing
    was changed, with no toast over it; once QEMU runs again, y completes it."""
    view = await real_dialog_on_a_pause(lab, terminals, "frozen")
    os.kill(lab.src.pid, signal.SIGSTOP)
    try:
        view.keys("y")
        await wait_screen(view, "src: resuming the switchover")

        def clock_row() -> str:
            return next((row for row in view.screen().splitlines() if "Guest stopped " in row), "")

        first = clock_row()
        await poll_until(lambda: clock_row() != first or "resuming" not in view.screen(), 3, "the clock to tick")
        assert "resuming the switchover" in view.screen(), "the check ended before the clock moved"
        await wait_screen(view, "nothing was changed; resume can be tried again", 20)
        await asyncio.sleep(1.0)  # the engine's notice of it has come in by now
        screen = view.screen()
        assert "nothing was changed" in screen and "▌ Engine" not in screen, screen  # no toast over the dialog
    finally:
        os.kill(lab.src.pid, signal.SIGCONT)
    await wait_screen(view, "y  Resume switchover")
    await asyncio.sleep(1.0)  # the engine's polls answered again
    view.keys("y")
    await wait_screen(view, "src: switchover completed", 30)


@pytest.mark.qemu
async def test_the_real_migtui_says_the_killed_source_is_gone_and_its_clock_stops(
        lab: Lab, terminals: list[Tmux]) -> None:
    """The same in the real migtui (a view of its engine) in tmux: the engine loses the
    monitor, the view's dialog says so and its clock stops."""
    view = await real_dialog_on_a_pause(lab, terminals, "gone")
    os.kill(lab.src.pid, signal.SIGKILL)
    screen = await wait_screen(view, "Source monitor lost · guest stopped ")
    # In the same frame as the stopped clock: the title, the list of last figures.
    assert "src: source QEMU gone (monitor lost)" in screen, screen
    assert "all green" not in screen and "Last known, before the monitor was lost" in screen, screen

    def clock_row() -> str:
        return next((row for row in view.screen().splitlines() if "Source monitor lost · " in row), "")

    first = clock_row()
    await asyncio.sleep(0.6)
    assert clock_row() == first, (first, clock_row())
    assert "STOPPED" not in view.screen() and "source QEMU gone" in view.screen().splitlines()[0], view.screen()


@pytest.mark.qemu
async def test_a_new_qemu_at_the_source_socket_ends_the_dialogs_pause(lab: Lab) -> None:
    """Killed in its pause, then another QEMU starts at the same socket: the dialog does not
    take the new QEMU for the old one. It says the pause is over, keeps the clock where the
    monitor was lost, and offers only to close."""
    async with dialog_on_a_pause(lab) as paused:
        app, pilot, box, src, sent = paused.app, paused.pilot, paused.box, paused.src, paused.sent
        generation = src.generation
        os.kill(lab.src.pid, signal.SIGKILL)
        await until(pilot, lambda: box.section("clock").startswith("Source monitor lost · "), "the loss", 15)
        lost = box.section("clock")
        fresh = QemuProcess(lab.src.qmp_path, machine="pc").start()
        try:
            await until(pilot, lambda: src.connected and src.generation != generation, "reconnected", 30)
            await until(pilot, lambda: box.query_one("#sw-box").border_title
                        == "src: pause over (another connection to the monitor)", "the dialog to say so", 5)
            assert app.screen is box  # still open: it tells what happened
            assert box.section("clock") == lost  # stopped where the monitor was lost
            assert "The pause is over" in box.section("checks") and "✓" not in box.section("checks")
            assert box.section("actions").startswith("n  Close") and "Resume" not in box.section("actions")
            assert box.check_action("resume", ()) is not True and box.check_action("abort", ()) is not True
            await pilot.press("y", "x", "y")
            await pilot.pause(0.2)
            assert sent.mutating() == []  # nothing reaches the new QEMU
        finally:
            fresh.kill()
