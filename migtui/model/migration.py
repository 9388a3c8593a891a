"""`query-migrate` parsed into a frozen snapshot with derived figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from migtui.model.coerce import (
    as_mapping,
    opt_dict,
    opt_float,
    opt_int,
    opt_str,
    str_tuple,
)

# Every MigrationStatus QEMU knows (qapi/migration.json); others are kept as opaque strings.
MIGRATION_STATUSES: tuple[str, ...] = (
    "none",
    "setup",
    "cancelling",
    "cancelled",
    "active",
    "postcopy-active",
    "postcopy-paused",
    "postcopy-recover-setup",
    "postcopy-recover",
    "completed",
    "failed",
    "colo",
    "pre-switchover",
    "device",
    "wait-unplug",
)

# A migration is under way in these states (the guest may already be stopped).
RUNNING_STATUSES: frozenset[str] = frozenset(
    {
        "setup",
        "active",
        "cancelling",
        "postcopy-active",
        "postcopy-paused",
        "postcopy-recover-setup",
        "postcopy-recover",
        "colo",
        "pre-switchover",
        "device",
        "wait-unplug",
    }
)
FINISHED_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

DEFAULT_PAGE_SIZE = 4096


@dataclass(frozen=True)
class RamStats:
    """The `ram` object of query-migrate; sizes in bytes, counts in pages."""

    transferred: int | None = None
    remaining: int | None = None
    total: int | None = None
    duplicate: int | None = None
    normal: int | None = None
    normal_bytes: int | None = None
    dirty_pages_rate: int | None = None  # pages per second, not bytes
    page_size: int | None = None
    mbps: float | None = None  # megabits (10^6) per second
    dirty_sync_count: int | None = None
    multifd_bytes: int | None = None
    pages_per_second: int | None = None
    precopy_bytes: int | None = None
    downtime_bytes: int | None = None
    postcopy_bytes: int | None = None
    postcopy_requests: int | None = None

    @classmethod
    def from_qmp(cls, d: Any) -> RamStats | None:
        if not isinstance(d, Mapping):
            return None
        return cls(
            transferred=opt_int(d.get("transferred")),
            remaining=opt_int(d.get("remaining")),
            total=opt_int(d.get("total")),
            duplicate=opt_int(d.get("duplicate")),
            normal=opt_int(d.get("normal")),
            normal_bytes=opt_int(d.get("normal-bytes")),
            dirty_pages_rate=opt_int(d.get("dirty-pages-rate")),
            page_size=opt_int(d.get("page-size")),
            mbps=opt_float(d.get("mbps")),
            dirty_sync_count=opt_int(d.get("dirty-sync-count")),
            multifd_bytes=opt_int(d.get("multifd-bytes")),
            pages_per_second=opt_int(d.get("pages-per-second")),
            precopy_bytes=opt_int(d.get("precopy-bytes")),
            downtime_bytes=opt_int(d.get("downtime-bytes")),
            postcopy_bytes=opt_int(d.get("postcopy-bytes")),
            postcopy_requests=opt_int(d.get("postcopy-requests")),
        )

    @property
    def zero_bytes(self) -> int | None:
        """The RAM found to be zero pages (``duplicate``, virsh's "constant pages"): QEMU sends a
        flag for each, not the page, so they count in the progress and hardly in ``transferred``."""
        if self.duplicate is None or not self.page_size:
            return None
        return self.duplicate * self.page_size


@dataclass(frozen=True)
class MigrationInfo:
    """One query-migrate reply. Times are milliseconds, sizes bytes."""

    status: str = "none"
    total_time: int | None = None
    setup_time: int | None = None
    expected_downtime: int | None = None
    downtime: int | None = None
    cpu_throttle_percentage: int | None = None
    error_desc: str | None = None
    blocked_reasons: tuple[str, ...] = ()
    ram: RamStats | None = None
    xbzrle: dict[str, Any] | None = None
    disk: dict[str, Any] | None = None  # block migration (`migrate blk`), removed in QEMU 9.1
    vfio: dict[str, Any] | None = None
    postcopy_blocktime: int | None = None
    # The dirty-limit capability (QEMU 8.1+, KVM dirty ring), while it throttles the vCPUs:
    # how long each vCPU is held per throttle round, and the estimated time to fill the
    # dirty ring; both in microseconds.
    dirty_limit_throttle_time_per_round: int | None = None
    dirty_limit_ring_full_time: int | None = None
    socket_address: tuple[dict[str, Any], ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_qmp(cls, reply: Any) -> MigrationInfo:
        d = as_mapping(reply)
        status = d.get("status")
        sockets = d.get("socket-address")
        return cls(
            status=status if isinstance(status, str) and status else "none",
            total_time=opt_int(d.get("total-time")),
            setup_time=opt_int(d.get("setup-time")),
            expected_downtime=opt_int(d.get("expected-downtime")),
            downtime=opt_int(d.get("downtime")),
            cpu_throttle_percentage=opt_int(d.get("cpu-throttle-percentage")),
            error_desc=opt_str(d.get("error-desc")),
            blocked_reasons=str_tuple(d.get("blocked-reasons")),
            ram=RamStats.from_qmp(d.get("ram")),
            xbzrle=opt_dict(d.get("xbzrle-cache")),
            disk=opt_dict(d.get("disk")),
            vfio=opt_dict(d.get("vfio")),
            postcopy_blocktime=opt_int(d.get("postcopy-blocktime")),
            dirty_limit_throttle_time_per_round=opt_int(d.get("dirty-limit-throttle-time-per-round")),
            dirty_limit_ring_full_time=opt_int(d.get("dirty-limit-ring-full-time")),
            socket_address=tuple(
                dict(s) for s in (sockets if isinstance(sockets, list) else []) if isinstance(s, Mapping)
            ),
            raw=dict(d),
        )

    # --- derived figures -------------------------------------------------

    @property
    def dirty_rate_bytes_per_s(self) -> float | None:
        ram = self.ram
        if ram is None or ram.dirty_pages_rate is None:
            return None
        return float(ram.dirty_pages_rate * (ram.page_size or DEFAULT_PAGE_SIZE))

    @property
    def ram_progress(self) -> float | None:
        """Share of guest RAM already copied, 0..1.

        Based on `remaining` because `transferred` counts re-sent dirty pages and
        only a few bytes per zero page, so transferred/total is neither monotonic
        nor near 1 when QEMU is about to switch over. Falls back to it when
        `remaining` is missing.
        """
        ram = self.ram
        if ram is None or not ram.total or ram.total <= 0:
            return None
        if ram.remaining is not None:
            done = ram.total - ram.remaining
        elif ram.transferred is not None:
            done = ram.transferred
        else:
            return None
        return min(1.0, max(0.0, done / ram.total))

    @property
    def throughput_bytes_per_s(self) -> float | None:
        if self.ram is None or self.ram.mbps is None:
            return None
        return self.ram.mbps * 1e6 / 8

    @property
    def pass_number(self) -> int | None:
        return self.ram.dirty_sync_count if self.ram else None

    @property
    def is_running(self) -> bool:
        return self.status in RUNNING_STATUSES

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def to_json(self) -> dict[str, Any]:
        """The `migration` object of `migtui status --json`: bytes, ms, null when unknown."""
        ram = self.ram or RamStats()
        return {
            "status": self.status,
            "total_time_ms": self.total_time,
            "setup_time_ms": self.setup_time,
            "expected_downtime_ms": self.expected_downtime,
            "downtime_ms": self.downtime,
            "cpu_throttle_percentage": self.cpu_throttle_percentage,
            "error_desc": self.error_desc,
            "blocked_reasons": list(self.blocked_reasons),
            "ram_transferred_bytes": ram.transferred,
            "ram_remaining_bytes": ram.remaining,
            "ram_total_bytes": ram.total,
            "ram_normal_bytes": ram.normal_bytes,
            "ram_precopy_bytes": ram.precopy_bytes,
            "ram_downtime_bytes": ram.downtime_bytes,
            "ram_postcopy_bytes": ram.postcopy_bytes,
            "ram_multifd_bytes": ram.multifd_bytes,
            "ram_duplicate_pages": ram.duplicate,
            "ram_normal_pages": ram.normal,
            "ram_page_size_bytes": ram.page_size,
            "ram_pages_per_second": ram.pages_per_second,
            "ram_dirty_pages_per_second": ram.dirty_pages_rate,
            "ram_postcopy_requests": ram.postcopy_requests,
            "ram_progress": self.ram_progress,
            "throughput_bytes_per_s": self.throughput_bytes_per_s,
            "dirty_rate_bytes_per_s": self.dirty_rate_bytes_per_s,
            "pass": self.pass_number,
            "raw": dict(self.raw),
        }
