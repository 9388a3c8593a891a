"""A row of figures, each its own widget, so a changing number repaints only itself.

Textual writes a partial refresh from the start of the widget's line up to the last
changed cell; with one widget per figure a ticking "total 12.7 s" costs a dozen
cells instead of the whole line. Fields are separated by " · ". A figure field only
ever grows (shorter text is padded): a width change moves its neighbours and costs a
layout pass, so "9.9 s" -> "10.0 s" does that once and then never again. A field
whose label (first word) changes, or that is listed in ``fit`` (a status badge),
fits its text instead.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content

from .text_line import TextLine

SEP = Content.styled(" · ", "$text-muted")


class FieldRow(Horizontal):
    DEFAULT_CSS = """
    FieldRow { height: 1; width: 1fr; }
    FieldRow > TextLine { width: auto; height: 1; }
    """

    def __init__(self, fields: int, *, fit: tuple[int, ...] = (), **kwargs) -> None:
        """``fields`` widgets; the indexes in ``fit`` always fit their text."""
        super().__init__(**kwargs)
        self._count = fields
        self._fit = frozenset(fit)
        self._widths = [0] * fields
        self._labels: list[str] = [""] * fields

    def compose(self) -> ComposeResult:
        for _ in range(self._count):
            yield TextLine()

    def reset(self) -> None:
        """Forget the widths learnt so far (another monitor is shown now)."""
        self._widths = [0] * self._count
        self._labels = [""] * self._count

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
        for i, (line, value) in enumerate(zip(self.query(TextLine), padded)):
            if value is None or not value.plain:
                text = Content("")
                grew = self._widths[i] != 0
                self._widths[i] = 0  # an absent field gives its room back
                self._labels[i] = ""
            else:
                text = value if first else SEP + value
                first = False
                label = value.plain.split(" ", 1)[0]
                fit = i in self._fit or label != self._labels[i]
                self._labels[i] = label
                grew = text.cell_length > self._widths[i] or (fit and text.cell_length != self._widths[i])
                self._widths[i] = text.cell_length if fit else max(self._widths[i], text.cell_length)
                text = text.pad_right(self._widths[i] - text.cell_length)
            changed |= line.set(text, relayout=grew)
        return changed
