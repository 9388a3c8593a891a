"""The rate chart skips a poll's drawing only when its bars would come out the same."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.content import Content

from migtui.tui.widgets.rate_chart import ChartData, RateChart


class _App(App[None]):
    def compose(self) -> ComposeResult:
        yield RateChart()


# (width, the history's capacity, polls): a history shorter than the chart's window (60 cells:
# 3 s columns, 162 s), and one longer (80 cells: 222 s; the dashboard keeps 300 samples).
@pytest.mark.parametrize(("width", "capacity", "polls"), [(60, 150, 200), (80, 250, 340)])
async def test_the_bars_skipped_on_a_poll_are_the_bars_it_would_draw(width: int, capacity: int, polls: int) -> None:
    app = _App()
    async with app.run_test(size=(width, 10)) as pilot:
        await pilot.pause()
        chart = app.query_one(RateChart)
        samples: list[tuple[float, float | None, float | None]] = []
        skipped = drawn = 0
        draw = chart._draw
        # A poll a second (the history outgrows the window's columns), its sample late: the clock
        # moves on without it first, then it lands in a column already drawn.
        for second in range(polls):
            for now, arrived in ((second + 2.1, False), (second + 2.2, True)):
                if arrived:
                    samples.append((float(second), 1e6 * (1 + second % 7), 2e6 if second % 5 else None))
                data = ChartData(tuple(samples[-capacity:]), now=now, interval=1.0)
                before = chart.render()
                if chart.set_data(data):
                    drawn += 1
                elif chart.render() is before:
                    skipped += 1
                assert chart.render().is_same(draw(chart.size.width)), now  # what a drawing now gives
        ended = ChartData(tuple(samples[-capacity:]), now=float(polls), interval=1.0, partial=True)
        chart.set_data(ended)  # the migration over: the bucket that was filling is drawn too
        assert chart.render().is_same(chart._draw(chart.size.width))
        assert skipped and drawn, (skipped, drawn)


async def test_a_full_history_is_drawn_again_once_a_column_not_at_every_poll() -> None:
    """The dashboard keeps 300 samples, more than the chart's window (222 s at 80 cells): once
    it is full a sample leaves at every poll, older than any column drawn."""
    app = _App()
    async with app.run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        chart = app.query_one(RateChart)
        drawings = 0
        draw = chart._draw

        def counted(width: int) -> Content:
            nonlocal drawings
            drawings += 1
            return draw(width)

        chart._draw = counted  # type: ignore[method-assign]  # a spy: counts, draws as before
        samples = [(float(t), 1e6 * (1 + t % 7), 2e6) for t in range(400)]  # a poll a second, on time
        for now in range(300, 400):
            chart.set_data(ChartData(tuple(samples[now - 300:now + 1]), now=now + 0.05, interval=1.0))
            assert chart.render().is_same(draw(chart.size.width)), now
        assert chart.window < 300
        assert drawings <= 100 / chart.step + 1, (drawings, chart.step)
