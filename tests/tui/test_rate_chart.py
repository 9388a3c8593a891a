"""The rate chart skips a poll's drawing only when its bars would come out the same."""

from __future__ import annotations

from textual.app import App, ComposeResult

from migtui.tui.widgets.rate_chart import ChartData, RateChart


class _App(App[None]):
    def compose(self) -> ComposeResult:
        yield RateChart()


async def test_the_bars_skipped_on_a_poll_are_the_bars_it_would_draw() -> None:
    app = _App()
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        chart = app.query_one(RateChart)
        samples: list[tuple[float, float | None, float | None]] = []
        skipped = drawn = 0
        # A poll a second (the history outgrows the window's columns), its sample late: the clock
        # moves on without it first, then it lands in a column already drawn.
        for second in range(200):
            for now, arrived in ((second + 2.1, False), (second + 2.2, True)):
                if arrived:
                    samples.append((float(second), 1e6 * (1 + second % 7), 2e6 if second % 5 else None))
                data = ChartData(tuple(samples[-150:]), now=now, interval=1.0)
                before = chart.render()
                if chart.set_data(data):
                    drawn += 1
                elif chart.render() is before:
                    skipped += 1
                assert chart.render().is_same(chart._draw(chart.size.width)), now  # what a drawing now gives
        ended = ChartData(tuple(samples[-150:]), now=200.0, interval=1.0, partial=True)
        chart.set_data(ended)  # the migration over: the bucket that was filling is drawn too
        assert chart.render().is_same(chart._draw(chart.size.width))
        assert skipped and drawn, (skipped, drawn)
