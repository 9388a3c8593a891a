"""The real ``migtui`` in tmux as a view of the engine: arm, quit, hang up, attach.

What an operator does in an SSH session, against a real QEMU pair; the screen is read
with capture-pane. Each test has its own engine runtime directory (conftest).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import until
from engine_util import engine_pids
from tmux_util import Tmux, gone
from view_util import aborted_and_running, arm_in, engine_log, main_text, open_terminal, wait_screen, watch_args

from migtui.lab.lab import Lab

MiB = 1024 * 1024


@pytest.mark.qemu(one_build=True)
async def test_arm_quit_migrate_the_engine_keeps_guarding_and_stop_sets_back_the_arm(
        lab: Lab, terminals: list[Tmux], private_runtime_dir: Path) -> None:
    """Arm, quit, then migrate from another client: the source migtui armed keeps its guard
    (the engine stays and says so as the view quits), its pause ends by the deadline,
    `migtui attach` tells the story; `migtui engine stop` then sets back what migtui armed."""
    await lab.prepare(storage=True, pause=False)
    view = open_terminal(terminals, "arm").migtui("--max-pause", "2", *watch_args(lab))
    await arm_in(view)
    view.keys("q")
    screen = await wait_screen(view, "-- `migtui attach` to watch again", history=True)  # its start may scroll above
    assert ("the engine keeps guarding src: armed by migtui; its next pause gets the deadline (2 s then abort)"
            in " ".join(screen.split())), screen  # wrapped at 80 columns
    # Its last view gone, the engine looks at what it guards, and stays.
    await until(lambda: "no view attached; still guarding: src: armed by migtui" in engine_log(private_runtime_dir),
                30, "the engine deciding to stay")
    assert engine_pids(private_runtime_dir), "the engine went with its view: nothing would bound the pause"

    await lab.migrate()  # another client starts the migration: the source pauses before switchover
    ctl = await lab.control(lab.src)
    await aborted_and_running(ctl)  # the deadline's abort: the guest runs again
    assert "src: paused 2 s: aborting the migration (--on-max-pause abort)" in engine_log(private_runtime_dir)

    later = open_terminal(terminals, "later", width=200).migtui("attach")  # the story: one line, whole
    await wait_screen(later, "While no view watched")
    await wait_screen(later, "(by the engine's deadline)")
    later.keys("q")
    await wait_screen(later, "-- `migtui attach` to watch again", history=True)  # still armed: still guarded

    stop = await asyncio.create_subprocess_exec(sys.executable, "-m", "migtui", "engine", "stop",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await stop.communicate()
    assert stop.returncode == 0 and out.decode().startswith("migtui engine: stopped"), out
    await until(lambda: not engine_pids(private_runtime_dir), 15, "the engine gone")
    listed: Any = await ctl.execute("query-migrate-capabilities")
    caps = {c["capability"]: c["state"] for c in listed}
    assert caps["pause-before-switchover"] is False, caps  # set back: no pause without a guard
    assert "src: disarmed (" in engine_log(private_runtime_dir)


@pytest.mark.qemu(one_build=True)
async def test_arm_migrate_quit_the_engine_keeps_the_deadline_and_attach_tells_the_story(
        lab: Lab, terminals: list[Tmux], private_runtime_dir: Path) -> None:
    await lab.prepare(storage=True, pause=False, max_bandwidth=1 * MiB)  # stays active until we say
    view = open_terminal(terminals, "first").migtui("--max-pause", "2", *watch_args(lab))
    await arm_in(view)
    await lab.migrate()
    await wait_screen(view, "active")
    view.keys("q")
    screen = await wait_screen(view, "-- `migtui attach` to watch again", history=True)  # its start may scroll above
    assert "the engine keeps guarding src: migrating with pause-before-switchover (deadline 2 s then abort)" \
        in screen.replace("\n", ""), screen
    assert engine_pids(private_runtime_dir), "the engine went with its view"

    ctl = await lab.control(lab.src)
    await ctl.execute("migrate-set-parameters", {"max-bandwidth": 1024 * MiB})  # now it converges
    # No view: the engine's deadline (2 s) aborts the pause; the guest does not stay stopped.
    await aborted_and_running(ctl)

    # Wide: the story is one flash line, clipped with … at the terminal's width (issue 16).
    later = open_terminal(terminals, "later", width=200).migtui("attach")
    await wait_screen(later, "While no view watched")
    screen = await wait_screen(later, "(by the engine's deadline)")
    assert re.search(r"src\s+cancelled", screen), screen  # the monitors list: the migration was cancelled


@pytest.mark.qemu(one_build=True)
async def test_a_hung_up_view_is_gone_and_the_engine_stays(
        lab: Lab, terminals: list[Tmux], private_runtime_dir: Path) -> None:
    await lab.prepare(storage=False, pause=True, max_bandwidth=1 * MiB)
    view = open_terminal(terminals, "hup").migtui(*watch_args(lab))
    await wait_screen(view, "src · connected")
    await lab.migrate()
    await wait_screen(view, "active")
    pid = view.pane_pid()
    view.hang_up()  # the SSH connection drops
    await until(lambda: gone(pid), 30, "the view gone after SIGHUP")
    assert engine_pids(private_runtime_dir), ("SIGHUP of a view must not stop the engine:\n"
                                              + engine_log(private_runtime_dir))


@pytest.mark.qemu(one_build=True)
async def test_two_terminals_one_pause_one_y(lab: Lab, terminals: list[Tmux]) -> None:
    await lab.prepare(storage=True, pause=True)
    one = open_terminal(terminals, "one", 100, 30).migtui(*watch_args(lab))
    await wait_screen(one, "src · connected")
    two = open_terminal(terminals, "two").migtui("attach")
    await wait_screen(two, "src · connected")
    await lab.migrate()
    await wait_screen(one, "paused before switchover")
    await wait_screen(two, "paused before switchover")
    two.keys("y")
    screen = await wait_screen(one, "switchover completed")
    assert "resume started by tui on /dev/pts/" in screen, screen
    await wait_screen(two, "switchover completed")


@pytest.mark.qemu(one_build=True)
async def test_a_killed_engine_is_one_line_in_the_view(lab: Lab, terminals: list[Tmux],
                                                       private_runtime_dir: Path) -> None:
    await lab.prepare(storage=False, pause=False)
    view = open_terminal(terminals, "orphan").migtui(*watch_args(lab))
    await wait_screen(view, "src · connected")
    for pid in engine_pids(private_runtime_dir):
        os.kill(pid, signal.SIGKILL)
    screen = await wait_screen(view, "migtui: the migtui engine exited: run migtui again", history=True)
    lines = [line for line in screen.splitlines() if line.startswith("migtui:")]
    assert len(lines) == 1 and "Traceback" not in screen
    await until(view.dead, 300, "the view to exit")


@pytest.mark.qemu(one_build=True)
async def test_a_stopped_engine_is_marked_in_the_view_until_it_goes_on(lab: Lab, terminals: list[Tmux],
                                                                       private_runtime_dir: Path) -> None:
    """Issue 14.4: SIGSTOP the engine under a view in a pause: within a few missed heartbeats
    the header says the engine is silent, since when, its pid and what to do, and the banner
    says it too; once it goes on, the marks go."""
    await lab.prepare(storage=False, pause=True)
    view = open_terminal(terminals, "frozen-engine", 100, 30).migtui(*watch_args(lab))
    await wait_screen(view, "src · connected")
    await lab.migrate()
    await wait_screen(view, "src: paused before switchover")
    view.keys("n")  # the dialog closed: the dashboard's header and banner in sight
    await wait_screen(view, "STOPPED")
    (pid,) = engine_pids(private_runtime_dir)
    os.kill(pid, signal.SIGSTOP)
    try:
        await wait_screen(view, "engine silent", 60)  # the header's badge
        # The banner's note and the header's trouble line (wrapped: read as one text).
        said = f"the migtui engine has said nothing since HH:MM:SS: its process (pid {pid}) is stopped (SIGSTOP"
        await until(lambda: main_text(view.screen()).count(said) == 2, 10, "the banner and the header to say it")
        assert main_text(view.screen()).count(f"`kill -CONT {pid}` lets it go on") == 2, view.screen()
        assert "last: pre-switchover" in view.screen(), view.screen()  # the figures are its last word
    finally:
        os.kill(pid, signal.SIGCONT)
    await until(lambda: "engine silent" not in view.screen() and "kill -CONT" not in view.screen(), 60,
                "the marks gone once the engine goes on")
    assert "src · connected" in view.screen() or "connected" in view.screen()


def whole_log(directory: Path) -> str:
    """The engine's log file, whole (``engine_log`` keeps its tail)."""
    try:
        return (directory / "engine.log").read_text(errors="replace")
    except OSError:
        return ""


