"""A row of figures, each its own widget, so a changing number repaints only itself.

Textual writes a partial refresh from the start of the widget's line up to the last
changed cell; with one widget per figure a ticking "total 12.7 s" costs a dozen
cells instead of the whole line. Fields are separated by " · ".

Each field fits its text. Builders pad a ticking number to the width of its widest
plausible value (``pad``: "  3.3 MiB" as wide as "999.9 MiB"), so the width stays
put while the figure ticks and the row never jumps; a width change (a value that
really is wider, a field appearing) moves the neighbours and costs one layout pass.
A field never keeps a width it no longer needs: that left gaps in the row. A row wider
than the screen ends in "…" where it is cut, never mid-word without a mark.

The row sets each field's width itself (``styles.width``) rather than leaving it to
``width: auto``: Textual 8 caches an auto widget's box model per layout request, and a
second change that lands while the first request is still pending was laid out at
the first one's width (a real dashboard kept "left 3.5 of 128.5 MiB"'s width for
"destination: RAM figures are on the source", cut). A style change always re-lays out.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.css.scalar import Scalar

from .text_line import TextLine

SEP = Content.styled(" · ", "$text-muted")


def pad(value: str, width: int) -> str:
    """``value`` right-aligned in ``width`` cells (never cut)."""
    return value.rjust(width)


class FieldRow(Horizontal):
    DEFAULT_CSS = """
    FieldRow { height: 1; width: 1fr; }
    FieldRow > TextLine { width: 0; height: 1; }
    """

    def __init__(self, fields: int, *, optional_from: int | None = None, **kwargs: Any) -> None:
        """``optional_from``: the fields from that one on are shown whole or not at all."""
        super().__init__(**kwargs)
        self._count = fields
        self._optional_from = fields if optional_from is None else optional_from

    def compose(self) -> ComposeResult:
        for _ in range(self._count):
            yield TextLine()

    @property
    def plain(self) -> str:
        """The row as one string (what a reader sees)."""
        return "".join(line.shown.plain for line in self.query(TextLine))

    @property
    def shown(self) -> Content:
        return Content("").join(line.shown for line in self.query(TextLine))

    def set(self, values: list[Content | None]) -> bool:
        """Show up to ``fields`` values (None or empty: absent). True if anything changed."""
        changed = False
        first = True
        padded = [*values, *[None] * self._count][: self._count]
        for line, value in zip(self.query(TextLine), padded, strict=False):  # no lines before compose
            if value is None or not value.plain:
                text = Content("")
            else:
                text = value if first else SEP + value
                first = False
            changed |= line.set(text)
        self._fit()
        return changed

    def _fit(self) -> None:
        """Each field as wide as its text, up to the row's edge: the field that crosses it is
        cut there, with "…" (TextLine's ellipsis), and those after it get no room at all."""
        room = self.size.width or None  # not laid out yet: as wide as they are
        for index, line in enumerate(self.query(TextLine)):
            width = line.shown.cell_length if room is None else min(line.shown.cell_length, room)
            if index >= self._optional_from and width < line.shown.cell_length:
                width = 0
            if room is not None:
                room -= width
            if line.styles.width != Scalar.from_number(width):
                line.styles.width = width  # lays the row out again

    def on_resize(self) -> None:
        self._fit()
