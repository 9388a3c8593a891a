"""The pre-switchover banner at the top of the dashboard: which guests are stopped, for how long.

Mounted in the dashboard's ``#banners`` (always visible at 80x24). One line per
paused source, ticking once a second (only while something is paused; only the
changed cells repaint), then notes that wrap: why --auto-resume held back, that
--read-only will not act. Hidden when there is nothing to say.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from .text_line import TextLine

BannerSource = Callable[[], tuple[list[Content], list[Content]]]  # (ticking lines, notes)
TICK_S = 1.0


class PauseBanner(Vertical):
    DEFAULT_CSS = """
    PauseBanner { height: auto; }
    PauseBanner.-empty { display: none; }
    PauseBanner > #pause-notes { text-wrap: wrap; text-overflow: fold; }
    PauseBanner > .-empty { display: none; }
    """

    def __init__(self, source: BannerSource, **kwargs) -> None:
        super().__init__(classes="-empty", **kwargs)
        self._source = source
        self._timer = None

    def compose(self) -> ComposeResult:
        yield TextLine(id="pause-lines", classes="-empty")
        yield TextLine(id="pause-notes", classes="-empty")

    def on_mount(self) -> None:
        self._timer = self.set_interval(TICK_S, self.update, pause=True)
        self.update()

    @property
    def shown(self) -> str:
        return "\n".join(line.shown.plain for line in self.query(TextLine) if line.shown.plain)

    def update(self) -> None:
        """Re-read the lines; the clock ticks only while a guest is paused."""
        widgets = {w.id: w for w in self.query_children(TextLine)}
        if len(widgets) < 2:
            return  # not composed yet: on_mount calls again
        lines, notes = self._source()
        for widget_id, content in (("pause-lines", lines), ("pause-notes", notes)):
            widget = widgets[widget_id]
            widget.set_class(not content, "-empty")
            widget.set(Content("\n").join(content), relayout=widget_id == "pause-notes")
        self.set_class(not (lines or notes), "-empty")
        if self._timer is not None:
            if lines:
                self._timer.resume()
            else:
                self._timer.pause()
