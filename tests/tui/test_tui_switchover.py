"""The pre-switchover UI (issue 4) driven by keys against real QEMU pairs with a mirrored disk.

The dialog must open by itself on the MIGRATION event (and at startup when a VM is
already paused), ``n`` close it, ``s`` reopen it, ``y`` resume, ``x`` ``y`` abort;
read-only sends nothing that changes a VM; quitting while paused asks; SIGHUP leaves
the pause for the next start. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import fcntl
import html
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from qemu.qmp import EventListener
from engine_util import engine_pids
from replay import replayed, version  # noqa: F401 (version: a fixture)
from textual.pilot import Pilot

from migtui.address import parse_address
from migtui.engine.runtime import runtime
from migtui.lab.lab import MIRROR_JOB, Lab
from migtui.transport import Monitor
from migtui.tui import pause_watch
from migtui.tui.app import MigtuiApp, make_app
from migtui.tui.pause_text import PauseClock, banner_line, clock_text, dialog_title, step_items
from migtui.tui.screens.confirm import ConfirmScreen
from migtui.tui.screens.help import HelpScreen
from migtui.tui.screens.switchover import SwitchoverScreen
from migtui.tui.widgets.hanging import HangingLines, hang
from migtui.tui.widgets.monitor_list import MonitorList
from migtui.tui.widgets.pause_banner import PauseBanner
from migtui.tui.widgets.text_line import TextLine
from migtui.view.client import EngineClient
from migtui.workflow import availability
from migtui.workflow.pairing import destination_for, pair_key
from migtui.workflow.session import MonitorSession
from migtui.workflow.switchover import Outcome, Step, StepState, SwitchoverResult, current_switchover

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


# ---------------------------------------------------------------------- helpers


class Sent:
    """Every command a Monitor actually wrote to its socket."""

    def __init__(self, *monitors: Monitor) -> None:
        self.commands: list[tuple[str, str, Any]] = []
        for monitor in monitors:
            monitor.add_command_listener(
                lambda name, args, who=monitor.name: self.commands.append((who, name, args)))

    def mutating(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.commands if not c[1].startswith("query-") and c[1] != "qmp_capabilities"]


def live(lab: Lab, *, read_only: bool = False) -> tuple[list[MonitorSession], Sent]:
    monitors = [Monitor(parse_address(f"{vm.name}=unix:{vm.qmp_path}"), read_only=read_only)
                for vm in (lab.src, lab.dst)]
    return [MonitorSession(m, interval=0.25) for m in monitors], Sent(*monitors)


def app_for(sessions: list[MonitorSession], **kwargs: Any) -> MigtuiApp:
    return make_app(sessions=sessions, tz=timezone.utc, term="xterm-256color", **kwargs)


async def until(pilot: Pilot, pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.02)


async def connected(pilot: Pilot, sessions: list[MonitorSession]) -> None:
    await until(pilot, lambda: all(s.connected and s.polls >= 1 for s in sessions), "monitors connected")


async def migrate_to_pause(lab: Lab) -> None:
    """Mirror in sync, armed, migrate: QEMU converges in its first pass and pauses."""
    await lab.prepare(storage=True, pause=True, max_bandwidth=1 << 30, downtime_limit=500)
    await lab.migrate()


def dialog_shown(app: MigtuiApp) -> bool:
    """The dialog is on top and drawn (not just pushed)."""
    screen = app.screen
    if not isinstance(screen, SwitchoverScreen) or not screen.is_mounted:
        return False
    try:
        return bool(screen.section("clock"))
    except Exception:  # not composed yet
        return False


def dialog(app: MigtuiApp) -> SwitchoverScreen:
    screen = app.screen
    assert isinstance(screen, SwitchoverScreen), f"the screen is {screen!r}"
    return screen


@dataclass
class Paused:
    """The dashboard on a live lab pair, its source paused with the dialog open."""

    app: MigtuiApp
    pilot: Pilot
    box: SwitchoverScreen
    src: MonitorSession
    sent: Sent


@asynccontextmanager
async def dialog_on_a_pause(lab: Lab, size: tuple[int, int] = (100, 30)) -> AsyncIterator[Paused]:
    sessions, sent = live(lab)
    app = app_for(sessions)
    async with app.run_test(size=size) as pilot:
        await connected(pilot, sessions)
        await migrate_to_pause(lab)
        await until(pilot, lambda: dialog_shown(app), "the dialog")
        yield Paused(app, pilot, dialog(app), sessions[0], sent)


def banner(app: MigtuiApp) -> str:
    return app.dashboard.query_one(PauseBanner).shown


_SVG_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="([\d.]+)"'
                       r' clip-path="url\(#[\w-]+-line-(\d+)\)">([^<]*)</text>')


def screen_rows(app: MigtuiApp) -> list[str]:
    """What the terminal shows, row by row: every screen on the stack composited (the
    dashboard behind a dialog included), read from Textual's own screenshot."""
    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    for x, length, line, escaped in _SVG_TEXT.findall(app.export_screenshot()):
        text = html.unescape(escaped).replace("\xa0", " ")
        col = round(float(x) / (float(length) / len(text))) if text else 0
        for i, char in enumerate(text):
            if 0 <= col + i < width and int(line) < height:
                rows[int(line)][col + i] = char
    return ["".join(r) for r in rows]


