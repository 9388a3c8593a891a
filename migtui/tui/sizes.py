"""A widget's content size, without Textual's walk to its screen.

Textual's ``Widget.size`` asks the screen's compositor where the widget is on every read
(``region``: up the DOM to the screen, then a lookup in its map). The panels read it on every
batch of changes and every line they draw: ~5 % of a watching view's CPU (py-spy of the real
view during a lab migration, docs/benchmarks.md, 2026-12-07). The compositor sets a widget's
outer size as it lays it out (``outer_size``, the same ``region.size``); less the padding and
border it is the content size ``Widget.size`` answers. A hidden widget keeps its last size
here where Textual says 0: drawing it then is wasted, not wrong.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.widget import Widget


def content_size(widget: Widget) -> Size:
    size, gutter = widget.outer_size, widget.styles.gutter
    return Size(max(0, size.width - gutter.width), max(0, size.height - gutter.height))
