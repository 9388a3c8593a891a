"""Repaint only the cells that changed.

Textual writes every cell of a refreshed region to the terminal. A poll that moves
"total 12 s" to "total 13 s" should cost those few cells, not the whole line, so
widgets here diff their old and new text and refresh just the changed spans: the
byte budget over SSH (<= 2 KB/s at 100x30) depends on it.

Cells are taken as characters: everything migtui draws is one cell wide.
"""

from __future__ import annotations

from typing import Any

from textual.content import Content, Span
from textual.geometry import Region
from textual.widget import Widget

from .kept_lines import KeptLines
from .sizes import content_size
from .strips import StripLines


def _cell_styles(content: Content) -> list[list[tuple[str, ...]]]:
    """Per line, per cell: the styles that apply (in span order)."""
    lines = content.plain.split("\n")
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    out: list[list[tuple[str, ...]]] = [[()] * len(line) for line in lines]
    for span in content.spans:
        assert isinstance(span, Span)
        style = str(span.style)
        for i, start in enumerate(starts):
            lo, hi = max(span.start, start), min(span.end, start + len(lines[i]))
            cells = out[i]
            for x in range(lo - start, hi - start):
                cells[x] = (*cells[x], style)
    return out


def _text_diff(old: str, new: str) -> tuple[int, int] | None:
    """[start, end) of the cells to rewrite, or None if the text is the same."""
    if old == new:
        return None
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    if len(old) != len(new):
        return start, max(len(old), len(new))  # everything after shifts
    end = len(new)
    while end > start and old[end - 1] == new[end - 1]:
        end -= 1
    return start, end


def changed_regions(old: Content, new: Content, width: int) -> list[Region] | None:
    """Regions (one row each) to refresh for ``old`` -> ``new``; None means "all"."""
    old_lines, new_lines = old.plain.split("\n"), new.plain.split("\n")
    if len(old_lines) != len(new_lines):
        return None
    # The same spans (places and styles): every cell keeps its style, the text alone decides.
    # A ticking figure's row, padded to keep its place, is that case on nearly every poll.
    styles = None if old.spans == new.spans else (_cell_styles(old), _cell_styles(new))
    regions: list[Region] = []
    for y, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)):
        diff = _text_diff(a, b)
        if styles is None:
            if diff is None:
                continue
        else:
            sa, sb = styles[0][y], styles[1][y]
            if diff is None:
                if sa == sb:
                    continue
                diff = (0, width)  # same text, new colours
            else:
                start, end = diff
                # Cells outside the rewritten ones must keep their style.
                if sa[:start] != sb[:start] or (len(a) == len(b) and sa[end:] != sb[end:]):
                    diff = (0, width)
        start, end = diff
        end = min(max(end, start + 1), width)
        if start < width:
            regions.append(Region(start, y, end - start, 1))
    return regions


class DiffWidget(KeptLines, StripLines, Widget):
    """A widget drawn by ``_draw(width) -> Content`` that repaints only changed cells.

    Subclasses store their data and call ``redraw()``; it returns True if the screen
    changed.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._drawn: Content | None = None

    def _draw(self, width: int) -> Content:
        raise NotImplementedError

    def redraw(self) -> bool:
        width = content_size(self).width
        if not width:
            return False
        drawn = self._draw(width)
        old, self._drawn = self._drawn, drawn
        if old is not None and drawn.is_same(old):
            return False
        regions = None if old is None else changed_regions(old, drawn, width)
        if regions is None:
            self.refresh()
        elif regions:
            self.refresh(*regions)
        return True

    def on_resize(self) -> None:
        self._drawn = None
        self.refresh()

    def render(self) -> Content:
        if self._drawn is None:
            self._drawn = self._draw(content_size(self).width)
        return self._drawn
