"""The figure lines' own drawing (``tui/strips.py``) gives what Textual's own would, segment for segment.

Drawn in a real Textual app at 80 columns, each content is rendered both ways: the widget's
fast path (``content_strips``) and Textual's general one (``Visual.to_strips``, what the
widget would do without it). Same text, same styles (colours, bold, the offsets Textual's
mouse selection reads), same cell lengths; empty segments aside (they draw nothing).
"""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.content import Content
from textual.geometry import Offset
from textual.selection import Selection
from textual.strip import Strip
from textual.visual import Visual

from migtui.tui.strips import content_strips
from migtui.tui.widgets.advice_panel import WrappedLine
from migtui.tui.widgets.field_row import FieldRow
from migtui.tui.widgets.text_line import TextLine

CONTENTS = [
    Content(""),
    Content("pass 8"),
    Content.assemble((" active ", "bold $success"), " · ", ("total ", "$text-muted"), ("29.3 s", "bold")),
    Content.from_markup("left [b]12.4[/] of 128.5 MiB · [$warning]stuck[/]"),
    Content("\n").join([Content.styled("dirty ", "$text-muted") + Content.styled("▅▅▅ ", "$warning"),
                        Content(""), Content.styled("sent  ", "$text-muted") + Content.styled("▆▆▆", "$success")]),
    Content.styled("a span that runs\nacross a newline", "italic $error"),
    Content("x" * 120),  # wider than the widget: Textual's own path (cut or wrapped)
]


def _shape(strips: list[Strip]) -> list[tuple[int, list[tuple[str, Any]]]]:
    return [(strip.cell_length, [(s.text, s.style) for s in strip if s.text]) for strip in strips]


class _App(App[None]):
    def compose(self) -> ComposeResult:
        yield FieldRow(4, id="row")
        yield TextLine(id="line")
        yield WrappedLine(id="wrapped")


async def test_content_strips_draw_what_textual_draws() -> None:
    app = _App()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for widget in (app.query_one("#row"), app.query_one("#line"), app.query_one("#wrapped")):
            width = widget.size.width
            assert width
            for content in CONTENTS:
                textual = Visual.to_strips(widget, content, width, None, widget.visual_style)
                ours = content_strips(widget, content, width)
                assert _shape(ours) == _shape(textual), (type(widget).__name__, content.plain)


async def test_text_selected_with_the_mouse_is_highlighted_as_textual_does() -> None:
    """A selection changes no content: the drawn lines follow it, and its highlight is Textual's."""
    app = _App()
    async with app.run_test(size=(80, 24)) as pilot:
        line = app.query_one("#line", TextLine)
        line.set(CONTENTS[2])
        await pilot.pause()
        plain = _shape([line.render_line(0)])
        app.screen.selections = {line: Selection(Offset(0, 0), Offset(5, 0))}
        await pilot.pause()
        selected = _shape([line.render_line(0)])
        textual = _shape(Visual.to_strips(line, CONTENTS[2], line.size.width, None, line.visual_style)[:1])
        assert selected == textual and selected != plain, (selected, plain)
        app.screen.selections = {}
        await pilot.pause()
        assert _shape([line.render_line(0)]) == plain
