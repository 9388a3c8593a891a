"""The base of migtui's widget mixins: Widget to the type checker, a plain class at run time.

Textual follows a widget class's *first* DOMNode base for its CSS type names, DEFAULT_CSS
and component classes (``DOMNode._css_bases``), so a Widget-derived mixin listed first
would hide the real base's: a ``Row(KeptLines, Horizontal)`` would stop being laid out as a
Horizontal, and an OptionList would lose its component classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.widget import Widget

    WidgetMixin = Widget
else:
    WidgetMixin = object
