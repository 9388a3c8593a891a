"""The real migtui in a terminal: tmux on a private server, driven as a person would.

argv lists only (tmux runs a command given as several arguments without a shell).
Panes stay after their program exits, so its last words can be read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

# Runs argv[2:] and writes its exit status to argv[1]; Ctrl+C is the child's (the terminal
# sends SIGINT to both: this one ignores it, the child gets the default back before exec).
_STATUS_WRAPPER = """
import signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
code = subprocess.call(sys.argv[2:], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
open(sys.argv[1], "w").write(str(code))
"""


class Tmux:
    def __init__(self, name: str, *, width: int = 80, height: int = 24) -> None:
        self.server = f"migtui-test-{os.getpid()}-{name}"
        self.name = name
        self.width, self.height = width, height

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True, timeout=30,
                              check=check, stdin=subprocess.DEVNULL)

    def start(self, *argv: str) -> Tmux:
        """Run ``argv`` (e.g. migtui's) in a new window of this size; the environment is ours."""
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", self.name, "-x", str(self.width),
                   "-y", str(self.height), "-e", f"PATH={os.environ.get('PATH', '')}", "sleep", "3600")
        self._tmux("set-option", "-g", "remain-on-exit", "on")
        self._tmux("respawn-pane", "-k", "-t", self.name, *argv)
        return self

    def migtui(self, *args: str, status: Path | None = None) -> Tmux:
        """Run ``migtui args``; ``status``: a file its exit status is written to (tmux 3.3
        does not always know the status of a dead pane)."""
        env = [f"{k}={v}" for k, v in os.environ.items() if k.startswith("MIGTUI_")]
        wrap = [] if status is None else [sys.executable, "-c", _STATUS_WRAPPER, str(status)]
        # Without COLUMNS/LINES: pytest's process may carry 80x24 there, and Textual would
        # believe them over the window's real size.
        return self.start("env", "-u", "COLUMNS", "-u", "LINES", *env, "TERM=xterm-256color",
                          *wrap, sys.executable, "-m", "migtui", *args)

    def screen(self, *, history: bool = False, styles: bool = False) -> str:
        """What the pane shows; ``history``: with the lines scrolled above it (the last words of
        a program printed at the bottom row scroll there, as in any terminal); ``styles``: with
        its colours and attributes as escape sequences (``styled_row``, ``bold_text``)."""
        return self._tmux("capture-pane", "-p", *(("-S", "-200") if history else ()), *(("-e",) if styles else ()),
                          "-t", self.name).stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def pane_pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", self.name, "#{pane_pid}").stdout.strip())

    def dead(self) -> bool:
        out = self._tmux("display-message", "-p", "-t", self.name, "#{pane_dead}", check=False).stdout.strip()
        return out == "1"

    def wait_for(self, text: str, timeout: float = 20.0, *, history: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen(history=history)
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the screen within {timeout} s:\n{screen}")
            time.sleep(0.05)

    def hang_up(self) -> None:
        """The terminal goes away (an SSH drop): tmux sends SIGHUP to the pane's program."""
        self._tmux("kill-server", check=False)

    def close(self) -> None:
        self._tmux("kill-server", check=False)


SGR = re.compile(r"\x1b\[([0-9;:]*)m")


def styled_row(styled: str, text: str) -> str:
    """The row of a screen captured with ``styles`` whose text contains ``text``, its escapes
    kept ("" when no row does): how that row looks."""
    return next((row for row in styled.splitlines() if text in SGR.sub("", row)), "")


def bold_text(row: str) -> str:
    """The characters of a row captured with ``styles`` that the terminal draws in bold."""
    bold, out, at = False, [], 0
    for match in SGR.finditer(row + "\x1b[m"):
        if bold:
            out.append(row[at:match.start()])
        at = match.end()
        params = [int(p) if p.isdigit() else 0 for p in re.split("[;:]", match.group(1))]
        i = 0
        while i < len(params):  # 38/48/58 take a colour: 5;N or 2;R;G;B, not attributes
            p = params[i]
            if p in (38, 48, 58):
                i += 3 if params[i + 1:i + 2] == [5] else 5
                continue
            bold = True if p == 1 else False if p in (0, 22) else bold
            i += 1
    return "".join(out)


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")
