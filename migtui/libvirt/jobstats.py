"""libvirt's figures as the QMP replies the model folds. Pure: no libvirt import.

``dom.jobStats()`` is ``{'type': 0}`` when no job runs, type 1/2 while one runs, and
(``VIR_DOMAIN_JOB_STATS_COMPLETED``) type 3/4/5 for the last one that completed, failed
or was cancelled -- the figures ``virsh domjobinfo --completed`` shows, the same as the
``JOB_COMPLETED`` event's. libvirt's job starts before QEMU's migration (the disk mirrors
first) and ends after it: the status word is QEMU's own, from its MIGRATION events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JOB_NONE, JOB_BOUNDED, JOB_UNBOUNDED, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED = range(6)
FINISHED = {JOB_COMPLETED: "completed", JOB_FAILED: "failed", JOB_CANCELLED: "cancelled"}
OPERATION_MIGRATION_IN, OPERATION_MIGRATION_OUT = 4, 5
MiB = 1 << 20
# migrateGetMaxSpeed's "unlimited" (INT64_MAX bytes/s in MiB/s)
UNLIMITED_MIB_S = ((1 << 63) - 1) // MiB

# QMP's ram.* and top-level fields <- libvirt's typed parameters (VIR_DOMAIN_JOB_*).
_RAM = {"total": "memory_total", "transferred": "memory_processed", "remaining": "memory_remaining",
        "duplicate": "memory_constant", "normal": "memory_normal", "normal-bytes": "memory_normal_bytes",
        "dirty-pages-rate": "memory_dirty_rate", "dirty-sync-count": "memory_iteration",
        "page-size": "memory_page_size", "postcopy-requests": "memory_postcopy_requests"}
_TOP = {"total-time": "time_elapsed", "downtime": "downtime", "setup-time": "setup_time",
        "cpu-throttle-percentage": "auto_converge_throttle", "error-desc": "errmsg"}
_DISK = {"total": "disk_total", "transferred": "disk_processed", "remaining": "disk_remaining"}


def job_type(stats: Mapping[str, Any]) -> int:
    value = stats.get("type", JOB_NONE)
    return value if isinstance(value, int) else JOB_NONE


def running(stats: Mapping[str, Any]) -> bool:
    return job_type(stats) in (JOB_BOUNDED, JOB_UNBOUNDED)


def migration_job(stats: Mapping[str, Any]) -> bool:
    """A job of a migration (in or out); other jobs (a dump, a backup) are not one."""
    return stats.get("operation") in (OPERATION_MIGRATION_IN, OPERATION_MIGRATION_OUT, None)


def migrate_reply(stats: Mapping[str, Any], status: str | None = None) -> dict[str, Any]:
    """The ``query-migrate`` reply these statistics say. ``status``: QEMU's word from its
    last MIGRATION event for a job still running (libvirt's own job says only "running")."""
    kind = job_type(stats)
    if kind in FINISHED:
        word = FINISHED[kind]
    elif kind in (JOB_BOUNDED, JOB_UNBOUNDED) and migration_job(stats):
        word = status or "active"
    else:
        return {}  # what QEMU answers when no migration ever ran
    reply: dict[str, Any] = {"status": word}
    for qmp, key in _TOP.items():
        if key in stats:
            reply[qmp] = stats[key]
    if kind not in FINISHED and "downtime" in reply:  # a job under way: libvirt's estimate
        reply["expected-downtime"] = reply.pop("downtime")
    ram = {qmp: stats[key] for qmp, key in _RAM.items() if key in stats}
    if "memory_bps" in stats:
        ram["mbps"] = stats["memory_bps"] * 8 / 1e6  # QEMU's unit: megabits per second
    if ram:
        reply["ram"] = ram
    disk = {qmp: stats[key] for qmp, key in _DISK.items() if key in stats}
    if disk.get("total"):
        reply["disk"] = disk
    return reply


def ended_job(qemu_status: str | None, *, aborted: bool) -> dict[str, Any]:
    """A migration job that ended with no statistics kept: completed or cancelled when QEMU
    said so (or migtui aborted it), else failed."""
    if qemu_status == "completed":
        return {"type": JOB_COMPLETED}
    if aborted or qemu_status in ("cancelling", "cancelled"):
        return {"type": JOB_CANCELLED}
    return {"type": JOB_FAILED, "errmsg": "libvirt's migration job ended without completing"}


# virDomainState / reasons (libvirt-domain.h)
RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = 1, 2, 3, 4, 5, 6, 7
PAUSED_MIGRATION, PAUSED_POSTCOPY, PAUSED_POSTCOPY_FAILED = 2, 12, 13


def status_reply(state: int, reason: int, *, incoming: bool, migrated: bool) -> dict[str, Any]:
    """The ``query-status`` reply for libvirt's ``dom.state()``. ``incoming``: this domain
    was started by an incoming migration not yet finished; ``migrated``: QEMU said its
    outgoing migration completed."""
    if state in (RUNNING, BLOCKED):
        return {"status": "running", "running": True}
    if state == PAUSED:
        if incoming:
            word = "inmigrate"
        elif migrated or reason in (PAUSED_POSTCOPY, PAUSED_POSTCOPY_FAILED):
            word = "postmigrate"
        elif reason == PAUSED_MIGRATION:
            word = "finish-migrate"
        else:
            word = "paused"
        return {"status": word, "running": False}
    stopped = {SHUTDOWN: "shutdown", SHUTOFF: "shutdown", CRASHED: "guest-panicked", PMSUSPENDED: "suspended"}
    return {"status": stopped.get(state, "unknown"), "running": False}


_BLOCK_JOB_TYPES = {1: "stream", 2: "mirror", 3: "commit", 4: "commit", 5: "backup"}


def block_job(disk: str, info: Mapping[str, Any]) -> dict[str, Any] | None:
    """One ``query-block-jobs`` entry from ``dom.blockJobInfo(disk, BANDWIDTH_BYTES)``
    (``{}``: no job on that disk)."""
    if not info:
        return None
    cur, end = int(info.get("cur", 0)), int(info.get("end", 0))
    kind = _BLOCK_JOB_TYPES.get(int(info.get("type", 0)), "unknown")
    ready = kind in ("mirror", "commit") and end > 0 and cur == end
    return {"device": disk, "type": kind, "len": end, "offset": cur, "speed": int(info.get("bandwidth", 0)),
            "busy": False, "paused": False, "io-status": "ok", "ready": ready,
            "status": "ready" if ready else "running"}


# QEMU's events about block jobs: their "device" (BLOCK_JOB_*) or "id" (JOB_STATUS_CHANGE)
# is libvirt's job name, where blockJobInfo() names the disk by its target.
_JOB_EVENTS = ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_READY", "BLOCK_JOB_ERROR",
               "BLOCK_JOB_PENDING", "JOB_STATUS_CHANGE")


