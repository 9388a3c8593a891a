"""Block jobs table: id, type, progress, speed, ready, status, io-status, error.

Rows are keyed by job id; a poll that changes one figure rewrites one cell.
Finished jobs stay listed (the model keeps them) with how they ended.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable

from ... import format as fmt
from ...model.blockjobs import BlockJob

# What decides a switchover first (id, status, ready), so 80 columns show it.
COLUMNS = (
    ("id", "id"),
    ("status", "status"),
    ("ready", "ready"),
    ("progress", "progress"),
    ("speed", "speed"),
    ("io", "io-status"),
    ("type", "type"),
    ("error", "error"),
)
_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def _yes_no(value: bool | None) -> str:
    return fmt.UNKNOWN if value is None else ("yes" if value else "no")


def offset_of_len(offset: int | None, length: int | None) -> str:
    """``32.0/64.0 MiB``: both in the unit of the length."""
    if offset is None or length is None:
        return f"{fmt.format_bytes(offset)}/{fmt.format_bytes(length)}"
    for unit, size in _UNITS:
        if length >= size:
            return f"{offset / size:.1f}/{length / size:.1f} {unit}"
    return f"{offset}/{length} B"


def job_row(job: BlockJob) -> tuple[str, ...]:
    progress = f"{fmt.format_percent(job.progress, 0)} {offset_of_len(job.offset, job.len)}"
    status = job.status or fmt.UNKNOWN
    if job.ended:
        status = f"{job.ended}" if job.status in (None, "concluded", "null") else f"{status} ({job.ended})"
    speed = "unlimited" if job.speed == 0 else fmt.format_rate(job.speed)
    return (
        job.device,
        status,
        _yes_no(job.ready),
        progress,
        speed,
        job.io_status or fmt.UNKNOWN,
        job.type or fmt.UNKNOWN,
        job.error or "",
    )


class BlockJobsPanel(Vertical):
    DEFAULT_CSS = """
    BlockJobsPanel { height: auto; }
    BlockJobsPanel > DataTable { height: auto; max-height: 6; }
    BlockJobsPanel.-empty > DataTable { display: none; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._rows: dict[str, tuple[str, ...]] = {}
        self._title: str | None = None

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(cursor_type="none", show_cursor=False, zebra_stripes=False)
        table.can_focus = False
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        yield table

    def show(self, jobs: dict[str, BlockJob]) -> None:
        rows = {job_id: job_row(job) for job_id, job in jobs.items()}
        table = self.query_one(DataTable)
        if list(rows) != list(self._rows):
            table.clear()
            for key, row in rows.items():
                table.add_row(*row, key=key)
        else:
            for key, row in rows.items():
                old = self._rows[key]
                for (_, column), new_cell, old_cell in zip(COLUMNS, row, old):
                    if new_cell != old_cell:
                        table.update_cell(key, column, new_cell, update_width=True)
        self._rows = rows
        self.set_class(not rows, "-empty")
        title = "Block jobs: none" if not rows else f"Block jobs ({len(rows)})"
        if title != self._title:
            self._title = title
            self.border_title = Content.styled(title, "bold")
