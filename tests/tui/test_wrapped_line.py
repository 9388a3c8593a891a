"""A wrapped advice line keeps the rows it grew to while it shows one migration."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.content import Content

from migtui.tui.widgets.advice_panel import WrappedLine


def words(rows: int, width: int) -> Content:
    """Text that wraps to ``rows`` rows at ``width`` cells (words of 4 letters and a space)."""
    per_row = width // 5
    return Content(" ".join(["word"] * (per_row * (rows - 1) + 1)))


class _App(App[None]):
    def compose(self) -> ComposeResult:
        yield WrappedLine(id="reason")


async def test_its_rows_only_grow_until_released_or_resized() -> None:
    app = _App()
    async with app.run_test(size=(40, 20)) as pilot:
        line = app.query_one(WrappedLine)
        width = line.size.width

        async def rows_after(content: Content) -> int:
            line.set(content)
            await pilot.pause()
            return line.size.height

        assert await rows_after(words(3, width)) == 3
        assert await rows_after(words(4, width)) == 4
        assert await rows_after(words(2, width)) == 4  # held: the panels below do not jump
        line.release()  # another migration (or monitor) shown
        await pilot.pause()
        assert line.size.height == 2
        assert await rows_after(words(4, width)) == 4
        await pilot.resize_terminal(60, 20)  # rows held at 40 columns are too many at 60
        await pilot.pause()
        assert line.size.height == len(line.shown.wrap(line.size.width)) < 4
