"""RAM progress: ``RAM ██████████░░░░░░`` (the percentage is a widget of its own).

Drawn by hand rather than with textual's ProgressBar, whose ETA timer repaints
every second and whose filled and empty parts share one glyph (invisible under
NO_COLOR). Here full and empty cells differ in shape, and the widget repaints only
when a cell or the percentage changes.
"""

from __future__ import annotations

from typing import Any

from textual.content import Content

from ..repaint import DiffWidget

LABEL = "RAM "


class RamBar(DiffWidget):
    DEFAULT_CSS = """
    RamBar { height: 1; width: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._progress: float | None = None

    @property
    def progress(self) -> float | None:
        return self._progress

    def set(self, progress: float | None) -> bool:
        """Show ``progress`` (0..1, None = unknown); True if the screen changed."""
        self._progress = progress
        return self.redraw()

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