@pytest.mark.qemu
@pytest.mark.parametrize("paused", [False, True], ids=["armed", "paused-force"])
async def test_engine_stop_with_a_view_attached_leaves_no_traceback_in_the_engine_log(
        lab: Lab, terminals: list[Tmux], private_runtime_dir: Path, paused: bool) -> None:
    """Issue 16: `migtui engine stop` with a view attached left asyncio CancelledError tracebacks
    in engine.log. Armed by the view (the engine disarms it as it stops), or (``--force``) while
    that source is paused before switchover with its disk mirror."""
    await lab.prepare(storage=paused, pause=False)
    view = open_terminal(terminals, "stoplog", 160, 30).migtui(*watch_args(lab))  # its last words unwrapped
    await arm_in(view)
    if paused:
        await lab.migrate()
        await wait_screen(view, "paused before switchover")
    stop = await asyncio.create_subprocess_exec(sys.executable, "-m", "migtui", "engine", "stop",
                                                *(["--force"] if paused else []),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await stop.communicate()
    said = out.decode()
    assert stop.returncode == 0 and said.startswith("migtui engine: stopped"), said
    if not paused:
        assert said.startswith("migtui engine: stopped; disarmed src"), said
    screens: list[str] = []  # its last words, as they pass (the alternate screen may take them away)

    def gone_yet() -> bool:
        screens.append(view.screen())
        return view.dead()

    await until(gone_yet, 60, "the view gone")
    said = "".join(screens)
    if not paused:  # the view heard the disarm before the goodbye: it does not call src armed
        assert "src is armed" not in said, said
    await until(lambda: not engine_pids(private_runtime_dir), 60, "the engine gone")
    log = whole_log(private_runtime_dir)
    assert "stop requested by migtui engine stop" in log, log
    assert "Traceback" not in log and "CancelledError" not in log, log
