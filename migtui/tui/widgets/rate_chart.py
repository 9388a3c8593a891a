"""Dirty rate vs transfer rate over the last minutes, on one common scale.

Two bar series stacked (dirty above, sent below), each half the widget's height in
rows of eighth blocks, both scaled to the same (1-2-5 rounded) maximum so the taller
one is the faster one. Each column is a time bucket. The bucket starts at 2 s (or the
poll interval) and widens (3, 5, 10 s...) as the history grows, until the chart spans
about three minutes: a young migration is shown in detail, an old one in full. During
a migration only complete buckets are drawn, so the bars repaint once per bucket.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from textual.content import Content

from ... import format as fmt
from ..repaint import DiffWidget
from ..sizes import content_size

ROWS_PER_SERIES = 2  # the default height; a taller widget gets taller bars
WINDOW_SECONDS = 180.0
NICE_STEPS = (1, 2, 3, 5, 10, 15, 20, 30, 60, 120, 300)
# Each new column shifts the whole chart, a full repaint: at most one every 2 s.
MIN_STEP = 2.0
FINE = " ▁▂▃▄▅▆▇█"
# The Linux console font has no eighth blocks: halves only.
COARSE = "  ▄▄▄▄███"

LABEL_WIDTH = 6  # "dirty " / "sent  "
PAUSED = "paused"  # the live figures while the migration waits before switchover
VALUE_WIDTH = 13  # "  118.2 MiB/s", the figures beside the bars

Sample = tuple[float, "float | None", "float | None"]  # (time, dirty B/s, sent B/s)


def column_step(
    interval: float, columns: int, span: float = WINDOW_SECONDS, window: float = WINDOW_SECONDS
) -> float:
    """Seconds per column: the smallest nice step >= interval that shows ``span``
    seconds of history (but never more than ``window``)."""
    columns = max(1, columns)
    need = min(max(span, 0.0), window)
    for step in NICE_STEPS:
        if step >= max(interval, MIN_STEP) and step * columns >= need:
            return float(step)
    return float(max(NICE_STEPS[-1], interval))


def short_window(seconds: float) -> str:
    """``last 36.0 s`` / ``last 1m 12s``: what the chart spans."""
    return f"last {fmt.format_duration(round(seconds))}"


def history_span(samples: Sequence[Sample], now: float) -> float:
    return now - samples[0][0] if samples else 0.0


def bucket(
    samples: Sequence[tuple[float, float | None]],
    now: float,
    step: float,
    columns: int,
    hold: float = 0.0,
) -> list[float | None]:
    """Mean value per column; the last column is the bucket holding ``now``.

    A column with no sample keeps the value before it when that sample is at most
    ``hold`` seconds older than the column (polls do not land in every bucket).
    """
    last = math.floor(now / step)
    first = last - columns + 1
    sums = [0.0] * columns
    counts = [0] * columns
    latest: list[float | None] = [None] * columns  # time of the newest sample per column
    for t, value in samples:
        if value is None:
            continue
        b = math.floor(t / step)
        if first <= b <= last:
            sums[b - first] += value
            counts[b - first] += 1
            latest[b - first] = t
    values = [sums[i] / counts[i] if counts[i] else None for i in range(columns)]
    for i in range(1, columns):
        previous = latest[i - 1]
        if values[i] is None and previous is not None and (first + i) * step - previous <= hold:
            values[i] = values[i - 1]
            latest[i] = previous
    return values


def bar_rows(values: Sequence[float | None], scale: float, rows: int, glyphs: str) -> list[str]:
    """Rows of block glyphs, top row first; a known non-zero value shows at least a sliver."""
    out = [[" "] * len(values) for _ in range(rows)]
    for x, value in enumerate(values):
        if value is None or value <= 0 or scale <= 0:
            continue
        level = max(1, round(value / scale * rows * 8))
        for r in range(rows):  # r = 0 is the bottom row
            fill = min(8, max(0, level - r * 8))
            out[rows - 1 - r][x] = glyphs[fill]
    return ["".join(row) for row in out]


@dataclass(frozen=True)
class ChartData:
    samples: tuple[Sample, ...] = ()
    now: float = 0.0
    interval: float = 1.0
    dirty_now: float | None = None
    sent_now: float | None = None
    # While polls keep coming, the bucket still filling is left out (it would repaint
    # every second); otherwise nothing else will come and it is drawn as it stands.
    partial: bool = False
    paused: bool = False  # paused before switchover: nothing is dirtied or sent


def drawn_columns(data: ChartData, width: int) -> tuple[int, float, float]:
    """(columns, seconds per column, the time the last column holds) of ``data`` drawn
    ``width`` cells wide: while polls keep coming the bucket still filling is left out."""
    columns = max(1, width - LABEL_WIDTH)
    step = column_step(data.interval, columns, history_span(data.samples, data.now))
    return columns, step, data.now if data.partial else data.now - step


def nice_ceiling(value: float) -> float:
    """The next 1-2-5 step at or above ``value``: the scale moves in steps, not jitter."""
    if value <= 0:
        return 0.0
    magnitude: float = 10 ** math.floor(math.log10(value))  # int ** int is typed Any (a negative power)
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def value_lines(data: ChartData, rows_per_series: int, window: float) -> Content:
    """The live figures beside the bars: dirty on the first row, sent on its first row,
    and on the last row how much time the bars span."""
    lines = [""] * (2 * rows_per_series)
    lines[0] = PAUSED if data.paused else fmt.format_rate(data.dirty_now)
    lines[rows_per_series] = PAUSED if data.paused else fmt.format_rate(data.sent_now)
    if data.samples and rows_per_series > 1:
        lines[-1] = short_window(window)
    # Padded by hand, not text-align: cell diffs (repaint.py) assume left-aligned text.
    lines = [line.rjust(VALUE_WIDTH) for line in lines]
    styled = [Content(line) if i in (0, rows_per_series) else Content.styled(line, "$text-muted")
              for i, line in enumerate(lines)]
    return Content("\n").join(styled)


class RateChart(DiffWidget):
    """The bars of :class:`ChartData`; set with :meth:`set_data`.

    During a migration the bucket still filling is left out, so between two column
    shifts nothing here changes: the live figures are a separate widget
    (:func:`value_lines`).
    """

    DEFAULT_CSS = f"""
    RateChart {{ height: {2 * ROWS_PER_SERIES}; width: 1fr; }}
    """

    def __init__(self, *, coarse: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.glyphs = COARSE if coarse else FINE
        self._data = ChartData()
        self.step = MIN_STEP  # seconds per column, as last drawn
        self.columns = 0
        self.scale = 0.0  # bytes/s of a full column, as last drawn
        self._drawn_key: tuple[object, ...] | None = None

    @property
    def window(self) -> float:
        """Seconds the chart spans, as last drawn."""
        return self.step * self.columns

    @property
    def rows_per_series(self) -> int:
        return max(1, content_size(self).height // 2)

    def set_data(self, data: ChartData) -> bool:
        """Store new samples; repaint only if the drawing differs. Returns True if it did."""
        self._data = data
        # During a migration a poll only adds a sample to the bucket still filling, which is
        # not drawn: the bars are drawn again only when what they are made of changed (a
        # bucket completed, the window or the size moved). Bucketing ~200 samples and
        # drawing the bars on every poll was the dashboard's costliest panel.
        key = self._drawing_key(data)
        if key == self._drawn_key and self._drawn is not None:
            return False
        self._drawn_key = key
        return self.redraw()

    def _drawing_key(self, data: ChartData) -> tuple[object, ...]:
        """What the bars depend on: the geometry, the step and the last column drawn, and the
        samples that fall in the drawn columns: the first one's time and their count (samples
        only ever come after the last one, and leave from the front). Not the history's first
        sample: once the history is full one leaves it at every poll, and it is older than
        the drawn columns."""
        size = content_size(self)
        columns, step, done = drawn_columns(data, size.width)
        end = (math.floor(done / step) + 1) * step  # the end of the last column drawn
        start = end - columns * step  # the start of the first
        # Samples come in time order: those in [start, end).
        low = bisect.bisect_left(data.samples, (start,))
        high = bisect.bisect_left(data.samples, (end,))
        first = data.samples[low][0] if low < high else None
        return (size, self.glyphs, step, end, first, high - low, data.partial, data.paused, data.interval)

    def _draw(self, width: int) -> Content:
        data = self._data
        columns, self.step, done = drawn_columns(data, width)
        self.columns = columns
        hold = 1.5 * data.interval
        dirty = bucket([(t, d) for t, d, _ in data.samples], done, self.step, columns, hold)
        sent = bucket([(t, s) for t, _, s in data.samples], done, self.step, columns, hold)
        self.scale = nice_ceiling(max((v for v in (*dirty, *sent) if v is not None), default=0.0))
        lines: list[Content] = []
        for label, values, style in (("dirty", dirty, "$warning"), ("sent", sent, "$success")):
            rows = bar_rows(values, self.scale, self.rows_per_series, self.glyphs)
            for i, row in enumerate(rows):
                lines.append(Content.assemble(
                    (f"{label if i == 0 else '':<{LABEL_WIDTH}}", "$text-muted"), (row, style)
                ))
        return Content("\n").join(lines)
