"""What the terminal itself shows of a pause, for a window in the background: its title
("‖ src STOPPED 3.2 s", in the tab or the taskbar), and with ``--bell`` a bell when a
guest stops (most terminals mark the tab, or flash, or notify).

The title the terminal had is pushed on start and popped on exit (xterm's title stack,
which tmux, VTE, kitty and iTerm2 keep too); one without it keeps "migtui" afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..view.remote import RemoteSession
from .pause_text import Situation, clock_figure, situation

TITLE = "migtui"
PUSH_TITLE, POP_TITLE = "\x1b[22;0t", "\x1b[23;0t"
BELL = "\a"


def title_text(paused: Sequence[RemoteSession], now: float) -> str:
    """The window's title: the first guest stopped and for how long, or "migtui"."""
    if not paused:
        return TITLE
    first = paused[0]
    name = "".join(c for c in first.name if c.isprintable())  # nothing of it may end the sequence
    if situation(first) is Situation.LOST:
        text = f"‖ {name}: source QEMU gone"
    elif first.pause.clock is not None:
        text = f"‖ {name} STOPPED {clock_figure(first.pause.clock, now)}"
    else:
        text = f"‖ {name} STOPPED"
    return text + (f" (+{len(paused) - 1} more)" if len(paused) > 1 else "")


class TerminalCues:
    """Writes the title when it changes, and the bell if asked for, through ``write`` (the
    app's terminal; nothing when it has none)."""

    def __init__(self, write: Callable[[str], None], *, bell: bool = False,
                 glyphs: Callable[[str], str] = str) -> None:
        self._write = write
        self._bell = bell
        self._glyphs = glyphs  # the Linux console's font lacks "‖"
        self._title: str | None = None

    def start(self) -> None:
        self._write(PUSH_TITLE)
        self.title(TITLE)

    def stop(self) -> None:
        self._write(POP_TITLE)

    def title(self, text: str) -> None:
        if text != self._title:
            self._title = text
            self._write(f"\x1b]2;{self._glyphs(text)}\a")

    def guest_stopped(self) -> None:
        if self._bell:
            self._write(BELL)
