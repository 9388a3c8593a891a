"""The selected migration's passes, one row each, under the monitors list on a big terminal.

At 120x40 the monitors column has room to spare (a few monitors take a few rows); this
fills it with what the per-pass trend compresses into one line: for each pass, how long it
took and the RAM left when it began (``model/passes.py``, folded from the same QEMU input
as the engine's). Newest last; as many as fit in half the screen. Hidden below 110x36
(app.tcss).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.content import Content

from ... import format as fmt
from ...model.passes import Pass
from ..repaint import DiffWidget

HEADER = Content.styled(f"{'pass':>4}  {'took':>7}  {'left at start':>13}", "$text-muted")


def pass_rows(passes: Sequence[Pass], rows: int, *, running: bool = True) -> Content:
    """The header and the last ``rows - 1`` passes, newest last; ``running``: the last pass
    goes on ("…"), else it ended with the migration ("—": no sync closed it)."""
    if not passes:
        return Content.styled("no passes yet", "$text-muted")
    lines = [HEADER]
    for p in passes[-max(1, rows - 1):]:
        took = fmt.format_duration(p.duration) if p.duration is not None else "…" if running else fmt.UNKNOWN
        left = fmt.format_bytes(p.remaining)  # "—": no poll in that pass to tell
        lines.append(Content(f"{p.number:>4}  {took:>7}  {left:>13}"))
    return Content("\n").join(lines)


class PassHistory(DiffWidget):
    DEFAULT_CSS = """
    PassHistory { height: auto; border: none; border-top: solid $foreground 45%; border-title-align: left;
                  border-title-color: $foreground; display: none; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._passes: tuple[Pass, ...] = ()
        self._running = False
        self.border_title = "[b]Passes[/b]"

    def set(self, name: str, passes: Sequence[Pass], *, running: bool) -> bool:
        self.border_title = f"[b]Passes[/b] [dim]({name})[/dim]"
        rows = len(self._passes)
        self._passes = tuple(passes)
        self._running = running
        if len(self._passes) != rows:  # height: auto: a row more or less is a new layout
            self.refresh(layout=True)
        return self.redraw()

    def _draw(self, width: int) -> Content:
        # As tall as the passes need, up to half the screen (app.tcss): the monitors keep the rest.
        rows = max(2, self.app.size.height // 2 - 1)
        return pass_rows(self._passes, rows, running=self._running)
