"""The migration panel: status, RAM progress, pass, downtime, extras.

Pure builders (``status_fields`` ...) turn the model into lists of Content, one per
figure; the panel shows them in rows (FieldRow) that repaint only the cells a ticking
number changes, each padded to its widest plausible value so the row stays put.
Unknown statuses and fields appear as QEMU sends them.

RAM: QEMU's ``transferred`` counts re-sent dirty pages, so it can pass the guest's
RAM size; the row says what is left of the RAM and, apart, how much was sent. The
send rate is the chart's "sent" figure right below, so it is not repeated here.

While the monitor is not connected, or its polls fail (a hung QEMU: every query times
out), every figure is the last one seen: the panel is greyed (class ``-stale``) and the
status reads "last: active".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from ... import format as fmt
from ...model.advisor import CONVERGING, NOT_CONVERGING, Advice, eta_text
from ...model.migration import MigrationInfo
from ...transport import ConnState
from ...view.remote import RemoteSession
from ...workflow.session import MonitorSession
from .. import badges
from ..kept_lines import KeptLines, Row
from ..lookup import one
from .field_row import SEP, FieldRow, pad
from .pass_trend import PassTrend
from .ram_bar import RamBar
from .text_line import TextLine

Fields = list["Content | None"]

# The widest plausible time ("999 ms", "59.9 s", "2m 05s"): a ticking total keeps its place.
TIME_WIDTH = 6
VERDICT_WIDTH = 11  # beside the RAM bar: "  99.1%", "stuck", "ETA 18.0 s", "ETA 2m 10s"


def _field(label: str, value: str, style: str = "") -> Content:
    return Content.assemble((label + " ", "$text-muted"), (value, style))


def padded(value: str, width: int) -> str:
    """Right-aligned in ``width`` cells; an unknown value is not padded (it is rare and
    a lone "—" far from its label reads as a gap)."""
    return value if value == fmt.UNKNOWN else pad(value, width)


def is_stale(session: MonitorSession) -> bool:
    """Not connected, its last poll failed (a hung QEMU), or the engine says nothing (a
    stopped or hung engine): every figure on show is the last one seen, not the current one."""
    return (session.status.state is not ConnState.CONNECTED or bool(session.poll_error)
            or (isinstance(session, RemoteSession) and session.engine_silent))


def status_fields(session: MonitorSession) -> Fields:
    state = session.state
    info = state.migration
    return [
        badges.migration_badge(state.migration_status, stale=is_stale(session)),
        _field("pass", str(state.pass_number)) if state.pass_number is not None else None,
        _field("total", padded(fmt.format_ms(info.total_time), TIME_WIDTH))
        if info.total_time is not None else None,
        _field("setup", fmt.format_ms(info.setup_time)) if info.setup_time is not None else None,
    ]


ZERO_NOTE = "(pages of zeros: QEMU sends a flag, not the page)"


def ram_fields(info: MigrationInfo, *, incoming: bool = False) -> Fields:
    """``left 3.3 of 128.5 MiB · sent 209.1 MiB · zero 75.4 MiB``: sent counts re-sent pages
    too, and not the zero pages (a flag each), so it is neither the RAM done nor a part of it;
    ``ZERO_NOTE`` says what zero pages are where there is room (``RAM_OPTIONAL``).

    ``incoming``: a destination, whose QEMU reports no RAM figures at all.
    """
    ram = info.ram
    if ram is None:
        if info.status == "none":
            text = "no migration yet"
        elif incoming:
            text = "destination: RAM figures are on the source"
        elif info.is_finished:
            text = f"{info.status}: QEMU keeps no RAM figures"
        else:
            text = f"QEMU gives no RAM figures while {info.status}"
        return [Content.styled(text, "$text-muted")]
    zero = ram.zero_bytes
    return [
        # What is left goes up and down pass to pass: padded, it keeps its width (a new width lays
        # the whole screen out again). Sent and zero only grow: their width changes a few times.
        _field("left", fmt.format_left_of_total(ram.remaining, ram.total, aligned=True)),
        _field("sent", fmt.format_bytes_short(ram.transferred)),
        _field("zero", fmt.format_bytes_short(zero)) if zero is not None else None,
        Content.styled(ZERO_NOTE, "$text-muted") if zero is not None else None,
    ]


RAM_OPTIONAL = 3  # ram_fields' note: shown whole or not at all


def downtime_fields(session: MonitorSession) -> Fields:
    state = session.state
    info = state.migration
    limit = session.downtime_limit_ms
    limit_text = _field("limit", fmt.format_ms(limit))
    if state.final_downtime_ms is not None:
        return [_field("downtime", fmt.format_ms(state.final_downtime_ms), "bold"), limit_text]
    expected = info.expected_downtime
    if expected is None and not info.is_running:
        # Nothing to expect yet: show what the next migration will run with.
        bandwidth = session.max_bandwidth
        return [
            _field("downtime-limit", fmt.format_ms(limit)),
            _field("max-bandwidth", fmt.format_rate(bandwidth) if bandwidth else "unlimited"
                   if bandwidth == 0 else fmt.UNKNOWN),
        ]
    over = expected is not None and limit is not None and expected > limit
    expected_text = _field("expected downtime", padded(fmt.format_ms(expected), TIME_WIDTH),
                           "bold $warning" if over else "")
    formula = session.features.expected_downtime_formula
    if formula is not None and expected is not None:
        # QEMU 8.1 changed what the figure means; say which one this QEMU computes.
        expected_text += Content.styled(f" ({formula})", "$text-muted")
    return [expected_text, limit_text]


def micros(us: int) -> str:
    """QEMU's microsecond figures, as every duration: "0.85 ms", "2.1 ms", "125 ms", "1.5 s"."""
    return fmt.format_duration(us / 1e6)


