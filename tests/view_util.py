"""The real ``migtui`` in tmux, as an operator drives it: shared by the tests of views."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from functools import partial
from pathlib import Path
from typing import Any

from tmux_util import Tmux

from migtui.lab.lab import Lab


def open_terminal(terminals: list[Tmux], name: str, width: int = 80, height: int = 24) -> Tmux:
    term = Tmux(name, width=width, height=height)
    terminals.append(term)
    return term


def engine_log(directory: Path) -> str:
    text = ""
    for name in ("engine.log", "engine.err"):
        with contextlib.suppress(OSError):
            text += (directory / name).read_text(errors="replace")[-3000:]
    return text


async def aborted_and_running(ctl: Any, timeout: float = 30.0) -> None:
    """QEMU (asked on the lab's socket) says the migration was cancelled and the guest runs."""
    final = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        final = ((await ctl.execute("query-migrate")).get("status"), (await ctl.execute("query-status"))["status"])
        if final == ("cancelled", "running"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"QEMU says {final}, not cancelled and running")


async def arm_in(view: Tmux) -> None:
    """As an operator arms the selected source: a, then enter to confirm."""
    await wait_screen(view, "src · connected")
    view.keys("a")
    await wait_screen(view, "Arm src")
    view.keys("Enter")
    await wait_screen(view, "running armed")


def watch_args(lab: Lab) -> list[str]:
    return [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]


async def wait_screen(term: Tmux, text: str, timeout: float = 60.0, *, history: bool = False) -> str:
    """``history``: with the lines scrolled above the pane (a program's last words printed from
    its bottom row scroll there)."""
    try:
        return await asyncio.to_thread(partial(term.wait_for, text, timeout, history=history))
    except AssertionError as err:
        raise AssertionError(f"{err}\nengine's log:\n{engine_log(Path(os.environ['MIGTUI_RUNTIME_DIR']))}") from None


def main_text(screen: str) -> str:
    """The dashboard's main area (right of the monitor list) as one line of text: wrapped
    lines read whole; times read HH:MM:SS."""
    rows = [row.split("│", 1)[1] if "│" in row else "" for row in screen.splitlines()]
    return re.sub(r"\d\d:\d\d:\d\d", "HH:MM:SS", " ".join(" ".join(rows).split()))