def figure(text: str, prefix: str) -> str:
    """The clock figure after ``prefix`` ("STOPPED ", "Guest stopped "): "1.2 s"."""
    match = re.search(re.escape(prefix) + r"(≥|at least )?([\d.]+ s)", text)
    assert match, f"no {prefix!r} clock in {text!r}"
    return match.group(2)


def notifications(app: MigtuiApp) -> list[str]:
    """Every notification the app shows from now on (wraps app.notify)."""
    seen: list[str] = []
    notify = app.notify

    def spy(message: str, **kwargs: Any) -> None:
        seen.append(message)
        notify(message, **kwargs)

    app.notify = spy  # type: ignore[method-assign]
    return seen


async def qemu_status(lab: Lab) -> str:
    ctl = await lab.control(lab.src)
    return (await ctl.execute("query-migrate")).get("status", "none")


# ---------------------------------------------------------------------- pure


def test_clock_and_pairing_helpers() -> None:
    assert clock_text(0.04) == "0.0 s" and clock_text(12.34) == "12.3 s"
    assert clock_text(125.3) == "2m 05.3s" and clock_text(3725) == "1h 02m 05s"
    assert banner_line("src", PauseClock(100.0, True), 109.94).plain == " ‖ src STOPPED 9.9 s before switchover · s opens "
    assert "STOPPED ≥9.9 s" in banner_line("src", PauseClock(100.0, False), 109.94).plain  # seen late: at least
    assert pair_key("src01") == pair_key("dst01") == "01"
    assert pair_key("web-source") == pair_key("web-dest") == "web"
    a, b, c = (MonitorSession.offline(n) for n in ("src1", "dst1", "dst2"))
    assert destination_for(a, [a, b, c]) is b  # the names pair them
    lone = MonitorSession.offline("vm-a")
    assert destination_for(lone, [lone, b, c]) is None  # two candidates, no name: not guessed


# ---------------------------------------------------------------------- real QEMU