def dirty_limit_line(info: MigrationInfo, vcpu_limit: int | None) -> Content | None:
    """``dirty-limit 1 MB/s: vCPU held 850 µs each time its dirty ring fills (every 2.1 ms)``
    while QEMU throttles the vCPUs (the dirty-limit capability, QEMU 8.1+); None otherwise."""
    per_round, ring_full = info.dirty_limit_throttle_time_per_round, info.dirty_limit_ring_full_time
    if per_round is None:  # QEMU sends both figures only while the throttle is in service
        return None
    label = "dirty-limit" + (f" {vcpu_limit} MB/s" if vcpu_limit is not None else "")
    text = f"vCPU held {micros(per_round)} each time its dirty ring fills"
    if ring_full is not None:
        text += f" (every {micros(ring_full)})"
    return _field(label + ":", text, "$warning")


def _xbzrle(x: Mapping[str, Any]) -> Content:
    parts = [_field("cache", fmt.format_bytes(x.get("cache-size")))]
    if "bytes" in x:
        parts.append(_field("sent", fmt.format_bytes(x.get("bytes"))))
    if "cache-miss-rate" in x:
        parts.append(_field("miss", fmt.format_percent(x.get("cache-miss-rate"))))
    if "overflow" in x:
        parts.append(_field("overflow", fmt.format_count(x.get("overflow"))))
    return Content.assemble(("xbzrle ", "bold"), SEP.join(parts))


def extra_lines(session: MonitorSession) -> list[Content]:
    """Whatever QEMU adds only sometimes; empty when there is nothing to say."""
    info = session.state.migration
    lines: list[Content] = []
    if session.avail_switchover_bandwidth:
        # QEMU 8.2+: the switchover threshold uses this rate instead of the measured one.
        lines.append(_field("switchover judged at", fmt.format_rate(session.avail_switchover_bandwidth)
                            + " (avail-switchover-bandwidth)"))
    if info.cpu_throttle_percentage is not None:
        lines.append(_field("cpu throttle", f"{info.cpu_throttle_percentage}%", "$warning"))
    if (dirty_limit := dirty_limit_line(info, session.vcpu_dirty_limit)) is not None:
        lines.append(dirty_limit)
    if info.xbzrle:
        lines.append(_xbzrle(info.xbzrle))
    if info.disk:
        d = info.disk
        lines.append(_field("disk", f"{fmt.format_bytes(d.get('transferred'))} of "
                            f"{fmt.format_bytes(d.get('total'))}, {fmt.format_bytes(d.get('remaining'))} left"))
    if info.postcopy_blocktime is not None:
        lines.append(_field("postcopy blocktime", fmt.format_ms(info.postcopy_blocktime)))
    if info.blocked_reasons:
        lines.append(_field("blocked", ", ".join(info.blocked_reasons), "$error"))
    if info.error_desc:
        lines.append(_field("error", info.error_desc, "bold $error"))
    return lines


