"""Widgets that give the compositor the lines they drew last, while none of them changed.

On each frame Textual's compositor asks every widget whose *container* overlaps the
changed cells for all of its lines (``Compositor._get_renders`` tests the clip, not the
widget): a poll that moves "total 12 s" on the dashboard's second row asks all 22 widgets
of the right-hand column. Each answer walks the widget's ancestors for its background,
its title's styles, its opacity and line filters, even when every line comes from its
cache -- ~60 us a widget, a quarter of a frame, measured in the real view during a lab
migration (``docs/benchmarks.md``, 2026-12-07). A widget with no dirty line, at the same
size and crop, with the same filters and line cache, draws what it drew: its last lines
are returned as they are. Anything that changes a widget's look goes through
``refresh()`` (its own, or its ancestors' with ``children``), which marks its lines
dirty, so the check is exact.

Reads Textual's private ``Widget._styles_cache`` and two attributes of its ``StylesCache``
(``_dirty_lines``, ``_cache``); without any of them (a Textual that renamed them) every
call draws as Textual does.
"""

from __future__ import annotations

from typing import Any

from textual.containers import Horizontal, Vertical
from textual.geometry import Region
from textual.strip import Strip

from .widget_mixin import WidgetMixin


class KeptLines(WidgetMixin):
    """Mix in before a Widget class: ``class Panel(KeptLines, Vertical)``."""

    _kept: tuple[tuple[Any, ...], list[Strip]] | None = None

    def _kept_key(self, crop: Region) -> tuple[Any, ...] | None:
        cache = getattr(self, "_styles_cache", None)
        dirty = getattr(cache, "_dirty_lines", None)
        lines = getattr(cache, "_cache", None)
        if dirty is None or lines is None or dirty:
            return None
        # The filters as StylesCache.render_widget asks for them (a widget may have its own).
        return (crop, self.outer_size, len(lines), self.get_line_filters(), self.hover_style)

    def render_lines(self, crop: Region) -> list[Strip]:
        kept = self._kept
        if kept is not None and kept[0] == self._kept_key(crop):
            return kept[1]
        strips = super().render_lines(crop)
        key = self._kept_key(crop)  # after drawing: its lines are cached, none dirty
        self._kept = (key, strips) if key is not None else None
        return strips


class Column(KeptLines, Vertical):
    """A Vertical that keeps its lines (its CSS type is still Vertical)."""


class Row(KeptLines, Horizontal):
    """A Horizontal that keeps its lines (its CSS type is still Horizontal)."""
