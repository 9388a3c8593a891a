"""The keys of issue 16 as an operator meets them: the real ``migtui`` in tmux at 80x24 on
real QEMU. Ctrl+C is q on the dashboard, in the lab and in the demo, and the exit status
says so (130); the demo asks before quitting a migration under way and says how it ended
and what it removed; the lab says what it does while QEMU starts and prints its watch
command one argument a line. Every wait ends when the screen shows what it waits for
(pytest-timeout is the backstop)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tmux_util import Tmux
from view_util import open_terminal, watch_args

from migtui.lab.lab import Lab

pytestmark = [pytest.mark.qemu(one_build=True), pytest.mark.timeout(600)]


async def shows(term: Tmux, pred: Callable[[str], bool]) -> str:
    while True:
        screen = await asyncio.to_thread(term.screen)
        if pred(screen):
            return screen
        if term.dead():  # it ended: what it said last is the reason
            raise AssertionError(f"it ended:\n{screen}")
        await asyncio.sleep(0.1)


async def ended(status: Path) -> int:
    """The exit status the wrapper wrote (``Tmux.migtui(status=...)``), once it has."""
    while not status.exists() or not status.read_text():
        await asyncio.sleep(0.1)
    return int(status.read_text())


def flat(screen: str) -> str:
    return " ".join(re.sub(r"[│─╭╮╰╯▔▁▊▎▌—]", " ", screen).split())


async def test_ctrl_c_quits_the_dashboard_with_status_130(lab: Lab, terminals: list[Tmux], tmp_path: Path) -> None:
    term = open_terminal(terminals, "ctrlc")
    term.migtui(*watch_args(lab), status=tmp_path / "status")
    await shows(term, lambda s: "src · connected" in s)
    # A lone ESC is a key only once the parser's timeout passed with nothing after it: the
    # input thread, asleep until input, must wake for it (or help stays until the next key).
    term.keys("?")
    await shows(term, lambda s: "migtui help" in s)
    term.keys("Escape")
    await shows(term, lambda s: "migtui help" not in s)
    term.keys("C-c")  # not Textual's "press ctrl+q": q's way out
    assert await ended(tmp_path / "status") == 130


async def test_the_dashboard_reads_keys_again_after_sigtstp_and_sigcont(lab: Lab, terminals: list[Tmux],
                                                                        tmp_path: Path) -> None:
    # Textual's SIGTSTP handler suspends application mode (stop, then close the driver) and
    # stops the process; SIGCONT starts application mode again, with a new input thread.
    term = open_terminal(terminals, "tstp")
    term.migtui(*watch_args(lab), status=tmp_path / "status")
    await shows(term, lambda s: "src · connected" in s)
    wrapper = term.pane_pid()
    view = int(Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()[0])
    os.kill(view, signal.SIGTSTP)
    while Path(f"/proc/{view}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":  # stopped
        await asyncio.sleep(0.05)
    os.kill(view, signal.SIGCONT)
    term.keys("?")  # read by the new input thread
    await shows(term, lambda s: "migtui help" in s)
    term.keys("Escape")
    await shows(term, lambda s: "migtui help" not in s and "src · connected" in s)
    term.keys("C-c")
    assert await ended(tmp_path / "status") == 130
    assert "Traceback" not in term.screen(history=True)


async def test_the_lab_says_what_it_does_and_ctrl_c_ends_it_with_130(terminals: list[Tmux], tmp_path: Path) -> None:
    # Short enough for the lab's sockets (108 bytes), long enough to cross 80 columns.
    directory = Path(tempfile.mkdtemp(prefix="mt-", dir="/tmp")) / "a-lab-whose-paths-are-long"
    term = open_terminal(terminals, "lab")
    term.migtui("lab", "--no-disk", "--memory", "32", "--dirty", "2", "--dir", str(directory),
                status=tmp_path / "status")
    await shows(term, lambda s: "migtui lab: starting both QEMUs" in s)  # said while QEMU starts
    screen = await shows(term, lambda s: "stop:" in s)
    rows = screen.splitlines()
    assert any(row.strip() == f"src={directory}/src.qmp \\" for row in rows), screen  # never cut at 80 columns
    assert any(row.strip() == f"dst={directory}/dst.qmp" for row in rows), screen
    term.keys("C-c")
    assert await ended(tmp_path / "status") == 130
    assert "stopping" in term.screen(history=True) and not directory.exists()
    directory.parent.rmdir()


async def test_the_demo_asks_before_quitting_a_pause_and_says_what_it_removed(terminals: list[Tmux],
                                                                             tmp_path: Path) -> None:
    term = open_terminal(terminals, "demo")
    term.migtui("demo", "--memory", "64", "--dirty", "4", "--disk-size", "16", "--bandwidth", "1000",
                "--start-after", "2", status=tmp_path / "status")
    screen = await shows(term, lambda s: "the migration starts in 2 s" in s or "migration started" in s)
    assert "y resumes" in screen, screen  # what to press, before the pause
    await shows(term, lambda s: "src: paused before switchover" in s)
    term.keys("q")
    question = await shows(term, lambda s: "Quit the demo?" in s)
    assert "the source guest is stopped before switchover" in flat(question), question
    term.keys("n")  # stay: nothing stopped
    await shows(term, lambda s: "Quit the demo?" not in s and "src: paused before switchover" in s)
    assert not term.dead()
    term.keys("C-c")  # Ctrl+C is q: the same question
    await shows(term, lambda s: "Quit the demo?" in s)
    term.keys("Enter")
    assert await ended(tmp_path / "status") == 130
    said = flat(term.screen(history=True))  # last words: their start may scroll above the pane
    assert "migtui demo: quit during the pause: the guest was stopped; no switchover" in said, said
    removed = re.search(r"removed both QEMUs, the demo's engine and (\S+)", said)
    assert removed is not None, said
    assert not Path(removed.group(1)).exists()