def job_names(disks: list[tuple[str, str]]) -> dict[str, str]:
    """QEMU's job name -> the disk target (vda), from (target, alias) pairs of the domain
    XML: libvirt names a disk's job ``drive-ALIAS`` (its mirror for a storage migration, a
    copy, a commit), the alias alone in older releases."""
    names = {}
    for target, alias in disks:
        if alias:
            names[f"drive-{alias}"] = names[alias] = target
    return names


def job_event_data(event: str, data: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``data`` of a QEMU event with a block job named by its disk, as the polls name it (one
    job, one row: not QEMU's name beside libvirt's)."""
    if event not in _JOB_EVENTS:
        return data
    key = "id" if event == "JOB_STATUS_CHANGE" else "device"
    name = data.get(key)
    return {**data, key: names[name]} if isinstance(name, str) and name in names else data


def parameters_reply(downtime_ms: int | None, speed_mib_s: int | None) -> dict[str, Any]:
    """``query-migrate-parameters`` from migrateGetMaxDowntime / migrateGetMaxSpeed."""
    reply: dict[str, Any] = {}
    if downtime_ms is not None:
        reply["downtime-limit"] = downtime_ms
    if speed_mib_s is not None:
        reply["max-bandwidth"] = 0 if speed_mib_s >= UNLIMITED_MIB_S else speed_mib_s * MiB
    return reply


_DIRTY_STATUS = {0: "unstarted", 1: "measuring", 2: "measured"}


def dirty_rate_reply(record: Mapping[str, Any]) -> dict[str, Any]:
    """``query-dirty-rate`` from getDomainStats' ``dirtyrate.*`` fields."""
    reply: dict[str, Any] = {"status": _DIRTY_STATUS.get(int(record.get("dirtyrate.calc_status", 0)), "unstarted")}
    if "dirtyrate.megabytes_per_second" in record:
        reply["dirty-rate"] = record["dirtyrate.megabytes_per_second"]
    if "dirtyrate.calc_start_time" in record:
        reply["start-time"] = record["dirtyrate.calc_start_time"]
    if "dirtyrate.calc_period" in record:
        reply["calc-time"] = record["dirtyrate.calc_period"]
    return reply
