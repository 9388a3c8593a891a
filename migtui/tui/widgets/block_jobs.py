"""Block jobs table: id, status, progress, type, speed limit; errors on a line below.

Rows are keyed by job id; a poll that changes one figure rewrites one cell.
Finished jobs stay listed (the model keeps them) with how they ended.

The table never runs past its width (a cut column showed as a lone "e") and never
cuts silently: the columns are what decides a switchover first (id, status,
progress), then type and the speed limit as room allows, dropped in that reverse
order when the panel is narrow -- one "…" column stands for what was dropped -- and
where even the first three do not fit, the widest are narrowed and every cell cut
ends in "…". "ready", "active sync" (a write-blocking mirror that is actively synced, QEMU
8.2+) and a bad io-status are part of the status; an error, long and rare,
gets its own line under the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable

from ... import format as fmt
from ...model.blockjobs import BlockJob
from ..kept_lines import KeptLines
from .text_line import TextLine

# (key, header) in display order.
COLUMNS = (
    ("id", "id"),
    ("status", "status"),
    ("progress", "progress"),
    ("type", "type"),
    ("limit", "limit"),  # QEMU's `speed`: a rate limit, not a measured rate
)
DROP_FIRST = ("limit", "type")  # dropped in this order when the columns do not fit
MORE = ("more", "…")  # the column standing for those dropped: "…" in every row
ELLIPSIS = "…"
# Narrowed first, down to this (the percent, then "…"): id and status name the job and its state.
PROGRESS_FIRST = 5
CELL_PADDING = 1  # DataTable's default, each side of each column
VISIBLE_ROWS = 5  # the table's max-height (6) minus its header
_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))

Row = dict[str, str]


def offset_of_len(offset: int | None, length: int | None) -> str:
    """``32.0/64.0 MiB``: both in the unit of the length."""
    if offset is None or length is None:
        return f"{fmt.format_bytes(offset)}/{fmt.format_bytes(length)}"
    for unit, size in _UNITS:
        if length >= size:
            return f"{offset / size:.1f}/{length / size:.1f} {unit}"
    return f"{offset}/{length} B"


def job_status(job: BlockJob) -> str:
    """``ready``, ``running``, ``standby, ready``, ``paused, io nospace``, ``completed``;
    ``ready, active sync`` for a write-blocking mirror in lockstep (QEMU's actively-synced)."""
    status = job.status or fmt.UNKNOWN
    if job.ended:
        return job.ended if job.status in (None, "concluded", "null") else f"{status} ({job.ended})"
    if job.ready and status != "ready":
        status += ", ready"
    if job.actively_synced:
        status += ", active sync"
    if job.io_status not in (None, "ok"):
        status += f", io {job.io_status}"
    return status


def job_row(job: BlockJob) -> Row:
    return {
        "id": job.device,
        "status": job_status(job),
        "progress": f"{fmt.format_percent(job.progress, 0)} {offset_of_len(job.offset, job.len)}",
        "type": job.type or fmt.UNKNOWN,
        "limit": "none" if job.speed_limit is None else fmt.format_rate(job.speed_limit),
    }


def _content(key: str, header: str, rows: Mapping[str, Row]) -> int:
    return max([cell_len(header), *(cell_len(row.get(key, ELLIPSIS)) for row in rows.values())])


def fitting_columns(rows: Mapping[str, Row], width: int) -> tuple[str, ...]:
    """The column keys to show in ``width`` cells (0: unknown yet, all of them); ``more``
    (one "…" column) where some were dropped."""
    keys = [key for key, _ in COLUMNS]
    if width <= 0:
        return tuple(keys)
    widths = {key: _content(key, header, rows) + 2 * CELL_PADDING for key, header in (*COLUMNS, MORE)}
    for key in DROP_FIRST:
        if sum(widths[k] for k in keys) <= width:
            break
        if key == DROP_FIRST[0]:
            keys.append(MORE[0])
        keys.remove(key)
    return tuple(keys)


def layout(rows: Mapping[str, Row], width: int) -> tuple[tuple[str, int], ...]:
    """(key, content width) of each column shown in ``width`` cells: those that fit whole
    (``fitting_columns``); where even they do not, progress narrowed to its percent, then the
    widest one cell at a time until the table fits (its cut cells end in "…", ``cut``);
    0 for ``width``: unknown yet, all whole."""
    headers = dict((*COLUMNS, MORE))
    keys = fitting_columns(rows, width)
    widths = {key: _content(key, headers[key], rows) for key in keys}
    if width > 0:
        room = width - 2 * CELL_PADDING * len(keys)
        over = sum(widths.values()) - room
        if over > 0:
            widths["progress"] -= min(over, max(0, widths["progress"] - PROGRESS_FIRST))
        while sum(widths.values()) > room:
            widest = max(widths, key=lambda k: widths[k])
            if widths[widest] <= 1:
                break
            widths[widest] -= 1
    return tuple((key, widths[key]) for key in keys)


def cut(text: str, width: int) -> str:
    """``text`` in ``width`` cells: whole, or cut with "…" as its last cell."""
    if cell_len(text) <= width:
        return text
    kept = ""
    for char in text:
        if cell_len(kept + char) > width - 1:
            break
        kept += char
    return kept + ELLIPSIS


def error_lines(jobs: Mapping[str, BlockJob]) -> Content:
    return Content("\n").join(
        Content.assemble((f"{job_id}: ", "bold"), (job.error, "$error"))
        for job_id, job in jobs.items() if job.error
    )


class BlockJobsPanel(KeptLines, Vertical):
    DEFAULT_CSS = """
    BlockJobsPanel { height: auto; }
    BlockJobsPanel > DataTable { height: auto; max-height: 6; }
    BlockJobsPanel.-empty > DataTable { display: none; }
    BlockJobsPanel > #jobs-errors { text-wrap: wrap; text-overflow: fold; }
    BlockJobsPanel > #jobs-errors.-empty { display: none; }
    BlockJobsPanel.-stale > DataTable { text-opacity: 55%; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rows: dict[str, Row] = {}
        self._layout: tuple[tuple[str, int], ...] = ()
        self._title: str | None = None

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(cursor_type="none", show_cursor=False, zebra_stripes=False,
                                          cell_padding=CELL_PADDING)
        table.can_focus = False
        yield table
        yield TextLine(id="jobs-errors", classes="-empty")

    @property
    def columns(self) -> tuple[str, ...]:
        """The column keys on show (``more``: the "…" standing for those dropped)."""
        return tuple(key for key, _ in self._layout)

    def _room(self, rows: int) -> int:
        width = self.size.width
        if width and rows > VISIBLE_ROWS:  # the table scrolls: leave room for its scrollbar
            width -= self.query_one(DataTable).styles.scrollbar_size_vertical
        return width

    def show(self, jobs: dict[str, BlockJob], *, stale: bool = False) -> None:
        """Show ``jobs``; ``stale``: the monitor is not connected (greyed)."""
        self.set_class(stale, "-stale")
        self._fill({job_id: job_row(job) for job_id, job in jobs.items()})
        errors = error_lines(jobs)
        line = self.query_one("#jobs-errors", TextLine)
        line.set_class(not errors.plain, "-empty")
        line.set(errors, relayout=True)
        self.set_class(not jobs, "-empty")
        title = "Block jobs: none" if not jobs else f"Block jobs ({len(jobs)})"
        if title != self._title:
            self._title = title
            self.border_title = Content.styled(title, "bold")

    def on_resize(self) -> None:
        self._fill(self._rows)

    def _fill(self, rows: dict[str, Row]) -> None:
        table = self.query_one(DataTable)
        columns = layout(rows, self._room(len(rows)))
        headers = dict((*COLUMNS, MORE))
        if columns != self._layout or list(rows) != list(self._rows):
            # Rebuilt from scratch: a cleared DataTable keeps the widths of old content.
            table.clear(columns=True)
            for key, width in columns:
                table.add_column(cut(headers[key], width), key=key, width=width)
            for job_id, row in rows.items():
                table.add_row(*(cut(row.get(key, ELLIPSIS), width) for key, width in columns), key=job_id)
        else:
            for job_id, row in rows.items():
                old = self._rows[job_id]
                for key, width in columns:
                    if row.get(key) != old.get(key):
                        table.update_cell(job_id, key, cut(row.get(key, ELLIPSIS), width))
        self._layout = columns
        self._rows = rows