def advice_of(session: MonitorSession) -> Advice | None:
    """The engine's convergence advice on ``session`` (a view's session carries it)."""
    return session.convergence.advice if isinstance(session, RemoteSession) else None


def trend_shown(session: MonitorSession) -> Advice | None:
    """The advice when the bar row shows the per-pass trend instead of the RAM bar: from
    the second pass of a pre-copy that runs, the RAM bar's percentage says little."""
    advice = advice_of(session)
    info = session.state.migration
    if advice is None or not advice.passes or not info.is_running or session.state.migration_status != "active":
        return None
    return advice


def verdict_cell(advice: Advice) -> Content:
    """What stands where the percentage was: "stuck", "ETA 42.0 s", or nothing yet."""
    if advice.verdict == NOT_CONVERGING:
        return Content.styled("stuck".rjust(VERDICT_WIDTH), "bold $error")
    if advice.verdict == CONVERGING and advice.eta_s is not None:
        return Content.styled(f"ETA {eta_text(advice.eta_s)}".rjust(VERDICT_WIDTH), "$success")
    return Content(" " * VERDICT_WIDTH)


class MigrationPanel(KeptLines, Vertical):
    DEFAULT_CSS = """
    MigrationPanel { height: auto; }
    MigrationPanel > #mig-bar-row { height: 1; }
    MigrationPanel #mig-percent { width: 11; }
    MigrationPanel > #mig-extra.-empty { display: none; }
    MigrationPanel.-stale TextLine, MigrationPanel.-stale FieldRow, MigrationPanel.-stale RamBar { text-opacity: 55%; }
    MigrationPanel PassTrend { display: none; }
    MigrationPanel.-passes PassTrend { display: block; }
    MigrationPanel.-passes RamBar { display: none; }
    """

    def compose(self) -> ComposeResult:
        yield FieldRow(4, id="mig-status")
        with Row(id="mig-bar-row"):
            yield RamBar(id="mig-bar")
            yield PassTrend(id="mig-trend")
            yield TextLine(id="mig-percent")
        yield FieldRow(4, id="mig-ram", optional_from=RAM_OPTIONAL)
        yield FieldRow(2, id="mig-downtime")
        yield TextLine(id="mig-extra", classes="-empty")

    def show(self, session: MonitorSession) -> None:
        self.set_class(is_stale(session), "-stale")
        state = session.state
        info = state.migration
        one(self, "#mig-status", FieldRow).set(status_fields(session))
        progress = info.ram_progress
        trend = trend_shown(session)
        self.set_class(trend is not None, "-passes")
        if trend is not None:  # a stuck migration must not look almost done: the passes say it
            one(self, PassTrend).set(trend.passes, trend.verdict)
            one(self, "#mig-percent", TextLine).set(verdict_cell(trend))
        else:
            one(self, RamBar).set(progress)
            percent = fmt.format_percent(progress) if progress is not None else fmt.UNKNOWN
            one(self, "#mig-percent", TextLine).set(percent.rjust(VERDICT_WIDTH))
        one(self, "#mig-ram", FieldRow).set(ram_fields(info, incoming=state.incoming_side))
        one(self, "#mig-downtime", FieldRow).set(downtime_fields(session))
        extra = extra_lines(session)
        line = one(self, "#mig-extra", TextLine)
        line.set_class(not extra, "-empty")
        line.set(Content("\n").join(extra))
