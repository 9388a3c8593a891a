"""QMP event log: QEMU's timestamp, the event name, a short rendering of its data.

Bounded; follows the newest line unless the reader scrolled back (pgup / wheel). An
event wider than the log goes on, indented, on the next rows: each is read whole.
QMP sends events only to those connected at the time and never again, so a log that
is empty says so rather than look broken (a dashboard started mid-migration has not
seen its start). What was received stays, whatever happens to the connection.
Drawn line by line rather than with RichLog, whose growing virtual size repaints the
whole log for every line: here a line added below the last one costs that line, and
only a full, following log has to move (one repaint per burst of events).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from ...model.events import QmpEvent
from ..kept_lines import KeptLines
from ..sizes import content_size

MAX_LINES = 1000
DATA_WIDTH = 400  # a sane bound: an event's data is read whole, on as many rows as it takes
INDENT = len("00:00:00.000 ")  # continuation rows start under the event's name
EMPTY = ("no events since migtui connected", "(QEMU does not send earlier ones again)")
NEVER_CONNECTED = ("no events: migtui has not connected to this monitor yet",
                   "(QEMU sends its events only to a connected client)")


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def short_data(data: Mapping[str, Any], width: int = DATA_WIDTH) -> str:
    """``status=active`` / ``status=ready id=mirror-data0``: what changed, then whose."""
    first = ("status", "id", "device", "node-name")
    keys = sorted(data, key=lambda k: (first.index(k) if k in first else len(first), k))
    text = " ".join(f"{k}={_value(data[k])}" for k in keys)
    return text if len(text) <= width else text[: width - 1] + "…"


def event_time(ev: QmpEvent, tz: tzinfo | None) -> str:
    if ev.timestamp is None:
        return "--:--:--.---"
    return datetime.fromtimestamp(ev.timestamp, tz).strftime("%H:%M:%S.%f")[:-3]


def event_line(ev: QmpEvent, monitor: str | None, tz: tzinfo | None) -> Text:
    line = Text(event_time(ev, tz), style="dim")
    if monitor is not None:
        line.append(f" {monitor}", style="italic")
    line.append(f" {ev.name}", style="bold")
    if ev.data:
        line.append(" " + short_data(ev.data))
    return line


def reconnect_line(name: str, monitor: str | None) -> Text:
    """The mark between the events of one connection to a monitor and the next one's: a
    new connection may be another QEMU at the same socket (the one before may be dead)."""
    line = Text("── ", style="bold")
    if monitor is not None:
        line.append(f"{monitor} ", style="italic")
    line.append(f"reconnected: the events above are from {name}'s connection before (maybe another QEMU) ──",
                style="bold")
    return line


class EventLog(KeptLines, Widget, can_focus=False):
    DEFAULT_CSS = """
    EventLog { height: 1fr; min-height: 3; }
    """

    def __init__(self, *, tz: tzinfo | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tz = tz
        self._lines: deque[Text] = deque(maxlen=MAX_LINES)
        # The screen rows of the lines at this width: an event too long for one row goes on
        # under its text (never cut: its id or device is often what comes last).
        self._rows: list[Strip] = []
        self._back = 0  # rows scrolled back from the newest (0: following)
        self._width = 0
        self._drawing: tuple[Size, Style] | None = None  # while its lines are drawn
        self._in_drawing = False
        self.empty: tuple[str, ...] = EMPTY  # what an empty log says (NEVER_CONNECTED for a monitor never reached)

    # ------------------------------------------------------------------ content

    @property
    def texts(self) -> list[str]:
        """Every line as plain text, oldest first."""
        return [line.plain for line in self._lines]

    @property
    def following(self) -> bool:
        return self._back == 0

    def add_lines(self, lines: list[Text]) -> None:
        if not lines:
            return
        if not self._width:  # not laid out yet: its first size wraps them all
            self._lines.extend(lines)
            return
        height = self.size.height
        before = len(self._rows)
        if len(self._lines) + len(lines) > MAX_LINES:  # the oldest go: their rows with them
            self._lines.extend(lines)
            self._rows = self._wrap_all()
            self._back = min(self._back, max(0, len(self._rows) - height))
            self.refresh()
            return
        self._lines.extend(lines)
        new = [row for line in lines for row in self._wrap(line)]
        self._rows += new
        if not self.following:
            # Keep the reader's place: the view stays on the same rows.
            self._back = min(self._back + len(new), max(0, len(self._rows) - height))
            return
        if before + len(new) <= height:
            self.refresh(Region(0, before, self.size.width, len(new)))  # only the new rows
        else:
            self.refresh()

    def replace(self, events: Iterable[tuple[QmpEvent | str, str | None]]) -> None:
        """Show these events instead (a new monitor selected, or all/one toggled); a name
        instead of an event is the mark of that monitor's reconnection."""
        self._lines.clear()
        self._lines.extend(event_line(ev, monitor, self.tz) if isinstance(ev, QmpEvent)
                           else reconnect_line(ev, monitor) for ev, monitor in events)
        self._rows = self._wrap_all()
        self._back = 0
        self.refresh()

    # ------------------------------------------------------------------ scrolling

    def scroll_lines(self, delta: int) -> None:
        """Positive: towards older rows. Clamped; back to following at the bottom."""
        top = max(0, len(self._rows) - self.size.height)
        back = min(max(0, self._back + delta), top)
        if back != self._back:
            self._back = back
            self.refresh()

    def page(self, direction: int) -> None:
        """direction -1: a page back in time, +1: a page forward."""
        self.scroll_lines(-direction * max(1, self.size.height - 1))

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.scroll_lines(3)
        event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.scroll_lines(-3)
        event.stop()

    # ------------------------------------------------------------------ drawing

    def _wrap(self, line: Text) -> list[Strip]:
        """One line's rows: what goes past the width continues on the next row, indented
        under the event's name (under the text after "── " for a reconnection mark)."""
        width = max(1, self._width)
        style = self.rich_style
        console = self.app.console
        indent = INDENT if line.plain[:2] != "──" else 3
        if line.cell_len <= width or width <= indent + 8:
            parts = [line] if line.cell_len <= width else list(line.wrap(console, width, overflow="fold"))
        else:
            head, body = line[:indent], line[indent:]
            wrapped = list(body.wrap(console, width - indent, overflow="fold"))
            parts = [head + wrapped[0], *(Text(" " * indent) + part for part in wrapped[1:])]
        return [Strip(Segment.apply_style(part.render(console), style)).crop_extend(0, width, style)
                for part in parts]

    def _wrap_all(self) -> list[Strip]:
        return [row for line in self._lines for row in self._wrap(line)] if self._width else []

    def on_resize(self) -> None:
        self._width = self.size.width
        self._rows = self._wrap_all()
        self._back = min(self._back, max(0, len(self._rows) - self.size.height))
        self.refresh()

    def set_empty(self, empty: tuple[str, ...]) -> None:
        if empty != self.empty:
            self.empty = empty
            if not self._lines:
                self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        # Its size and style once for all the lines drawn (each is a walk up the DOM), read
        # by the first line drawn: a frame that keeps the log's lines (KeptLines) draws none.
        self._in_drawing = True
        try:
            return super().render_lines(crop)
        finally:
            self._in_drawing = False
            self._drawing = None

    def render_line(self, y: int) -> Strip:
        drawing = self._drawing
        if drawing is None:
            drawing = (content_size(self), self.rich_style)
            if self._in_drawing:
                self._drawing = drawing
        size, style = drawing
        width = size.width
        if width != self._width:
            self.on_resize()
        if not self._lines and y < len(self.empty):
            return Strip([Segment(self.empty[y], style + Style(dim=True))]).crop_extend(0, width, style)
        index = max(0, len(self._rows) - size.height - self._back) + y
        if index >= len(self._rows) or index < 0:
            return Strip.blank(width, style)
        return self._rows[index]
