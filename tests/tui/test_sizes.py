"""``content_size`` (``tui/sizes.py``) answers what Textual's ``Widget.size`` does, for every
widget laid out: with padding, a border, docked, in containers, and after a resize."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Footer, Static

from migtui.tui.sizes import content_size
from migtui.tui.widgets.event_log import EventLog
from migtui.tui.widgets.field_row import FieldRow
from migtui.tui.widgets.rate_chart import RateChart


class _App(App[None]):
    CSS = """
    #padded { padding: 1 2; }
    #bordered { border: round $accent; padding: 0 1; }
    #side { width: 24; border-right: solid $primary; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="side"):
                yield Static("a list", id="padded")
            with Vertical():
                yield FieldRow(3, id="row")
                yield RateChart(id="bordered")
                yield EventLog()
        yield Footer()


async def test_content_size_is_textuals_size_for_every_widget() -> None:
    app = _App()
    async with app.run_test(size=(80, 24)) as pilot:
        for size in ((80, 24), (100, 30), (60, 20)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            widgets = [w for w in app.screen.walk_children() if isinstance(w, Widget)]
            assert len(widgets) > 6
            for widget in widgets:
                assert content_size(widget) == widget.size, (size, widget)