@pytest.mark.qemu
async def test_dialog_opens_on_the_event_and_y_resumes_to_completion(lab: Lab) -> None:
    sessions, sent = live(lab)
    src, dst = sessions
    app = app_for(sessions)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot, sessions)
        await migrate_to_pause(lab)
        await until(pilot, lambda: dialog_shown(app), "the dialog to open by itself")
        # Detected from the MIGRATION event itself, not a poll.
        (name, since), = app.pauses.tracker.detected
        change = next(c for c in reversed(src.state.status_changes) if c.status == "pre-switchover")
        assert name == "src" and change.source == "event" and change.time == since
        await until(pilot, lambda: "src STOPPED" in banner(app), "the banner")
        box = dialog(app)
        checks = box.section("checks")
        assert "all green" in checks, checks
        for line in ("✓ source", f"✓ mirror {MIRROR_JOB}", "✓ destination", "· RAM"):
            assert line in checks, checks
        assert "y  Resume switchover: finish each disk mirror" in box.section("actions")
        # The downtime clock ticks (from QEMU's STOP timestamp).
        first = box.section("clock")
        assert first.startswith("Guest stopped ") and "counts as downtime" in first
        await until(pilot, lambda: box.section("clock") != first, "the clock to tick", timeout=2)

        await pilot.press("n")
        assert not isinstance(app.screen, SwitchoverScreen)
        assert src.state.in_pre_switchover and sent.mutating() == []  # closing sends nothing
        await pilot.press("s")
        await until(pilot, lambda: dialog_shown(app), "the dialog to reopen")
        box = dialog(app)
        await pilot.press("y")
        controller = box.controller
        await until(pilot, lambda: controller.result is not None, "the resume to finish")
        result = controller.result
        assert result is not None and result.outcome is Outcome.COMPLETED, result
        await until(pilot, lambda: "completed: the destination has taken over" in box.section("outcome"),
                    "the outcome shown")
        assert "downtime" in box.section("outcome")
        assert [s.key for s in controller.steps][-1] == "destination" and "✓ Destination dst runs" in box.section("steps")
        await until(pilot, lambda: dst.state.running is True, "the destination to run")
        await until(pilot, lambda: box.section("clock").startswith("Guest was stopped"), "the clock to stop")
        assert box.query_one("#sw-box").border_title == "src: switchover completed"
        steps = box.query_one("#sw-steps", HangingLines).shown
        assert steps[0] == "Steps of the switchover" and len(steps) == 1 + len(controller.steps), steps
        assert all(re.search(r"\d m?s$", line) for line in steps[1:]), steps  # one line each, its time last
        await pilot.press("y")  # again: nothing more is sent
        await pilot.pause(0.1)
        assert [(n, a) for _, n, a in sent.mutating()] == [
            ("block-job-cancel", {"device": MIRROR_JOB, "force": False}),
            ("migrate-continue", {"state": "pre-switchover"}),
        ]
        await pilot.press("n")
        await until(pilot, lambda: banner(app) == "", "the banner to go")


