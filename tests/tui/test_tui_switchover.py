"""The pre-switchover UI (issue 4) driven by keys, the dashboard a view of its engine.

Against real QEMU pairs with a mirrored disk: the dialog opens by itself on the MIGRATION
event, ``n`` closes it, ``s`` reopens it, ``y`` resumes, ``x`` ``y`` aborts; read-only
sends nothing that changes a VM; ``a`` arms after asking; ``--auto-resume`` is the
engine's; SIGHUP leaves the pause to the engine for the next view. On recorded QEMUs:
several pauses in turn, the banner, the footer, help and the dialog's snapshot. Every
wait is on a condition with a limit.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from signal import SIGHUP
from typing import Any

import pytest
from conftest import app_for, screen_text, until
from engine_util import engine_pids
from pytest_textual_snapshot import SVGImageExtension
from qemu.qmp import EventListener
from replay import Recorded, recorded
from tui_util import (
    banner,
    close_dialogs,
    dialog,
    dialog_shown,
    figure,
    lab_monitors,
    migrate_to_pause,
    qemu_status,
    screenshot,
)

from migtui.lab.lab import MIRROR_JOB, Lab
from migtui.model.coerce import as_mapping
from migtui.model.switchover import Outcome
from migtui.protocol.messages import PolicyInfo
from migtui.protocol.runtime import runtime
from migtui.tui import pause_watch
from migtui.tui.screens.confirm import ConfirmScreen
from migtui.tui.screens.help import HelpScreen
from migtui.tui.screens.switchover import SwitchoverScreen
from migtui.tui.widgets.hanging import HangingLines
from migtui.tui.widgets.monitor_list import MonitorList
from migtui.tui.widgets.pause_banner import PauseBanner
from migtui.tui.widgets.text_line import TextLine
from migtui.view.client import EngineClient
from migtui.workflow.session import EVENTS, MIGRATION

REPO = Path(__file__).resolve().parents[2]
AUTO_RESUME = PolicyInfo(auto_resume=True, explicit=["auto_resume"])  # as `migtui --auto-resume` asks


# ---------------------------------------------------------------------- real QEMU


@pytest.mark.qemu
async def test_dialog_opens_on_the_event_and_y_resumes_to_completion(lab: Lab) -> None:
    async with app_for(lab_monitors(lab)) as view:
        app, (src, dst) = view.app, view.sessions
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog to open by itself")
        # Detected from the MIGRATION event itself, not a poll: the engine's clock is QEMU's stamp.
        change = next(c for c in reversed(src.state.status_changes) if c.status == "pre-switchover")
        assert change.source == "event" and src.pause.clock is not None and src.pause.clock.exact
        await until(lambda: "src STOPPED" in banner(app), 10, "the banner")
        box = dialog(app)
        checks = box.section("checks")
        assert "all green" in checks, checks
        for line in ("✓ source", f"✓ mirror {MIRROR_JOB}", "✓ destination", "· RAM"):
            assert line in checks, checks
        assert "y  Resume switchover: finish each disk mirror" in box.section("actions")
        # The downtime clock ticks (from QEMU's STOP timestamp).
        first = box.section("clock")
        assert first.startswith("Guest stopped ") and "counts as downtime" in first
        await until(lambda: box.section("clock") != first, 10, "the clock to tick")

        await view.press("n")
        assert not isinstance(app.screen, SwitchoverScreen)
        assert src.state.in_pre_switchover and view.sent.mutating() == []  # closing sends nothing
        await view.press("s")
        await until(lambda: dialog_shown(app), 10, "the dialog to reopen")
        box = dialog(app)
        await view.press("y")
        controller = box.controller
        await until(lambda: controller.result is not None, 30, "the resume to finish")
        result = controller.result
        assert result is not None and result.outcome is Outcome.COMPLETED, result
        await until(lambda: "completed: the destination has taken over" in box.section("outcome"), 10,
                    "the outcome shown")
        assert "downtime" in box.section("outcome")
        await until(lambda: "✓ Destination dst runs" in box.section("steps"), 10, "the destination's step")
        assert [s.key for s in controller.steps][-1] == "destination"
        await until(lambda: dst.state.running is True, 10, "the destination to run")
        await until(lambda: box.section("clock").startswith("Guest was stopped"), 10, "the clock to stop")
        assert box.query_one("#sw-box").border_title == "src: switchover completed"
        steps = box.query_one("#sw-steps", HangingLines).shown
        assert steps[0] == "Steps of the switchover" and len(steps) == 1 + len(controller.steps), steps
        assert all(re.search(r"\d m?s$", line) for line in steps[1:]), steps  # one line each, its time last
        said = len(view.toasts)
        await view.press("y")  # again: it says why not, and nothing more is sent
        await until(lambda: len(view.toasts) > said, 5, "y's reason, as a notice")
        assert [(n, a) for _, n, a in view.sent.mutating()] == [
            ("block-job-cancel", {"device": MIRROR_JOB, "force": False}),
            ("migrate-continue", {"state": "pre-switchover"}),
        ]
        await view.press("n")
        await until(lambda: banner(app) == "", 10, "the banner to go")


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
    async with app_for(lab_monitors(lab), size=(100, 30)) as view:
        app, (src, _dst) = view.app, view.sessions
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog")
        box = dialog(app)
        # One clock on screen: the dialog's ticks; the banner beneath names the pause and points to it.
        for _ in range(4):
            shown = box.section("clock")

            def ticked(shown: str = shown) -> bool:
                return box.section("clock") != shown

            await until(ticked, 10, "a tick")
            assert "src STOPPED · see the dialog" in banner(app), banner(app)

        # The dashboard rows above the dialog repaint: each poll brings a new total time.
        def migration_row() -> str:
            return next((r for r in screen_text(app).splitlines()[:4] if "total " in r), "")

        first = migration_row()
        assert "pre-switchover" in first, screen_text(app)
        await until(lambda: migration_row() != first, 10, "the migration line behind the dialog to move")

        await view.press("y")
        await until(lambda: box.controller.result is not None, 30, "the resume to finish")
        assert box.controller.result.outcome is Outcome.COMPLETED  # type: ignore[union-attr]
        # Released by the outcome, not by the (60 s) fallback.
        await until(lambda: "completed: the destination" in box.section("outcome"), 30, "the outcome shown")
        await until(lambda: box.query_one("#sw-box").border_title == "src: switchover completed", 30, "the title")
        assert during_hold == [], during_hold

        # And behind the dialog, still open: the list, the header and no banner any more.
        def caught_up() -> bool:
            rows = screen_text(app).splitlines()
            return (rows[0].split("│")[0].split() == ["▸src", "completed"] and "postmigrate" in rows[0]
                    and not any("STOPPED" in r for r in rows))

        try:
            await until(caught_up, 30, "the dashboard behind the dialog to show the end")
        except AssertionError as err:
            raise AssertionError("\n".join([str(err), screen_text(app)])) from None
        assert app.screen is box and src.state.migration_status == "completed"


@pytest.mark.qemu
async def test_x_then_enter_aborts_and_the_source_runs_again(lab: Lab) -> None:
    async with app_for(lab_monitors(lab), size=(100, 30)) as view:
        app, (src, _dst) = view.app, view.sessions
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog")
        box = dialog(app)
        await view.press("x")
        assert "Abort the migration of src?" in box.section("actions")
        assert view.sent.mutating() == []  # x only asks
        await view.press("n")  # back
        assert "Abort the migration" not in box.section("actions") and isinstance(app.screen, SwitchoverScreen)
        await view.press("x", "y")  # y does not answer the question (issue 16): it says how
        assert box.abort_armed and view.sent.mutating() == [] and box.controller.action is None
        await view.press("enter")
        await until(lambda: box.controller.result is not None, 30, "the abort to finish")
        assert box.controller.result.outcome is Outcome.ABORTED, box.controller.result  # type: ignore[union-attr]
        await until(lambda: "aborted: the source guest runs again" in box.section("outcome"), 10, "outcome")
        await until(lambda: src.state.running is True, 10, "the source to run")
        assert box.query_one("#sw-box").border_title == "src: switchover aborted"
        steps = box.query_one("#sw-steps", HangingLines).shown
        assert steps[0] == "Steps of the abort" and len(steps) == 1 + len(box.controller.steps), steps
        before = lab.serial_size(lab.src)
        await until(lambda: lab.serial_size(lab.src) > before, 30, "the source guest to write again")
        assert [n for _, n, _a in view.sent.mutating()] == ["migrate_cancel", "block-job-cancel"]


@pytest.mark.qemu
async def test_a_failed_mirror_stops_before_continue_says_why_and_offers_abort(lab: Lab) -> None:
    async with app_for(lab_monitors(lab)) as view:
        app, (src, _dst) = view.app, view.sessions
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog")
        box = dialog(app)
        dst_ctl = await lab.control(lab.dst)
        await dst_ctl.execute("nbd-server-stop")  # the destination's disk export goes away
        await view.press("y")
        await until(lambda: box.controller.result is not None, 30, "the resume to stop")
        await until(lambda: "migrate-continue not sent" in box.section("outcome"), 10, "why")
        assert f"mirror {MIRROR_JOB}" in box.section("outcome")
        assert box.query_one("#sw-box").border_title == "src: switchover failed, guest still stopped"
        steps = box.query_one("#sw-steps", HangingLines).shown
        failed = next(i for i, line in enumerate(steps) if line.startswith(f"✗ Finish mirror {MIRROR_JOB}"))
        assert steps[failed + 1].startswith("  ") and steps[failed + 1].strip(), steps  # why, in full below
        assert "x  Abort" in box.section("actions") and box.check_action("abort", ()) is True
        assert box.check_action("resume", ()) is False  # it ran once
        assert src.state.in_pre_switchover
        await view.press("x", "enter")
        await until(lambda: "aborted: the source guest runs again" in box.section("outcome"), 30, "abort")
    names = [n for _, n, _a in view.sent.mutating()]
    # The graceful cancel ended the mirror (with an error), so the abort has none left to force-cancel.
    assert names == ["block-job-cancel", "migrate_cancel"], view.sent.mutating()


@pytest.mark.qemu
async def test_read_only_offers_no_action_and_sends_nothing(lab: Lab) -> None:
    async with app_for(lab_monitors(lab), read_only=True) as view:
        app, (src, _dst) = view.app, view.sessions
        seen = view.toasts
        dash = app.dashboard
        assert dash.check_action("arm", ()) is False  # never in a read-only view: not offered
        await view.press("a")  # pressed anyway: it says why
        assert any("read-only: migtui will not arm src" in n for n in seen), seen
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog (to watch)")
        box = dialog(app)
        assert "read-only: migtui will not resume or abort src" in box.section("note")
        assert box.check_action("resume", ()) is False and box.check_action("abort", ()) is False
        assert "Resume" not in box.section("actions") and "Abort" not in box.section("actions")
        await view.press("y", "x")
        assert sum("read-only" in n for n in seen) >= 3, seen
        await until(lambda: "read-only: migtui will not resume" in banner(app), 10, "the read-only note")
        await view.press("n")
        assert dash.check_action("abort_switchover", ()) is False and dash.check_action("switchover", ()) is True
        await view.press("x")
        await view.press("s")
        await until(lambda: dialog_shown(app), 10, "the dialog to reopen")
        # Another client finishes it: the dialog says so and closes.
        ctl = await lab.control(lab.src)
        await ctl.execute("block-job-cancel", {"device": MIRROR_JOB})
        await ctl.execute("migrate-continue", {"state": "pre-switchover"})
        await until(lambda: not isinstance(app.screen, SwitchoverScreen), 30, "the dialog to close")
        assert any("another client continued the migration" in n for n in seen), seen
        await until(lambda: src.state.migration_status == "completed", 30, "completed")
        palette = [c.title for c in app.get_system_commands(dash)]
        assert "Arm pause-before-switchover (unavailable)" in palette
    assert view.sent.mutating() == []
    assert view.sent.commands and not view.sent.mutating()  # queries only, all along


@pytest.mark.qemu
async def test_arm_action_arms_the_source(lab: Lab) -> None:
    await lab.prepare(storage=True, pause=False)  # events on, pause-before-switchover off
    async with app_for(lab_monitors(lab)) as view:
        app, (src, _dst) = view.app, view.sessions
        await until(lambda: src.state.capabilities.supports("pause-before-switchover"), 10, "capabilities")
        assert not src.state.armed and app.dashboard.check_action("arm", ()) is True
        await view.press("a")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.query_one("#confirm-box").border_title == "Arm src?"
        await view.press("y", "a")  # habits: each says how to answer (enter), nothing more
        assert isinstance(app.screen, ConfirmScreen)  # the question still waits
        await view.press("enter")  # the one confirmation key
        await until(lambda: src.state.armed, 30, "armed")
        monitors = app.dashboard.query_one(MonitorList)
        await until(lambda: "armed" in str(monitors.get_option("src").prompt), 10, "armed in the list")
        assert app.dashboard.check_action("arm", ()) is False  # nothing left to arm
        assert src.pause.armed_by_engine == ["pause-before-switchover"]  # the engine's: its to guard
        # Once, for the one a: the y before it sent nothing.
        assert [(n, a) for _, n, a in view.sent.mutating()] == [
            ("migrate-set-capabilities", {"capabilities": [{"capability": "pause-before-switchover", "state": True}]}),
        ]
    # The engine's end sets back what it armed (no migration: QEMU lets it).
    assert [(n, a) for _, n, a in view.sent.mutating()][1:] == [
        ("migrate-set-capabilities", {"capabilities": [{"capability": "pause-before-switchover", "state": False}]}),
    ]


@pytest.mark.qemu
async def test_auto_resume_completes_with_no_dialog(lab: Lab) -> None:
    async with app_for(lab_monitors(lab), policy=AUTO_RESUME) as view:
        app, (src, _dst) = view.app, view.sessions
        assert src.pause.auto is True
        dialogs: list[object] = []
        await migrate_to_pause(lab)

        def completed() -> bool:  # and the dialogs on the screen then
            if src.state.migration_status != "completed":
                return False
            dialogs.extend(s for s in app.screen_stack if isinstance(s, SwitchoverScreen))
            return True

        await until(completed, 30, "completed")
        auto = view.engine.watched["src"].auto  # the engine's, not the view's
        assert auto is not None and auto.destination is view.engine_session("dst")  # paired at the pause
        result = await asyncio.wait_for(auto.task, 30)  # type: ignore[arg-type]
        assert result is not None and result.outcome is Outcome.COMPLETED, result
        assert dialogs == []
        await until(lambda: any("auto-resume: src: migration completed" in n for n in view.toasts), 10, "report")
    assert [n for _, n, _a in view.sent.mutating()] == ["block-job-cancel", "migrate-continue"]


@pytest.mark.qemu
async def test_auto_resume_holds_back_loudly_when_the_checklist_fails(lab: Lab, tmp_path: Path) -> None:
    # The destination is watched but its monitor is unreachable: never resume blind.
    monitors = [f"src=unix:{lab.src.qmp_path}", f"dst=unix:{tmp_path / 'gone.qmp'}"]
    async with app_for(monitors, policy=AUTO_RESUME, wait=False) as view:
        app, (src, _dst) = view.app, view.sessions
        await until(lambda: src.connected and src.polls >= 1, 30, "src connected")
        await migrate_to_pause(lab)
        await until(lambda: dialog_shown(app), 30, "the dialog after auto-resume held")
        box = dialog(app)
        await until(lambda: "auto-resume held, the guest stays stopped: destination: monitor not connected"
                    in box.section("note"), 10, "why, in the dialog")
        assert "✗ destination" in box.section("checks")
        await until(lambda: "auto-resume held" in banner(app), 10, "the loud banner")
        assert src.state.in_pre_switchover and view.sent.mutating() == []


@pytest.mark.qemu
async def test_sighup_leaves_the_pause_and_the_next_start_shows_it(lab: Lab, tmp_path: Path,
                                                                   private_runtime_dir: Path) -> None:
    ctl = await lab.control(lab.src)
    paused = EventListener("MIGRATION", lambda ev: as_mapping(ev.get("data")).get("status") == "pre-switchover")
    with ctl.listen(paused):
        await migrate_to_pause(lab)
        await asyncio.wait_for(paused.get(), 30)

    # SIGHUP (tmux's kill-server, a shell passing on its hang-up), then a terminal that is
    # just gone: sshd closes the pty and the view's first news is a failed read (EIO).
    # Either way the view goes (129, as for a hang-up) and says so; nothing is sent.
    argv = [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]
    for how, said in (("signal", "SIGHUP (terminal lost)"), ("close", "terminal lost (hung up)")):
        log_file = tmp_path / f"migtui-{how}.log"
        term = PtyApp([sys.executable, "-m", "migtui", *argv, "--log-file", str(log_file)])
        try:
            await term.wait_for("paused before switchover", 60)  # the dialog, at startup
            term.hang_up(signal=how == "signal")
            code = await term.wait_exit(60)
        finally:
            term.kill()
        assert code == 129, (how, code, log_file.read_text())
        text = log_file.read_text()
        assert f"{said}: view detached; the engine keeps watching" in text, text
        assert "Traceback" not in text, text
        assert await qemu_status(lab) == "pre-switchover"  # nothing was sent
        assert engine_pids(private_runtime_dir), "the engine must outlive the view's terminal"
        argv = ["attach"]

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
        await until(lambda: src.switchover.result is not None, 30, "the resume's outcome")
        assert src.switchover.result.outcome is Outcome.COMPLETED  # type: ignore[union-attr]
    finally:
        await client.close()


@pytest.mark.qemu
async def test_a_character_split_across_reads_is_read_whole(lab: Lab, private_runtime_dir: Path) -> None:
    # A terminal may deliver a character's UTF-8 bytes in two reads (a paste longer than
    # the 4 KiB a read takes, a slow link): the first gives no text yet, which is not the
    # end of the input.
    term = PtyApp([sys.executable, "-m", "migtui", f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"])
    try:
        await term.wait_for("connected", 60)  # the dashboard, reading keys
        first, second = "é".encode()[:1], "é".encode()[1:]
        term.type(first)
        await until(lambda: term.unread() == 0, 30, "the view read the first byte")
        term.type(second + b"?")
        await term.wait_for("migtui help", 30)  # it still reads keys
    finally:
        term.kill()


class PtyApp:
    """The real migtui in an 80x24 pseudo-terminal; collects what it draws."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(REPO))
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO,
                                     start_new_session=True, close_fds=True)
        self.tty = os.ttyname(slave)
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

    def type(self, data: bytes) -> None:
        assert self.master is not None
        os.write(self.master, data)

    def unread(self) -> int:
        """Bytes typed that the app has not read yet (FIONREAD on its side of the terminal)."""
        fd = os.open(self.tty, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        finally:
            os.close(fd)

    def hang_up(self, *, signal: bool) -> None:
        """Send SIGHUP (``signal``), or close the terminal as sshd does when SSH drops."""
        if signal:
            os.kill(self.proc.pid, SIGHUP)
            return
        assert self.master is not None
        os.close(self.master)
        self.master = None

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


# ---------------------------------------------------------------------- recorded QEMUs


def paused(version: str, pairs: tuple[str, ...] = ("",)) -> Recorded:
    """Source and destination of each pair, 1.2 s into the pause of a recorded storage run."""
    scene = recorded("storage", "paused", {"src": f"src{pairs[0]}", "dst": f"dst{pairs[0]}"}, version=version)
    for suffix in pairs[1:]:
        scene |= recorded("storage", "paused", {"src": f"src{suffix}", "dst": f"dst{suffix}"}, version=version)
    return scene


async def test_several_paused_sources_get_their_dialogs_in_turn(version: str) -> None:
    async with app_for(paused(version, ("1", "2"))) as view:
        app = view.app
        await until(lambda: dialog_shown(app), 10, "src1's dialog, by itself")
        # Beneath it, src1's line points to the dialog; src2's, whose dialog waits, keeps its clock.
        assert "src1 STOPPED · see the dialog" in banner(app), banner(app)
        assert "src2 STOPPED 1.2 s · no deadline · s opens" in banner(app), banner(app)
        first = dialog(app)
        assert first.source.name == "src1" and len(app.screen_stack) == 2  # src2's waits behind it
        assert "Also paused: src2" in first.section("more")
        assert "No deadline: not migtui's pause" in first.section("note")  # the engine's word on it
        assert first.section("clock") == "Guest stopped 1.2 s · all of it counts as downtime"
        assert "destination          receiving the migration" in first.section("checks")  # dst1, by name
        await view.press("n")
        await until(lambda: isinstance(app.screen, SwitchoverScreen) and app.screen.source.name == "src2",
                    10, "src2's dialog next")
        await view.press("n")
        assert not isinstance(app.screen, SwitchoverScreen)


async def test_the_dashboard_behind_a_dialog_repaints_after_a_batch(version: str) -> None:
    """During a Textual batch (a recompose is one) the screen behind skips its repaint and
    must still catch up when the batch ends."""
    async with app_for(paused(version), size=(100, 30)) as view:
        app = view.app
        await until(lambda: dialog_shown(app), 10, "the dialog")
        header = app.dashboard.query_one("#header-identity", TextLine)
        with app.batch_update():
            header.set("src · changed behind the dialog")
            await view.pilot.pause()  # the dashboard handles its repaint request now, in the batch
        await until(lambda: any("changed behind the dialog" in r for r in screen_text(app).splitlines()[:3]), 10,
                    "the dashboard to repaint after the batch")


async def test_y_is_on_the_engine_socket_before_the_dialog_hears_of_it(
        version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guest is stopped: the resume request is written to the engine as the key is
    handled, before the dialog (and every other listener) repaints for it."""
    sent: list[str] = []
    original = EngineClient._send

    def spy(self: EngineClient, message: Any) -> None:
        sent.append(type(message).__name__)
        original(self, message)

    monkeypatch.setattr(EngineClient, "_send", spy)
    async with app_for(paused(version), size=(100, 30)) as view:
        app = view.app
        await until(lambda: dialog_shown(app), 10, "the dialog")
        box = dialog(app)
        requests_at_progress: list[int] = []
        box.controller.add_progress_listener(lambda _c: requests_at_progress.append(sent.count("Request")))
        await view.press("y")
        await until(lambda: bool(requests_at_progress), 10, "the dialog told of the resume")
        assert requests_at_progress[0] == 1, (requests_at_progress, sent)


async def test_the_dashboard_beneath_an_opening_dialog_gets_its_changes_once_the_dialog_shows(
        version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a dialog opens, its repaint for the pause has the loop: the dashboard beneath (its
    banner, its panels) gets the changes that came meanwhile once the dialog has drawn (or
    OPENING_HOLD_S has passed), merged, none lost; the dialog gets them at once."""
    async with app_for(paused(version), size=(100, 30)) as view:
        app = view.app
        await until(lambda: dialog_shown(app) and not app.pauses.opening, 10, "the dialog, drawn")
        await view.press("n")
        await until(lambda: not dialog_shown(app), 10, "the dialog closed")
        handled: list[bool] = []  # for each change the dashboard handled: was a dialog opening then?
        dashboard_class = type(app.dashboard)
        original = dashboard_class.on_sessions_changed

        def spy(self: Any, message: Any) -> Any:
            handled.append(app.pauses.opening)
            return original(self, message)

        monkeypatch.setattr(dashboard_class, "on_sessions_changed", spy)
        src = app.sessions["src"]
        app.pauses.open_dialog("src", user=True)  # as `s` does
        assert app.pauses.opening
        app._session_changed(src, frozenset({MIGRATION}))  # a change while it opens
        await until(lambda: not app.pauses.opening, 10, "the dialog drawn (or the hold over)")
        await until(lambda: bool(handled), 10, "the dashboard to get the change")
        assert not any(handled), handled  # never while the dialog opened
        assert dialog_shown(app) and "src STOPPED" in banner(app)


async def test_a_monitor_unwatched_while_a_dialog_opens_is_skipped_by_the_dashboard_beneath(version: str) -> None:
    """Changes held for the dashboard while a dialog opens can name a monitor the engine stopped
    watching meanwhile (a libvirt domain undefined right after its switchover): the dashboard
    skips it once the dialog shows (it raised KeyError, and the view ended)."""
    async with app_for(paused(version, ("1", "2")), size=(100, 30)) as view:
        app = view.app
        await close_dialogs(view)
        await view.press("e")  # all events: an event of any monitor goes to the log
        await until(lambda: app.dashboard.all_events, 10, "all events on")
        dst2 = app.sessions["dst2"]
        app.pauses.open_dialog("src1", user=True)  # as `s` does
        assert app.pauses.opening
        app._session_changed(dst2, frozenset({EVENTS}))
        app._flush_changes()  # held for the dashboard while the dialog opens
        app.remove_session(dst2, "dst2: no longer watched")
        await until(lambda: dialog_shown(app), 10, "the dialog drawn, the held changes released")
        await view.pilot.pause()
        assert app.is_running and "dst2" not in app.sessions
        assert "dst2" not in screen_text(app).split("│")[0]


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_banner_and_footer_fit_and_say_what_applies(size: tuple[int, int], version: str) -> None:
    async with app_for(paused(version), size=size) as view:
        app = view.app
        await close_dialogs(view)
        line = app.dashboard.query_one("#pause-lines", TextLine)
        assert line.shown.plain == " ‖ src STOPPED 1.2 s · no deadline · s opens "  # not migtui's pause
        assert line.shown.cell_length <= line.size.width, (line.shown.cell_length, line.size.width)  # not cut
        rows = screen_text(app).splitlines()
        assert "‖ src STOPPED 1.2 s · no deadline · s opens" in rows[0], rows[0]
        footer = rows[-1]
        assert "s Switchover" in footer and "x Abort" in footer, footer  # what applies while paused...
        assert "Dirty rate" not in footer and "Paused VM" not in footer, footer  # ...and nothing else
        assert app.dashboard.check_action("measure_dirty_rate", ()) is False
        await view.press("down")  # dst selected: s still opens the paused source's dialog
        assert "s Switchover" in screen_text(app).splitlines()[-1]
        await view.press("s")
        await until(lambda: dialog_shown(app), 10, "src's dialog")
        assert dialog(app).source.name == "src"
        assert figure(dialog(app).section("clock"), "Guest stopped ") == "1.2 s"
        assert "src STOPPED · see the dialog" in banner(app), banner(app)  # its clock is the dialog's
        await view.press("n")  # closed: the banner's own clock again, the same figure
        await until(lambda: "src STOPPED 1.2 s · no deadline · s opens" in banner(app), 10, "the banner's clock")


async def test_help_explains_the_pre_switchover_step(version: str) -> None:
    async with app_for(paused(version)) as view:
        app = view.app
        await close_dialogs(view)
        await view.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text
        words = " ".join(text.split())
        for needle in ("Pre-switchover", "a arm", "y resume", "x abort (asks first)", "n close",
                       "Confirming", "enter does it", "STOPPED", "--auto-resume", "--max-pause", "--read-only",
                       "quits this view only"):
            assert needle in words, needle
        assert len(text.splitlines()) <= 2 * 21, text  # two screens at 80x24, like htop's


async def test_switchover_dialog_80x24(snapshot: Any, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """The dialog as a live operator sees it (actions available), from recorded QEMUs."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    async with app_for(paused(version)) as view:
        await until(lambda: dialog_shown(view.app), 10, "the dialog")
        assert snapshot.use_extension(SVGImageExtension) == await screenshot(view)
