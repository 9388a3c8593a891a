"""Dirty rate vs transfer rate: the history chart.

The chart shows the rates QEMU reports (dirty-pages-rate x page size, and mbps) poll by
poll; between migrations ``d`` runs calc-dirty-rate and the chart gets the measured point.
Whether the migration converges is not judged here from one rate comparison: the engine's
advisor judges the passes (``model/advisor.py``) and the convergence panel shows its word.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from ...model.vmstate import VmState
from ...view.remote import RemoteSession
from ...workflow.session import MonitorSession
from ..badges import ENGINE_SILENT, POLLS_FAILING
from ..kept_lines import KeptLines, Row
from ..lookup import one
from .migration_panel import is_stale
from .rate_chart import VALUE_WIDTH, ChartData, RateChart, value_lines
from .text_line import TextLine


def title_note(session: MonitorSession) -> Content:
    """What the title adds after "Dirty vs sent": stale figures, or that ``d`` measures."""
    if isinstance(session, RemoteSession) and session.engine_silent:  # the engine's last word
        return Content.styled(f"{ENGINE_SILENT}: the last figures seen", "$text-muted")
    if session.connected and session.poll_error:  # a hung QEMU: what is shown is the last known
        return Content.styled(f"{POLLS_FAILING}: the last figures seen", "$text-muted")
    if not session.connected:  # a libvirt domain that left its host says so, as its header does
        why = "gone" if session.status.word() == "gone" else "not connected"
        return Content.styled(f"{why}: the last figures seen", "$text-muted")
    if session.measuring:
        return Content.styled("measuring…", "bold $warning")
    if isinstance(session, RemoteSession) and session.control("measure").allowed:
        return Content.styled("d measures an estimate", "$text-muted")
    return Content("")


def _pauses(state: VmState) -> list[tuple[float, float]]:
    """(start, end) of each pre-switchover pause the status log shows (end: inf while it lasts)."""
    changes = list(state.status_changes)
    spans = []
    for i, change in enumerate(changes):
        if change.status == "pre-switchover":
            spans.append((change.time, changes[i + 1].time if i + 1 < len(changes) else float("inf")))
    return spans


def chart_data(session: MonitorSession, now: float) -> ChartData:
    """The chart's figures. During a pre-switchover pause the guest is stopped and nothing
    is sent, whatever QEMU's last rates said: the pause reads as "paused", its columns empty."""
    state = session.state
    info = state.migration
    pauses = _pauses(state)
    if pauses:
        samples = tuple(
            (s.time, 0.0, 0.0) if any(a <= s.time < b for a, b in pauses)
            else (s.time, s.dirty_rate_bytes_per_s, s.throughput_bytes_per_s) for s in state.history
        )
    else:  # every poll: the history (~200 samples) without a test per sample
        samples = tuple((s.time, s.dirty_rate_bytes_per_s, s.throughput_bytes_per_s) for s in state.history)
    if state.in_pre_switchover:
        return ChartData(samples, now, session.interval, None, None, partial=False, paused=True)
    if info.is_running:
        dirty_now, sent_now = info.dirty_rate_bytes_per_s, info.throughput_bytes_per_s
        if (info.pass_number or 0) <= 1:
            dirty_now = None  # not measured before the second pass
    else:
        dirty_now = state.dirty_rate.bytes_per_s if state.dirty_rate else None
        sent_now = None
    return ChartData(samples, now, session.interval, dirty_now, sent_now, partial=not info.is_running)


class DirtyPanel(KeptLines, Vertical):
    DEFAULT_CSS = f"""
    DirtyPanel {{ height: auto; }}
    DirtyPanel > Horizontal {{ height: auto; }}
    DirtyPanel #chart-values {{ width: {VALUE_WIDTH}; }}
    DirtyPanel.-stale RateChart, DirtyPanel.-stale #chart-values {{ text-opacity: 55%; }}
    """

    def __init__(self, clock: Callable[[], float], *, coarse: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._clock = clock
        self._coarse = coarse
        self._title: str | None = None
        self._session: MonitorSession | None = None

    def compose(self) -> ComposeResult:
        with Row():
            yield RateChart(coarse=self._coarse)
            yield TextLine(id="chart-values")

    def on_resize(self) -> None:
        if self._session is not None:
            self.show(self._session)

    def show(self, session: MonitorSession) -> None:
        self._session = session
        self.set_class(is_stale(session), "-stale")
        now = self._clock()
        silent_since = session.engine_silent_since if isinstance(session, RemoteSession) else None
        if silent_since is not None:
            now = min(now, silent_since)  # the engine's last word: no column after it
        data = chart_data(session, now)
        chart = one(self, RateChart)
        chart.set_data(data)
        one(self, "#chart-values", TextLine).set(
            value_lines(data, chart.rows_per_series, chart.window)
        )
        note = title_note(session)
        title = Content.assemble(("Dirty vs sent", "bold"), *((" · ", note) if note.plain else ()))
        if title.markup != self._title:
            self._title = title.markup
            self.border_title = title
