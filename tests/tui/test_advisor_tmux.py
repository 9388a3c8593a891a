"""The convergence advisor as an operator meets it: the real ``migtui`` in tmux at 80x24 on a
real QEMU pair. A migration that cannot converge (the lab's stuck scenario) says why on the
screen -- and ``migtui status --json`` says the same --, one key and enter fix it, and it
completes; ``x`` then enter aborts another one mid-copy. No wait has a time limit of its
own (pytest-timeout is the backstop): each ends when the screen shows what it waits for,
or fails at once when the screen shows the migration ended otherwise."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tmux_util import Tmux

from migtui.lab.lab import Lab
from migtui.lab.scenarios import SCENARIOS

MiB = 1024 * 1024
pytestmark = [pytest.mark.qemu(one_build=True), pytest.mark.timeout(900)]


@pytest.fixture
async def stuck_lab() -> AsyncIterator[Lab]:
    s = SCENARIOS["stuck"]
    lab = Lab(memory_mib=128, dirty_mib=16, disk=False, dirty_rate_mib_s=s.dirty_rate_mib_s)
    try:
        await lab.start()
        assert s.bandwidth_mib_s is not None
        await lab.prepare(storage=False, pause=False, max_bandwidth=int(s.bandwidth_mib_s * MiB))
        yield lab
    finally:
        await lab.stop()


def flat(screen: str) -> str:
    """The screen's words in order, frames gone (the panels and dialogs wrap at 80 columns)."""
    return " ".join(re.sub(r"[│─╭╮╰╯▔▁▊▎▌—]", " ", screen).split())


async def screen_until(term: Tmux, pred: Callable[[str], bool], what: str, *,
                       fails: tuple[str, ...] = ("Convergence: completed", "Convergence: cancelled")) -> str:
    while True:
        screen = await asyncio.to_thread(term.screen)
        if pred(screen):
            return screen
        ended = [text for text in fails if text in screen]
        if ended:
            raise AssertionError(f"{ended[0]!r} before {what}:\n{screen}")
        await asyncio.sleep(0.1)


async def status_convergence(lab: Lab) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "migtui", "status", "--json",
                                                f"src={lab.src.qmp_path}", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return dict(json.loads(out)["monitors"][0]["migration"]["convergence"])


async def test_a_stuck_migration_says_why_on_screen_and_one_key_fixes_it(
        stuck_lab: Lab, terminals: list[Tmux], private_runtime_dir: Path) -> None:
    lab = stuck_lab
    term = Tmux("advisor")
    terminals.append(term)
    term.migtui(f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}")
    await screen_until(term, lambda s: "src · connected" in s and "Convergence: no migration" in s, "connected")
    await lab.migrate()
    screen = await screen_until(term, lambda s: "Convergence: not converging" in s, "the verdict")
    text = flat(screen)
    assert "remaining RAM not shrinking over" in text and "limit 300 ms" in text, screen
    assert "left at each sync" in screen and "stuck" in screen, screen  # not a bar at "95%"
    assert "%" not in next(line for line in screen.splitlines() if "left at each sync" in line)
    said = await status_convergence(lab)
    assert said["verdict"] == "not-converging" and said["reason"].startswith("remaining RAM not shrinking over")
    assert "3 downtime →" in text, screen

    term.keys("3")
    dialog = await screen_until(term, lambda s: "Expected effect" in s, "the remedy's dialog")
    assert "raise downtime-limit 300 ms →" in dialog and "Cost: the guest pauses up to" in flat(dialog), dialog
    term.keys("Enter")
    done = await screen_until(term, lambda s: "Convergence: completed" in s, "completed", fails=())
    assert "downtime-limit 300 ms →" in flat(done) or "completed" in done
    term.keys("q")


async def test_x_then_x_aborts_a_migration_mid_copy(
        stuck_lab: Lab, terminals: list[Tmux], private_runtime_dir: Path) -> None:
    lab = stuck_lab
    term = Tmux("abort")
    terminals.append(term)
    term.migtui(f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}")
    await screen_until(term, lambda s: "src · connected" in s, "connected")
    await lab.migrate()
    await screen_until(term, lambda s: "x Abort" in s and "pass 1" in s, "mid-copy, x offered")
    term.keys("x")
    question = await screen_until(term, lambda s: "Abort the migration of src?" in s, "the question")
    assert "migrate_cancel: the source keeps running" in flat(question), question
    term.keys("x")  # a habit: x again only says how to answer (enter aborts)
    await screen_until(term, lambda s: "enter: abort src" in flat(s), "how to answer")
    term.keys("Enter")
    screen = await screen_until(term, lambda s: "the source guest runs on" in flat(s), "the outcome",
                                fails=("Convergence: completed",))
    assert "cancelled" in screen
    ctl = await lab.control(lab.src)
    status: Any = await ctl.execute("query-status")
    assert status["status"] == "running"
    term.keys("q")
