"""A line (or a few) of text that repaints only the cells that changed."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widget import Widget

from ..kept_lines import KeptLines
from ..repaint import changed_regions
from ..sizes import content_size
from ..strips import StripLines


class TextLine(KeptLines, StripLines, Widget):
    """Polls hand it the same text every second; only a real change costs a repaint,
    and a changed number costs only its own cells."""

    DEFAULT_CSS = """
    TextLine { height: auto; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, content: Content | str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown = content if isinstance(content, Content) else Content(content)
        self._wrapped = (0, 0)  # (width, rows) of what is shown, wrapped: measured once, not at each change

    @property
    def shown(self) -> Content:
        return self._shown

    def render(self) -> Content:
        return self._shown

    def set(self, content: Content | str, *, relayout: bool = False) -> bool:
        """Show ``content``; returns True if the screen had to change.

        Lines do not wrap here, so the height only changes with the number of lines;
        a subclass that wraps passes ``relayout=True``: its height is then measured at the
        current width, and a layout (the costliest repaint: every widget placed again) is
        asked for only when the number of wrapped rows changed.
        """
        new = content if isinstance(content, Content) else Content(content)
        old = self._shown
        if new.is_same(old):
            return False
        self._shown = new
        wrapped, self._wrapped = self._wrapped, (0, 0)  # old's; new's is measured below if asked
        width = content_size(self).width
        if new.plain.count("\n") != old.plain.count("\n") or (
                relayout and self._rows_changed(old, wrapped, new, width)):
            self.refresh(layout=True)
            return True
        if relayout:
            self.refresh()  # the same rows: repaint them, nothing moves
            return True
        regions = changed_regions(old, new, width)
        if regions is None or not width:
            self.refresh()
        elif regions:
            self.refresh(*regions)
        return True

    def _rows_changed(self, old: Content, wrapped: tuple[int, int], new: Content, width: int) -> bool:
        """Whether ``new`` takes another number of rows than ``old`` did (``wrapped``: old's
        (width, rows) when last measured): a layout is due."""
        return not width or _rows(old, wrapped, width) != self._measure(new, width)

    def _measure(self, new: Content, width: int) -> int:
        rows = len(new.wrap(width))
        self._wrapped = (width, rows)
        return rows


def _rows(old: Content, wrapped: tuple[int, int], width: int) -> int:
    """The rows ``old`` took at ``width`` (``wrapped``: its (width, rows) when last measured)."""
    measured_at, rows = wrapped
    return rows if measured_at == width else len(old.wrap(width))
