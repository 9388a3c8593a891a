"""A one-line notice at the top of every screen while the terminal is smaller than migtui
is laid out for (80x24): what is cut is then not a fault of the figures.

Shown by the screens' breakpoint classes (``-too-narrow`` / ``-too-short``, set by
Textual on every resize, see ``BREAKPOINTS``); it reads the size when it draws.
"""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

MIN_WIDTH, MIN_HEIGHT = 80, 24
HORIZONTAL_BREAKPOINTS = [(0, "-too-narrow"), (MIN_WIDTH, "-narrow"), (110, "-wide")]
VERTICAL_BREAKPOINTS = [(0, "-too-short"), (MIN_HEIGHT, "-short"), (36, "-tall")]


def notice_text(width: int, height: int) -> str:
    return f" {width}x{height}: too small, migtui needs {MIN_WIDTH}x{MIN_HEIGHT} "


class TooSmall(Widget):
    DEFAULT_CSS = """
    TooSmall { display: none; dock: top; height: 1; width: 100%; text-wrap: nowrap; text-overflow: ellipsis; }
    .-too-narrow > TooSmall, .-too-short > TooSmall { display: block; }
    """

    def render(self) -> Content:
        width, height = self.app.size
        return Content.styled(notice_text(width, height), "bold reverse $warning")
