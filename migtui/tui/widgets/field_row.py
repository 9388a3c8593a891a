"""A row of figures (" · " between them) that repaints only the cells that change.

The row is one widget drawn whole at its width (``DiffWidget``): a ticking "total
12.7 s" repaints its own cells, and a figure that grows wider ("sent 99.9 MiB" ->
"sent 100 MiB") shifts the cells after it -- a repaint of the rest of that line, never
a layout. (A widget per field did that with a width style per field, and each width
change laid the whole screen out again: 15 % of the view's CPU during a migration.)
Builders still pad a ticking number to its widest plausible value so that neighbours
stay put. A row wider than the screen ends in "…" where it is cut, never mid-word
without a mark; ``optional_from``: the fields from that one on are shown whole or not at
all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.content import Content

from ..repaint import DiffWidget
from ..sizes import content_size

SEP = Content.styled(" · ", "$text-muted")
SEP_CELLS = SEP.cell_length


def pad(value: str, width: int) -> str:
    """``value`` right-aligned in ``width`` cells (never cut)."""
    return value.rjust(width)


class FieldRow(DiffWidget):
    DEFAULT_CSS = """
    FieldRow { height: 1; width: 1fr; }
    """

    def __init__(self, fields: int, *, optional_from: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._count = fields
        self._optional_from = fields if optional_from is None else optional_from
        self._fields: list[tuple[int, Content]] = []  # (index, value) of the fields present

    @property
    def plain(self) -> str:
        """The row as shown (what a reader sees)."""
        return self.shown.plain

    @property
    def shown(self) -> Content:
        return self._draw(self.size.width)

    def set(self, values: Sequence[Content | None]) -> bool:
        """Show up to ``fields`` values (None or empty: absent). True if anything changed."""
        fields = [(i, v) for i, v in enumerate(values[: self._count]) if v is not None and v.plain]
        if len(fields) == len(self._fields) and all(
                i == j and v.is_same(w) for (i, v), (j, w) in zip(fields, self._fields, strict=True)):
            return False
        self._fields = fields
        if not content_size(self).width:  # not laid out yet: drawn when it is
            self._drawn = None
            self.refresh()
            return True
        return self.redraw()

    def _draw(self, width: int) -> Content:
        """Each field whole while it fits; the one that crosses the edge is cut there with
        "…" (an optional one is left out), and those after it get no room at all."""
        # The parts are joined once at the end: a Content per "+" was a third of a row's cost.
        parts: list[Content] = []
        used = 0
        for n, (index, value) in enumerate(self._fields):
            cells = value.cell_length + (SEP_CELLS if n else 0)
            if not width or used + cells <= width:
                parts += (SEP, value) if n else (value,)
                used += cells
                continue
            if index < self._optional_from and width - used > 0:
                parts.append((SEP + value if n else value).truncate(width - used, ellipsis=True))
            break
        return Content.assemble(*parts)
