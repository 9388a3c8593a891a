"""The pre-switchover UI (issue 4) driven by keys against real QEMU pairs with a mirrored disk.

The dialog must open by itself on the MIGRATION event (and at startup when a VM is
already paused), ``n`` close it, ``s`` reopen it, ``y`` resume, ``x`` ``y`` abort;
read-only sends nothing that changes a VM; quitting while paused asks; SIGHUP leaves
the pause for the next start. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from qemu.qmp import EventListener
from textual.pilot import Pilot

from migtui.address import parse_address
from migtui.lab.lab import MIRROR_JOB, Lab
from migtui.transport import Monitor
from migtui.tui.app import MigtuiApp, make_app
from migtui.tui.pause_text import PauseClock, banner_duration, clock_text
from migtui.tui.screens import switchover as switchover_screen
from migtui.tui.screens.confirm import ConfirmScreen
from migtui.tui.screens.switchover import SwitchoverScreen
from migtui.tui.widgets.monitor_list import MonitorList
from migtui.tui.widgets.pause_banner import PauseBanner
from migtui.workflow.pairing import destination_for, pair_key
from migtui.workflow.session import MonitorSession
from migtui.workflow.switchover import Outcome, current_switchover

REPO = Path(__file__).resolve().parent.parent
TUI_FIXTURES = Path(__file__).parent / "fixtures" / "qmp" / "tui"
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


def banner(app: MigtuiApp) -> str:
    return app.dashboard.query_one(PauseBanner).shown


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
    assert banner_duration(9.9) == "9 s"
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
        (name, since), = app.pauses.detected
        change = next(c for c in reversed(src.state.status_changes) if c.status == "pre-switchover")
        assert name == "src" and change.source == "event" and change.time == since
        await until(pilot, lambda: "src: guest STOPPED" in banner(app), "the banner")
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
        await pilot.press("y")  # again: nothing more is sent
        await pilot.pause(0.1)
        assert [(n, a) for _, n, a in sent.mutating()] == [
            ("block-job-cancel", {"device": MIRROR_JOB, "force": False}),
            ("migrate-continue", {"state": "pre-switchover"}),
        ]
        await pilot.press("n")
        await until(pilot, lambda: banner(app) == "", "the banner to go")


@pytest.mark.qemu
async def test_x_then_y_aborts_and_the_source_runs_again(lab: Lab) -> None:
    sessions, sent = live(lab)
    src, _dst = sessions
    app = app_for(sessions)
    async with app.run_test(size=(80, 24)) as pilot:
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
    sessions, sent = live(lab)
    app = app_for(sessions)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot, sessions)
        await migrate_to_pause(lab)
        await until(pilot, lambda: dialog_shown(app), "the dialog")
        await pilot.press("n", "q")
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one("#confirm-question").render())
        assert "src: guest stopped in pre-switchover for" in question and "Quit anyway?" in question
        await pilot.press("n")
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("q", "y")
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
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
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
async def test_sighup_leaves_the_pause_and_the_next_start_shows_it(lab: Lab, tmp_path: Path) -> None:
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
    assert re.search(r"SIGHUP \(terminal lost\): src: guest stopped in pre-switchover for .*left paused, not"
                     r" resumed", text), text
    assert await qemu_status(lab) == "pre-switchover"

    # The next start shows that pause at once, found by the first query-migrate.
    sessions, sent = live(lab)
    src, _dst = sessions
    app = app_for(sessions)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: dialog_shown(app), "the dialog at startup", timeout=10)
        change = next(c for c in reversed(src.state.status_changes) if c.status == "pre-switchover")
        assert change.source == "poll"
        box = dialog(app)
        assert box.section("clock").startswith("Guest stopped at least ")
        await pilot.press("y")
        await until(pilot, lambda: box.controller.result is not None, "resume")
        assert box.controller.result.outcome is Outcome.COMPLETED  # type: ignore[union-attr]
    assert [n for _, n, _a in sent.mutating()] == ["block-job-cancel", "migrate-continue"]


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


def replayed(at: float, pairs: tuple[str, ...] = ("",)) -> tuple[list[MonitorSession], float]:
    entries = json.loads((TUI_FIXTURES / "storage.json").read_text())["entries"]
    now = entries[0]["t"] + at
    sessions = []
    for suffix in pairs:
        for side in ("src", "dst"):
            session = MonitorSession.offline(f"{side}{suffix}", clock=lambda: now)
            session.replay([e for e in entries if e["side"] == side], until=now)
            sessions.append(session)
    return sessions, now


async def test_several_paused_sources_get_their_dialogs_in_turn() -> None:
    sessions, now = replayed(16.9, ("1", "2"))
    app = make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term="xterm-256color")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "src1: guest STOPPED 1 s" in banner(app) and "src2: guest STOPPED" in banner(app)
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


def test_switchover_dialog_80x24(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dialog as a live operator sees it (actions available), from recorded data."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(switchover_screen, "blocked_reason", lambda _session: None)
    sessions, now = replayed(16.9)
    app = make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term="xterm-256color")
    assert snap_compare(app, terminal_size=(80, 24), press=["s"])


def test_pause_clock_reads_qemu_timestamps() -> None:
    sessions, now = replayed(16.9)
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
