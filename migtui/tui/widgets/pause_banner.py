"""The pre-switchover banner at the top of the dashboard: which guests are stopped, for how long.

Mounted in the dashboard's ``#banners`` (always visible at 80x24). One line per
paused source, then notes that wrap: why --auto-resume held back, that --read-only
will not act. Hidden when there is nothing to say. The banner has no timer of its
own: the app's pause watch ticks it together with the open dialog, from one clock
reading, so both show the same tenth of a second (only the changed cells repaint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from ..kept_lines import KeptLines
from .text_line import TextLine

# (now or None for "read the clock") -> (ticking lines, notes)
BannerSource = Callable[[float | None], tuple[list[Content], list[Content]]]


class PauseBanner(KeptLines, Vertical):
    DEFAULT_CSS = """
    PauseBanner { height: auto; }
    PauseBanner.-empty { display: none; }
    PauseBanner > #pause-notes { text-wrap: wrap; text-overflow: fold; }
    PauseBanner > .-empty { display: none; }
    """

    def __init__(self, source: BannerSource, **kwargs: Any) -> None:
        super().__init__(classes="-empty", **kwargs)
        self._source = source

    def compose(self) -> ComposeResult:
        yield TextLine(id="pause-lines", classes="-empty")
        yield TextLine(id="pause-notes", classes="-empty")

    def on_mount(self) -> None:
        self.update()

    @property
    def shown(self) -> str:
        return "\n".join(line.shown.plain for line in self.query(TextLine) if line.shown.plain)

    def update(self, now: float | None = None) -> None:
        """Re-read the lines (as of ``now``)."""
        widgets = {w.id: w for w in self.query_children(TextLine)}
        if len(widgets) < 2:
            return  # not composed yet: on_mount calls again
        lines, notes = self._source(now)
        for widget_id, content in (("pause-lines", lines), ("pause-notes", notes)):
            widget = widgets[widget_id]
            widget.set_class(not content, "-empty")
            widget.set(Content("\n").join(content), relayout=widget_id == "pause-notes")
        self.set_class(not (lines or notes), "-empty")