@pytest.mark.qemu
async def test_the_dashboard_behind_the_dialog_repaints_and_the_hold_ends_with_the_outcome(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind the open dialog the dashboard stays live; only while a confirmed resume acts
    on the stopped guest do the dialog and the banner wait, and the outcome ends that."""
    monkeypatch.setattr(pause_watch, "HOLD_REPAINT_S", 60.0)  # so only the outcome can end the hold
    during_hold: list[str] = []
    for cls, name in ((SwitchoverScreen, "_show_progress"), (PauseBanner, "update")):
        original = getattr(cls, name)

        def spy(self: Any, *args: Any, _original: Any = original, _name: str = name) -> Any:
            if self.app.pauses.critical():
                during_hold.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(cls, name, spy)
    sessions, _sent = live(lab)
    src, _dst = sessions
    app = app_for(sessions)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot, sessions)
        await migrate_to_pause(lab)
        await until(pilot, lambda: dialog_shown(app), "the dialog")
        box = dialog(app)
        # One clock for the banner and the dialog: the same tenth, tick after tick.
        for _ in range(4):
            await pilot.pause(pause_watch.TICK_S * 1.5)
            assert figure(banner(app), "STOPPED ") == figure(box.section("clock"), "Guest stopped ")
        # The dashboard rows above the dialog repaint: each poll brings a new total time.
        def migration_row() -> str:
            return next((r for r in screen_rows(app)[:4] if "total " in r), "")
        first = migration_row()
        assert "pre-switchover" in first, screen_rows(app)
        await until(pilot, lambda: migration_row() != first, "the migration line behind the dialog to move", 5)

        await pilot.press("y")
        await until(pilot, lambda: box.controller.result is not None, "the resume to finish")
        assert box.controller.result.outcome is Outcome.COMPLETED  # type: ignore[union-attr]
        # Released by the outcome, not by the (60 s) fallback.
        await until(pilot, lambda: "completed: the destination" in box.section("outcome"), "the outcome shown", 2)
        await until(pilot, lambda: box.query_one("#sw-box").border_title == "src: switchover completed",
                    "the title", 2)
        assert during_hold == [], during_hold
        # And behind the dialog, still open: the list, the header and no banner any more.
        def caught_up() -> bool:
            rows = screen_rows(app)
            return (rows[0].split("│")[0].split() == ["▸src", "completed"] and "postmigrate" in rows[0]
                    and not any("STOPPED" in r for r in rows))
        try:
            await until(pilot, caught_up, "the dashboard behind the dialog to show the end", 2)
        except AssertionError as err:
            raise AssertionError("\n".join([str(err), *screen_rows(app)])) from None
        assert app.screen is box and src.state.migration_status == "completed"


@pytest.mark.qemu
async def test_x_then_y_aborts_and_the_source_runs_again(lab: Lab) -> None:
    sessions, sent = live(lab)
    src, _dst = sessions
    app = app_for(sessions)
    async with app.run_test(size=(100, 30)) as pilot:
        await connected(pilot, sessions)
        await migrate_to_pause(lab)
        await until(pilot, lambda: dialog_shown(app), "the dialog")
        box = dialog(app)
        await pilot.press("x")
        assert "Abort the migration of src?" in box.section("actions")
        assert sent.mutating() == []  # x only asks
        await pilot.press("n")  # back
        assert "Abort the migration" not in box.section("actions") and isinstance(app.screen, SwitchoverScreen)
        await pilot.press("x", "y")
        await until(pilot, lambda: box.controller.result is not None, "the abort to finish")
        assert box.controller.result.outcome is Outcome.ABORTED, box.controller.result  # type: ignore[union-attr]
        await until(pilot, lambda: "aborted: the source guest runs again" in box.section("outcome"), "outcome")
        assert src.state.running is True
        assert box.query_one("#sw-box").border_title == "src: switchover aborted"
        steps = box.query_one("#sw-steps", HangingLines).shown
        assert steps[0] == "Steps of the abort" and len(steps) == 1 + len(box.controller.steps), steps
        before = lab.serial_size(lab.src)
        await until(pilot, lambda: lab.serial_size(lab.src) > before, "the source guest to write again")
        assert [n for _, n, _a in sent.mutating()] == ["migrate_cancel", "block-job-cancel"]


@pytest.mark.qemu
async def test_a_failed_mirror_stops_before_continue_says_why_and_offers_abort(lab: Lab) -> None:
    sessions, sent = live(lab)
    src, _dst = sessions
    app = app_for(sessions)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot, sessions)
        await migrate_to_pause(lab)
        await until(pilot, lambda: dialog_shown(app), "the dialog")
        box = dialog(app)
        dst_ctl = await lab.control(lab.dst)
        await dst_ctl.execute("nbd-server-stop")  # the destination's disk export goes away
        await pilot.press("y")
        await until(pilot, lambda: box.controller.result is not None, "the resume to stop")
        await until(pilot, lambda: "migrate-continue not sent" in box.section("outcome"), "why")
        assert f"mirror {MIRROR_JOB}" in box.section("outcome")
        assert box.query_one("#sw-box").border_title == "src: switchover failed, guest still stopped"
        steps = box.query_one("#sw-steps", HangingLines).shown
        failed = next(i for i, line in enumerate(steps) if line.startswith(f"✗ Finish mirror {MIRROR_JOB}"))
        assert steps[failed + 1].startswith("  ") and steps[failed + 1].strip(), steps  # why, in full below
        assert "x  Abort" in box.section("actions") and box.check_action("abort", ()) is True
        assert box.check_action("resume", ()) is False  # it ran once
        assert src.state.in_pre_switchover
        await pilot.press("x", "y")
        await until(pilot, lambda: "aborted: the source guest runs again" in box.section("outcome"), "abort")
    names = [n for _, n, _a in sent.mutating()]
    # The graceful cancel ended the mirror (with an error), so the abort has none left to force-cancel.
    assert names == ["block-job-cancel", "migrate_cancel"], sent.mutating()


@pytest.mark.qemu
async def test_read_only_shows_the_actions_unavailable_and_sends_nothing(lab: Lab) -> None:
    sessions, sent = live(lab, read_only=True)
    src, _dst = sessions
    app = app_for(sessions)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = notifications(app)
        await connected(pilot, sessions)
        dash = app.dashboard
        assert dash.check_action("arm", ()) is None  # shown, unavailable
        await pilot.press("a")
        assert any("read-only: migtui will not arm src" in n for n in seen), seen
        await migrate_to_pause(lab)
        await until(pilot, lambda: dialog_shown(app), "the dialog (to watch)")
        box = dialog(app)
        assert "read-only: migtui will not resume or abort src" in box.section("note")
        assert box.check_action("resume", ()) is None and box.check_action("abort", ()) is None
        await pilot.press("y", "x")
        assert sum("read-only" in n for n in seen) >= 3, seen
        await until(pilot, lambda: "read-only: migtui will not resume" in banner(app), "the read-only note")
        await pilot.press("n")
        assert dash.check_action("abort_switchover", ()) is None and dash.check_action("switchover", ()) is True
        await pilot.press("x")
        await pilot.press("s")
        await until(pilot, lambda: dialog_shown(app), "the dialog to reopen")
        box = dialog(app)
        # Another client finishes it: the dialog says so and closes.
        ctl = await lab.control(lab.src)
        await ctl.execute("block-job-cancel", {"device": MIRROR_JOB})
        await ctl.execute("migrate-continue", {"state": "pre-switchover"})
        await until(pilot, lambda: not isinstance(app.screen, SwitchoverScreen), "the dialog to close")
        assert any("another client continued the migration" in n for n in seen), seen
        await until(pilot, lambda: src.state.migration_status == "completed", "completed")
        palette = [c.title for c in app.get_system_commands(dash)]
        assert "Arm pause-before-switchover (unavailable)" in palette
    assert sent.mutating() == []
    assert sent.commands and all(n.startswith("query-") or n == "qmp_capabilities" for _, n, _a in sent.commands)


@pytest.mark.qemu
async def test_quitting_while_paused_asks_and_leaves_the_guest_paused(lab: Lab) -> None:
    async with dialog_on_a_pause(lab, (80, 24)) as paused:
        app, pilot, sent = paused.app, paused.pilot, paused.sent
        await pilot.press("n", "q")
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one("#confirm-question").render())
        assert "src: guest stopped in pre-switchover for" in question and "Quit anyway?" in question
        await pilot.press("n")
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("q", "q")  # q again quits (y never answers a question)
        await until(pilot, lambda: not app.is_running, "the app to exit")
    assert sent.mutating() == []
    assert await qemu_status(lab) == "pre-switchover"  # the guest stays stopped


@pytest.mark.qemu
async def test_arm_action_arms_the_source(lab: Lab) -> None:
    await lab.prepare(storage=True, pause=False)  # events on, pause-before-switchover off
    sessions, sent = live(lab)
    src, _dst = sessions
    app = app_for(sessions)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot, sessions)
        await until(pilot, lambda: src.state.capabilities.supports("pause-before-switchover"), "capabilities")
        assert not src.state.armed and app.dashboard.check_action("arm", ()) is True
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.query_one("#confirm-box").border_title == "Arm src?"
        await pilot.press("y")  # y means nothing here (it resumes in the switchover dialog)
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen) and sent.mutating() == []
        await pilot.press("a")  # a again arms
        await until(pilot, lambda: src.state.armed, "armed")
        monitors = app.dashboard.query_one(MonitorList)
        await until(pilot, lambda: "armed" in str(monitors.get_option("src").prompt), "armed in the list")
        assert app.dashboard.check_action("arm", ()) is False  # nothing left to arm
    assert [(n, a) for _, n, a in sent.mutating()] == [
        ("migrate-set-capabilities", {"capabilities": [{"capability": "pause-before-switchover", "state": True}]}),
    ]


@pytest.mark.qemu
async def test_auto_resume_completes_with_no_dialog(lab: Lab) -> None:
    sessions, sent = live(lab)
    src, dst = sessions
    app = app_for(sessions, auto_resume=True)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = notifications(app)
        dialogs: list[object] = []
        await connected(pilot, sessions)
        await migrate_to_pause(lab)
        await until(pilot, lambda: src.state.migration_status == "completed"
                    and (dialogs.extend(s for s in app.screen_stack if isinstance(s, SwitchoverScreen)) or True),
                    "completed")
        auto = app.pauses.autos["src"]
        assert auto.destination is dst  # paired at the pause, before the checklist ran
        result = await asyncio.wait_for(auto.task, 10)  # type: ignore[arg-type]
        assert result is not None and result.outcome is Outcome.COMPLETED, result
        assert dialogs == []
        await until(pilot, lambda: any("auto-resume: src: migration completed" in n for n in seen), "report")
    assert [n for _, n, _a in sent.mutating()] == ["block-job-cancel", "migrate-continue"]


@pytest.mark.qemu
async def test_auto_resume_holds_back_loudly_when_the_checklist_fails(lab: Lab, tmp_path: Path) -> None:
    src = MonitorSession(Monitor(parse_address(f"src=unix:{lab.src.qmp_path}")), interval=0.25)
    # The destination is watched but its monitor is unreachable: never resume blind.
    dst = MonitorSession(Monitor(parse_address(f"dst=unix:{tmp_path / 'gone.qmp'}")), interval=0.25)
    sent = Sent(src.monitor)  # type: ignore[arg-type]
    app = app_for([src, dst], auto_resume=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: src.connected and src.polls >= 1, "src connected")
        await migrate_to_pause(lab)
        await until(pilot, lambda: dialog_shown(app), "the dialog after auto-resume held")
        box = dialog(app)
        assert "auto-resume held, the guest stays stopped: destination: monitor not connected" in box.section("note")
        assert "✗ destination" in box.section("checks")
        await until(pilot, lambda: "auto-resume held" in banner(app), "the loud banner")
        assert src.state.in_pre_switchover and sent.mutating() == []


@pytest.mark.qemu
async def test_sighup_leaves_the_pause_and_the_next_start_shows_it(lab: Lab, tmp_path: Path,
                                                                   private_runtime_dir: Path) -> None:
    ctl = await lab.control(lab.src)
    paused = EventListener("MIGRATION", lambda ev: ev.get("data", {}).get("status") == "pre-switchover")
    with ctl.listen(paused):
        await migrate_to_pause(lab)
        await asyncio.wait_for(paused.get(), 30)

    log_file = tmp_path / "migtui.log"
    term = PtyApp([sys.executable, "-m", "migtui", "--log-file", str(log_file),
                   f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"])
    try:
        await term.wait_for("paused before switchover", 15)  # the dialog, at startup
        term.hang_up()  # the terminal goes away, then SIGHUP, as with an SSH drop
        code = await term.wait_exit(10)
    finally:
        term.kill()
    assert code == 129, code
    text = log_file.read_text()
    assert "SIGHUP (terminal lost): view detached; the engine keeps watching" in text, text
    assert await qemu_status(lab) == "pre-switchover"  # nothing was sent
    assert engine_pids(private_runtime_dir), "the engine must outlive the view's terminal"

    # The next view shows that pause at once (the engine's sessions kept it) and can finish it.
    client = EngineClient(runtime(private_runtime_dir), kind="next")
    await client.connect(start=False)
    try:
        await client.subscribe()
        src = client.sessions["src"]
        assert src.state.in_pre_switchover
        change = next(c for c in reversed(src.state.status_changes) if c.status == "pre-switchover")
        assert change.source == "poll"  # the engine started during the pause
        await src.engine_request("resume")
        await until_true(lambda: src.switchover.result is not None, 30, "the resume's outcome")
        assert src.switchover.result.outcome is Outcome.COMPLETED  # type: ignore[union-attr]
    finally:
        await client.close()


async def until_true(pred: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class PtyApp:
    """The real migtui in an 80x24 pseudo-terminal; collects what it draws."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(REPO))
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.master: int | None = master
        os.set_blocking(master, False)
        self.output = bytearray()

    def _read(self) -> None:
        while self.master is not None:
            try:
                chunk = os.read(self.master, 65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    async def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            self._read()
            if self.proc.poll() is not None:
                raise AssertionError(f"migtui exited ({self.proc.returncode}): {bytes(self.output[-500:])!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not drawn within {timeout} s")
            await asyncio.sleep(0.02)

    def hang_up(self) -> None:
        assert self.master is not None
        os.close(self.master)
        self.master = None
        os.kill(self.proc.pid, signal.SIGHUP)

    async def wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.proc.poll()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        if self.master is not None:
            os.close(self.master)
            self.master = None


# ---------------------------------------------------------------------- replayed data


def paused(version: str, pairs: tuple[str, ...] = ("",)) -> tuple[list[MonitorSession], float]:
    """Source and destination of each pair, 1.2 s into the pause of a recorded storage run."""
    sessions: list[MonitorSession] = []
    for suffix in pairs:
        pair, now = replayed("storage", "paused", {"src": f"src{suffix}", "dst": f"dst{suffix}"},
                             version=version)
        sessions += pair
    return sessions, now


async def test_several_paused_sources_get_their_dialogs_in_turn(version: str) -> None:
    sessions, now = paused(version, ("1", "2"))
    app = make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term="xterm-256color")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "src1 STOPPED 1.2 s before switchover" in banner(app) and "src2 STOPPED 1.2 s" in banner(app)
        assert not isinstance(app.screen, SwitchoverScreen)  # replayed data: nothing opens by itself
        # As the watch does on each pause (from the app's own loop).
        app.call_later(app.pauses.open_dialog, "src1")
        app.call_later(app.pauses.open_dialog, "src2")  # queued behind the open one
        await until(pilot, lambda: dialog_shown(app), "src1's dialog")
        first = dialog(app)
        assert first.source.name == "src1" and len(app.screen_stack) == 2
        assert "Also paused: src2" in first.section("more")
        assert "src1: replayed data: migtui cannot act on it" in first.section("note")
        assert first.section("clock") == "Guest stopped 1.2 s · all of it counts as downtime"
        assert "destination          receiving the migration" in first.section("checks")  # dst1, by name
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, SwitchoverScreen) and app.screen.source.name == "src2",
                    "src2's dialog next")
        await pilot.press("n")
        assert not isinstance(app.screen, SwitchoverScreen)


