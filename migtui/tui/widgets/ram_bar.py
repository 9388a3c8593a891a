"""RAM progress: ``RAM ██████████░░░░░░`` (the percentage is a widget of its own).

Drawn by hand rather than with textual's ProgressBar, whose ETA timer repaints
every second and whose filled and empty parts share one glyph (invisible under
NO_COLOR). Here full and empty cells differ in shape, and the widget repaints only
when a cell or the percentage changes.
"""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from ..repaint import changed_regions

LABEL = "RAM "


class RamBar(Widget):
    DEFAULT_CSS = """
    RamBar { height: 1; width: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._progress: float | None = None
        self._drawn: Content | None = None

    @property
    def progress(self) -> float | None:
        return self._progress

    def set(self, progress: float | None) -> bool:
        """Show ``progress`` (0..1, None = unknown); True if the screen changed."""
        self._progress = progress
        if not self.size.width:
            return False
        drawn = self._draw(self.size.width)
        old, self._drawn = self._drawn, drawn
        if old is not None and drawn.is_same(old):
            return False
        regions = None if old is None else changed_regions(old, drawn, self.size.width)
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
            self._drawn = self._draw(self.size.width)
        return self._drawn

    def _draw(self, width: int) -> Content:
        progress = self._progress
        cells = max(1, width - len(LABEL))
        filled = 0 if progress is None else round(progress * cells)
        style = "$success" if progress == 1 else "$primary"
        return Content.assemble(
            (LABEL, "bold"),
            ("█" * filled, style),
            ("░" * (cells - filled), "$text-disabled"),
        )
