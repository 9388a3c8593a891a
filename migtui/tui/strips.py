"""Content drawn straight to strips, for the widgets that redraw on every poll.

Textual's path from ``render()`` to a line (``Widget.render_line`` -> ``Visual.to_strips``:
wrapping, alignment, selection, link styles, then a cache) costs ~0.55 ms for one
55-cell row of figures, on every change. A left-aligned line that fits needs none of
that: its segments, made from the content's spans as Textual's own
``_FormattedLine.to_strip`` makes them (the same styles, the same offsets for mouse
selection), cost ~0.17 ms (measured in a Textual app at 80 columns, 2026-12-07). Content
that must wrap, be cut or be aligned takes Textual's ``render_strips``, as it would; text
selected with the mouse takes Textual's whole path, which highlights it.

Reads two private attributes of Textual's ``Widget``: ``_get_style`` (the style lookup
Textual passes its visuals; without it every line takes Textual's whole path) and
``_dirty_regions`` (cleared as Textual's own ``render_line`` clears it; without it, nothing to clear).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, cast

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style as RichStyle
from textual.content import Content
from textual.strip import Strip
from textual.visual import RenderOptions, Visual
from textual.widget import Widget

from .sizes import content_size
from .widget_mixin import WidgetMixin

if TYPE_CHECKING:
    from textual.css.styles import RulesMap
    from textual.selection import Selection
    from textual.style import Style


@lru_cache(maxsize=4096)
def _at(style: Style, x: int, y: int) -> RichStyle:
    """The Rich style of a segment at (x, y): a figure's label and padding keep their place
    from poll to poll, and a new one (its meta marshalled) was a third of drawing a line."""
    return style.rich_style_with_offset(x, y)


def content_strips(widget: Widget, content: Content, width: int, selection: Selection | None = None) -> list[Strip]:
    """``content``'s rows as Textual would draw them in ``widget`` at ``width`` (``selection``:
    the widget's text selected with the mouse, highlighted as Textual does)."""
    if width <= 0:
        return []
    style = widget.visual_style
    get_style = getattr(widget, "_get_style", None)
    if get_style is None or selection is not None:
        return Visual.to_strips(widget, content, width, None, style)
    plain = content.plain
    styles = widget.styles
    if styles.text_align not in ("left", "start") or styles.line_pad or "\t" in plain or any(
            cell_len(line) > width for line in plain.split("\n")):
        # Textual passes the widget's styles as the rules too (Visual.to_strips): they answer .get().
        rules = cast("RulesMap", styles)
        return content.render_strips(width, None, style, RenderOptions(get_style, rules))
    # One pass over the whole content (not a Content and a style map per line), cut at each newline.
    strips = []
    segments: list[Segment] = []
    x = y = 0
    for text, text_style in content.render(style, "", parse_style=get_style):
        for n, part in enumerate(text.split("\n")):
            if n:
                strips.append(Strip(segments, x))
                segments, x, y = [], 0, y + 1
            if part:
                segments.append(Segment(part, _at(style + text_style, x, y)))
                x += cell_len(part)
    strips.append(Strip(segments, x))
    return strips


class StripLines(WidgetMixin):
    """A widget whose ``render()`` returns Content, drawn with :func:`content_strips` once
    per content, width, style and selection (Textual's Line API): mix in before Widget."""

    _strips: tuple[Content, int, object, Selection | None, list[Strip]] | None = None
    _selection: Selection | None = None

    def selection_updated(self, selection: Selection | None) -> None:
        self._selection = selection  # (Textual's own render_line reads it from the screen on each draw)
        super().selection_updated(selection)

    def render_line(self, y: int) -> Strip:
        content = self.render()
        assert isinstance(content, Content)
        width = content_size(self).width
        style = self.visual_style
        selection = self._selection
        drawn = self._strips
        if (drawn is None or drawn[0] is not content or drawn[1] != width or drawn[2] != style
                or drawn[3] != selection):
            drawn = self._strips = (content, width, style, selection, content_strips(self, content, width, selection))
        dirty = getattr(self, "_dirty_regions", None)
        if dirty is not None:
            dirty.clear()  # what Textual's own render_line would clear (its cache is unused)
        strips = drawn[4]
        return strips[y] if y < len(strips) else Strip.blank(width, style.rich_style)