async def test_the_dashboard_behind_a_dialog_repaints_after_a_batch(version: str) -> None:
    """A Footer recompose (the dialog's keys changing) is a Textual batch: the screen
    behind skips its repaint meanwhile and must still catch up when the batch ends."""
    sessions, now = paused(version)
    app = make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term="xterm-256color")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: dialog_shown(app), "the dialog")
        header = app.dashboard.query_one("#header-identity", TextLine)
        with app.batch_update():
            header.set("src · changed behind the dialog")
            await pilot.pause(0.1)  # the dashboard handles its repaint request now, in the batch
        await until(pilot, lambda: any("changed behind the dialog" in r for r in screen_rows(app)[:3]),
                    "the dashboard to repaint after the batch", 2)


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_banner_and_footer_fit_and_say_what_applies(size: tuple[int, int], version: str) -> None:
    sessions, now = paused(version)
    app = make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term="xterm-256color")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        line = app.dashboard.query_one("#pause-lines", TextLine)
        assert line.shown.plain == " ‖ src STOPPED 1.2 s before switchover · s opens "
        assert line.shown.cell_length <= line.size.width, (line.shown.cell_length, line.size.width)  # not cut
        rows = screen_rows(app)
        assert "‖ src STOPPED 1.2 s before switchover · s opens" in rows[0], rows[0]
        footer = rows[-1]
        assert "s Switchover" in footer and "x Abort" in footer, footer  # what applies while paused...
        assert "Dirty rate" not in footer and "Paused VM" not in footer, footer  # ...and nothing else
        assert app.dashboard.check_action("measure_dirty_rate", ()) is False
        await pilot.press("down")  # dst selected: s still opens the paused source's dialog
        assert "s Switchover" in screen_rows(app)[-1]
        await pilot.press("s")
        await until(pilot, lambda: dialog_shown(app), "src's dialog")
        assert dialog(app).source.name == "src"
        assert figure(banner(app), "STOPPED ") == figure(dialog(app).section("clock"), "Guest stopped ") == "1.2 s"


