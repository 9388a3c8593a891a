"""The monitor list's filter (``/``), a line over the flash line: ``/ name`` as less and k9s
show it; shown while it is typed and while it applies."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Static


class FilterLine(Horizontal):
    DEFAULT_CSS = """
    FilterLine { height: 1; display: none; background: $boost; }
    FilterLine.-shown { display: block; }
    FilterLine > Static { width: 2; padding: 0 0 0 1; color: $accent; text-style: bold; }
    FilterLine > Input, FilterLine > Input:focus { height: 1; border: none; padding: 0; width: 1fr;
                                                  background: $boost; }
    """

    def compose(self) -> ComposeResult:
        yield Static("/")
        filter_ = Input(placeholder="a part of a monitor's name; enter keeps it, escape clears it", id="filter")
        filter_.cursor_blink = False  # a steady cursor: a blinking one repaints twice a second
        yield filter_
