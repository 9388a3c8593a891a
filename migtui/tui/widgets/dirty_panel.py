"""Dirty rate vs transfer rate: a verdict in the title and the history chart.

During a migration both figures come from query-migrate (dirty-pages-rate x
page-size, and mbps). Without one, ``d`` runs calc-dirty-rate; the title shows
"measuring" and then the result, and the chart gets the measured point.
"""

from __future__ import annotations

from typing import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content

from ... import format as fmt
from ...transport import ConnState
from ...workflow.session import MonitorSession
from .rate_chart import VALUE_WIDTH, ChartData, RateChart, value_lines
from .text_line import TextLine


# The source guest does not run in these: its last rates are history.
GUEST_STOPPED = frozenset({"pre-switchover", "device", "postcopy-active", "postcopy-paused",
                           "postcopy-recover-setup", "postcopy-recover"})
CLOSE = 0.8  # dirty at 80% of the send rate or more: warn
VERDICT_SAMPLES = 5  # judge on the last few polls, not one: QEMU's figures jitter
HYSTERESIS = 0.05  # and stay put while the ratio hovers at a boundary

_TREND = {
    "over": ("dirty > sent: not converging", "bold $error"),
    # QEMU counts a page once per pass, so a guest that re-dirties a small range
    # saturates near the send rate: close is already bad news.
    "close": ("dirty ≈ sent: may not converge", "bold $warning"),
    "fine": ("sent > dirty: converging", "$success"),
}


def recent_rates(session: MonitorSession) -> tuple[float | None, float | None]:
    """Mean dirty and send rates over the last few samples."""
    samples = list(session.state.history)[-VERDICT_SAMPLES:]
    dirty = [s.dirty_rate_bytes_per_s for s in samples if s.dirty_rate_bytes_per_s is not None]
    sent = [s.throughput_bytes_per_s for s in samples if s.throughput_bytes_per_s is not None]
    return (sum(dirty) / len(dirty) if dirty else None, sum(sent) / len(sent) if sent else None)


def trend(ratio: float, previous: str | None = None) -> str:
    """"over", "close" or "fine" for dirty/sent; sticks to ``previous`` near a boundary."""
    level = "over" if ratio > 1 else "close" if ratio >= CLOSE else "fine"
    if previous is None or previous == level or previous not in _TREND:
        return level
    boundary = CLOSE if {previous, level} == {"fine", "close"} else 1.0
    return previous if abs(ratio - boundary) < HYSTERESIS else level


def verdict(session: MonitorSession, previous: str | None = None) -> tuple[str | None, Content]:
    """One phrase an operator can act on, and the trend level it is based on (if any)."""
    state = session.state
    info = state.migration
    if session.status.state is not ConnState.CONNECTED:
        return None, Content.styled("not connected: the last figures seen", "$text-muted")
    if state.migration_status in GUEST_STOPPED:
        return None, Content.styled("guest stopped: nothing new gets dirty", "$text-muted")
    if info.is_running:
        if info.ram is None and state.run_state is not None and state.run_state.incoming:
            return None, Content.styled("incoming: the source has the rates", "$text-muted")
        if (info.pass_number or 0) <= 1:
            # QEMU reports 0 until its second bitmap sync: unknown, not zero.
            return None, Content.styled("first pass: dirty rate known after it", "$text-muted")
        dirty, sent = recent_rates(session)
        if dirty is None or not sent:
            return None, Content.styled("waiting for figures", "$text-muted")
        level = trend(dirty / sent, previous)
        return level, Content.styled(*_TREND[level])
    if session.measuring:
        return None, Content.styled("measuring…", "bold $warning")
    can_measure = session.live and not session.read_only
    hint = "; d measures" if can_measure else ""
    if info.is_finished:
        return None, Content.styled(f"{info.status}{hint}", "$text-muted")
    measured = state.dirty_rate.bytes_per_s if state.dirty_rate else None
    if measured is not None:
        text = f"measured {fmt.format_rate(measured)}"
        limit = session.max_bandwidth
        if limit:
            over = measured > limit
            text += f" {'>' if over else '<'} max-bandwidth"
            return None, Content.styled(text, "bold $error" if over else "$success")
        return None, Content(text)
    return None, Content.styled(f"no migration{hint}", "$text-muted")


def chart_data(session: MonitorSession, now: float) -> ChartData:
    state = session.state
    info = state.migration
    samples = tuple(
        (s.time, s.dirty_rate_bytes_per_s, s.throughput_bytes_per_s) for s in state.history
    )
    if info.is_running:
        dirty_now, sent_now = info.dirty_rate_bytes_per_s, info.throughput_bytes_per_s
        if (info.pass_number or 0) <= 1:
            dirty_now = None  # not measured before the second pass
    else:
        dirty_now = state.dirty_rate.bytes_per_s if state.dirty_rate else None
        sent_now = None
    return ChartData(samples, now, session.interval, dirty_now, sent_now, partial=not info.is_running)


class DirtyPanel(Vertical):
    DEFAULT_CSS = f"""
    DirtyPanel {{ height: auto; }}
    DirtyPanel > Horizontal {{ height: auto; }}
    DirtyPanel #chart-values {{ width: {VALUE_WIDTH}; }}
    DirtyPanel.-stale RateChart, DirtyPanel.-stale #chart-values {{ text-opacity: 55%; }}
    """

    def __init__(self, clock: Callable[[], float], *, coarse: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self._clock = clock
        self._coarse = coarse
        self._title: str | None = None
        self._session: MonitorSession | None = None
        self._trend: dict[str, str | None] = {}  # session name -> last trend level

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield RateChart(coarse=self._coarse)
            yield TextLine(id="chart-values")

    def on_resize(self) -> None:
        if self._session is not None:
            self.show(self._session)

    def show(self, session: MonitorSession) -> None:
        self._session = session
        self.set_class(session.status.state is not ConnState.CONNECTED, "-stale")
        data = chart_data(session, self._clock())
        chart = self.query_one(RateChart)
        chart.set_data(data)
        self.query_one("#chart-values", TextLine).set(
            value_lines(data, chart.rows_per_series, chart.window)
        )
        level, phrase = verdict(session, self._trend.get(session.name))
        self._trend[session.name] = level
        title = Content.assemble(("Dirty vs sent", "bold"), " ", phrase)
        if title.markup != self._title:
            self._title = title.markup
            self.border_title = title