async def test_help_explains_the_pre_switchover_step(version: str) -> None:
    sessions, now = paused(version)
    app = make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term="xterm-256color")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        for needle in ("Pre-switchover", "  a  ", "  s  ", "  y  ", "  x, then y  ", "  n / escape  ", "banner",
                       "--auto-resume", "--max-pause", "--read-only", "quits this view only", "SIGHUP"):
            assert needle in text, needle


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


def test_switchover_dialog_80x24(snap_compare, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """The dialog as a live operator sees it (actions available), from recorded data."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(availability, "blocked_reason", lambda *_args: None)
    sessions, now = paused(version)
    app = make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term="xterm-256color")
    assert snap_compare(app, terminal_size=(80, 24), press=["s"])


def test_pause_clock_reads_qemu_timestamps(version: str) -> None:
    sessions, now = paused(version)
    src = sessions[0]
    clock = PauseClock.of(src.state)
    assert clock is not None and clock.exact
    assert clock.start == src.state.stopped_since  # STOP, 1.4 ms before MIGRATION pre-switchover
    assert round(clock.seconds(now), 1) == 1.2
    assert current_switchover(src) is None  # looking creates no controller


def test_auto_resume_and_read_only_exclude_each_other() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "migtui", "--auto-resume", "--read-only", "vm.qmp"],
                            capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--auto-resume and --read-only exclude each other" in lines[0], result.stderr


async def test_a_key_that_becomes_unavailable_looks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor is lost during the pause: y's line keeps its words but must turn muted
    (the same text with a new style is still a change)."""
    from replay import replayed as replay_run
    from textual.content import Content

    blocked: list[str | None] = [None]  # first as if live and connected
    monkeypatch.setattr(availability, "blocked_reason", lambda *_args: blocked[0])
    sessions, now = replay_run("storage", 16.9)  # 1.2 s into the pause
    app = make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term="xterm-256color")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: dialog_shown(app), "the dialog")
        actions = dialog(app).query_one("#sw-actions", HangingLines)

        def y_styles() -> set[str]:
            shown = actions.content
            assert isinstance(shown, Content)
            start = next(i for i, line in enumerate(shown.plain.split("\n")) if line.startswith("y  "))
            offset = sum(len(line) + 1 for line in shown.plain.split("\n")[:start])
            return {str(span.style) for span in shown.spans if span.start <= offset < span.end}

        assert y_styles() == {"bold $success"}  # resume is green (abort is red)
        blocked[0] = "src: source QEMU gone (monitor retrying 2): migtui cannot resume or abort a pause it cannot see"
        sessions[0]._notify({"connection"})
        await until(pilot, lambda: "source QEMU gone" in dialog(app).section("note"), "the note")
        await pilot.pause()
        assert y_styles() == {"$text-muted"}
