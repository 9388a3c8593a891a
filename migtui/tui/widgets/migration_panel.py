"""The migration panel: status, RAM progress, throughput, pass, downtime, extras.

Pure builders (``status_fields`` ...) turn the model into lists of Content, one per
figure; the panel puts each figure in its own widget (FieldRow) so a ticking number
repaints only itself. Unknown statuses and fields appear as QEMU sends them.
"""

from __future__ import annotations

from typing import Any, Mapping

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content

from ... import format as fmt
from ...model.migration import MigrationInfo
from ...workflow.session import MonitorSession
from .. import badges
from .field_row import SEP, FieldRow
from .ram_bar import RamBar
from .text_line import TextLine

Fields = list["Content | None"]


def _field(label: str, value: str, style: str = "") -> Content:
    return Content.assemble((label + " ", "$text-muted"), (value, style))


def status_fields(session: MonitorSession) -> Fields:
    state = session.state
    info = state.migration
    return [
        badges.migration_badge(state.migration_status),
        _field("pass", str(state.pass_number)) if state.pass_number is not None else None,
        _field("total", fmt.format_ms(info.total_time)) if info.total_time is not None else None,
        _field("setup", fmt.format_ms(info.setup_time)) if info.setup_time is not None else None,
    ]


def sent_of_total(sent: int | None, total: int | None) -> str:
    """``21.8/128.5 MiB`` when both share a unit, else ``512.0 KiB/128.5 MiB``."""
    a, b = fmt.format_bytes(sent), fmt.format_bytes(total)
    unit_a, unit_b = a.rpartition(" ")[2], b.rpartition(" ")[2]
    if " " in a and unit_a == unit_b:
        return f"{a.rpartition(' ')[0]}/{b}"
    return f"{a}/{b}"


def ram_fields(info: MigrationInfo) -> Fields:
    ram = info.ram
    if ram is None:
        text = "no migration yet" if info.status == "none" else "QEMU reports no RAM figures now"
        return [Content.styled(text, "$text-muted")]
    return [
        _field("sent", sent_of_total(ram.transferred, ram.total)),
        _field("left", fmt.format_bytes(ram.remaining)),
        Content(fmt.format_rate(info.throughput_bytes_per_s)),
    ]


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
    return [
        _field("expected downtime", fmt.format_ms(expected), "bold $warning" if over else ""),
        limit_text,
    ]


def _xbzrle(x: Mapping[str, Any]) -> Content:
    parts = [_field("cache", fmt.format_bytes(x.get("cache-size")))]
    if "bytes" in x:
        parts.append(_field("sent", fmt.format_bytes(x.get("bytes"))))
    if "cache-miss-rate" in x:
        parts.append(_field("miss", fmt.format_percent(x.get("cache-miss-rate"))))
    if "overflow" in x:
        parts.append(_field("overflow", fmt.format_count(x.get("overflow"))))
    return Content.assemble(("xbzrle ", "bold"), SEP.join(parts))


def extra_lines(info: MigrationInfo) -> list[Content]:
    """Whatever QEMU adds only sometimes; empty when there is nothing to say."""
    lines: list[Content] = []
    if info.cpu_throttle_percentage is not None:
        lines.append(_field("cpu throttle", f"{info.cpu_throttle_percentage}%", "$warning"))
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


class MigrationPanel(Vertical):
    DEFAULT_CSS = """
    MigrationPanel { height: auto; }
    MigrationPanel > #mig-bar-row { height: 1; }
    MigrationPanel #mig-percent { width: 8; }
    MigrationPanel > #mig-extra.-empty { display: none; }
    """

    def compose(self) -> ComposeResult:
        yield FieldRow(4, fit=(0,), id="mig-status")
        with Horizontal(id="mig-bar-row"):
            yield RamBar(id="mig-bar")
            yield TextLine(id="mig-percent")
        yield FieldRow(3, id="mig-ram")
        yield FieldRow(2, id="mig-downtime")
        yield TextLine(id="mig-extra", classes="-empty")

    _shown_name: str | None = None

    def show(self, session: MonitorSession) -> None:
        if session.name != self._shown_name:
            self._shown_name = session.name
            for row in self.query(FieldRow):
                row.reset()  # widths learnt on another monitor would leave gaps here
        info = session.state.migration
        self.query_one("#mig-status", FieldRow).set(status_fields(session))
        progress = info.ram_progress
        self.query_one(RamBar).set(progress)
        percent = fmt.format_percent(progress) if progress is not None else fmt.UNKNOWN
        self.query_one("#mig-percent", TextLine).set(percent.rjust(8))
        self.query_one("#mig-ram", FieldRow).set(ram_fields(info))
        self.query_one("#mig-downtime", FieldRow).set(downtime_fields(session))
        extra = extra_lines(info)
        line = self.query_one("#mig-extra", TextLine)
        line.set_class(not extra, "-empty")
        line.set(Content("\n").join(extra))
