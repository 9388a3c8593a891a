"""`query-block-jobs` entries (and what block job events tell) as frozen snapshots."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migtui.model.coerce import opt_bool, opt_int, opt_str

# JobStatus values after which the job does no more work.
ENDED_JOB_STATUSES: frozenset[str] = frozenset({"concluded", "null", "aborting"})


# At or above this a block job's `speed` means "no limit" (1 EiB/s: no disk goes there).
UNLIMITED_SPEED = 1 << 60


@dataclass(frozen=True)
class BlockJob:
    device: str  # the job id (QEMU calls it `device` for historical reasons)
    type: str | None = None
    len: int | None = None
    offset: int | None = None
    busy: bool | None = None
    paused: bool | None = None
    speed: int | None = None
    ready: bool | None = None
    status: str | None = None
    io_status: str | None = None
    error: str | None = None
    auto_finalize: bool | None = None
    auto_dismiss: bool | None = None
    actively_synced: bool | None = None  # mirror only, QEMU 8.2+
    # How the job ended, learnt from events: "completed", "failed" (completed with an error:
    # its copy is not whole) or "cancelled" (None: not ended).
    ended: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.device

    @property
    def speed_limit(self) -> int | None:
        """The job's rate limit in bytes/s; None when unlimited (QEMU's 0, or the
        INT64_MAX-ish "no limit" libvirt sets, which would read as 8.0 EiB/s)."""
        if self.speed is None or self.speed <= 0 or self.speed >= UNLIMITED_SPEED:
            return None
        return self.speed

    @classmethod
    def from_qmp(cls, d: Any) -> BlockJob | None:
        """One entry of query-block-jobs; None if it has no usable id."""
        if not isinstance(d, Mapping):
            return None
        device = opt_str(d.get("device")) or opt_str(d.get("id"))
        if not device:
            return None
        return cls(
            device=device,
            type=opt_str(d.get("type")),
            len=opt_int(d.get("len")),
            offset=opt_int(d.get("offset")),
            busy=opt_bool(d.get("busy")),
            paused=opt_bool(d.get("paused")),
            speed=opt_int(d.get("speed")),
            ready=opt_bool(d.get("ready")),
            status=opt_str(d.get("status")),
            io_status=opt_str(d.get("io-status")),
            error=opt_str(d.get("error")),
            auto_finalize=opt_bool(d.get("auto-finalize")),
            auto_dismiss=opt_bool(d.get("auto-dismiss")),
            actively_synced=opt_bool(d.get("actively-synced")),
            raw=dict(d),
        )

    @property
    def progress(self) -> float | None:
        if self.len is None or self.offset is None:
            return None
        if self.len <= 0:
            return 1.0 if self.ended == "completed" else None
        return min(1.0, max(0.0, self.offset / self.len))

    @property
    def remaining(self) -> int | None:
        """Bytes still to copy (None: not known)."""
        if self.len is None or self.offset is None:
            return None
        return max(0, self.len - self.offset)

    @property
    def in_sync(self) -> bool:
        return self.len is not None and self.len > 0 and self.offset == self.len

    @property
    def is_finished(self) -> bool:
        return self.ended is not None or self.status in ENDED_JOB_STATUSES


def parse_block_jobs(reply: Any) -> list[BlockJob]:
    """query-block-jobs' list, skipping entries that are not jobs."""
    if not isinstance(reply, list):
        return []
    return [job for job in (BlockJob.from_qmp(d) for d in reply) if job is not None]


def mirror_targets(graph: Any, jobs: Iterable[str]) -> dict[str, str]:
    """The node each of these block jobs writes to (job id -> node name), from
    ``x-debug-query-block-graph`` (the only query that names a mirror's target)."""
    if not isinstance(graph, Mapping):
        return {}
    nodes = {n.get("id"): n for n in graph.get("nodes") or () if isinstance(n, Mapping)}
    wanted = set(jobs)
    targets = {}
    for edge in graph.get("edges") or ():
        if not isinstance(edge, Mapping) or edge.get("name") != "target":
            continue
        parent, child = nodes.get(edge.get("parent"), {}), nodes.get(edge.get("child"), {})
        job, node = opt_str(parent.get("name")), opt_str(child.get("name"))
        if parent.get("type") == "block-job" and job in wanted and node and child.get("type") == "block-driver":
            targets[job] = node
    return targets
