"""The pre-switchover checklist: may the storage mirrors be finished and the switchover go on?

Pure: it reads :class:`~migtui.model.vmstate.VmState` snapshots and returns data; no
socket, no clock -- except :func:`fresh_checklist`, the one fresh ``query-block-jobs``
the engine's deadline and ``--auto-resume`` make before judging. The dialog renders it,
``--auto-resume`` resumes only when it passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..format import format_bytes
from ..model.blockjobs import BlockJob, parse_block_jobs
from ..model.checks import Check, Checklist
from ..model.vmstate import VmState

if TYPE_CHECKING:
    from .session import MonitorSession

MIRROR = "mirror"
# What a mirror may still have to copy and pass: QEMU's default mirror buffer (16 in-flight
# 1 MiB slices, block/mirror.c). With the guest stopped nothing new is dirtied, and the
# graceful cancel copies this before it completes; a pause begun while the guest was still
# writing (measured: 16.0 of 16.1 MiB on a loaded machine) would otherwise hold auto-resume.
IN_FLIGHT_BYTES = 16 << 20


def mirror_jobs(state: VmState) -> list[BlockJob]:
    """The source's mirror jobs of this migration, including ones that already ended."""
    return [job for job in state.block_jobs.values() if job.type == MIRROR]


def mirror_check(job: BlockJob, *, require_sync: bool = True) -> Check:
    """Ready, in sync (offset == len, or at most :data:`IN_FLIGHT_BYTES` behind), no
    error, io-status ok, still running.

    ``require_sync=False`` accepts a ready mirror with any writes still to copy: its
    graceful cancel copies them before it completes (an operator's confirmed resume).
    """
    name = f"mirror {job.device}"
    behind = job.remaining
    problems: list[str] = []
    if job.ended is not None:
        problems.append(f"ended ({job.ended})")
    if job.error:
        problems.append(f"error: {job.error}")
    if job.io_status not in (None, "ok"):
        problems.append(f"io-status {job.io_status}")
    if job.ended is None:
        if not job.ready:
            problems.append("not ready (still copying)")
        if require_sync and not job.in_sync and (behind is None or behind > IN_FLIGHT_BYTES):
            problems.append(f"not in sync ({format_bytes(job.offset)} of {format_bytes(job.len)})")
    if problems:
        return Check(name, False, ", ".join(problems))
    if job.ended is None and behind:
        return Check(name, True, f"ready, {format_bytes(behind)} still to copy (its cancel copies it), io ok")
    # Actively synced: a write-blocking mirror (block-job-change, QEMU 8.2+) in lockstep,
    # every guest write reaches the copy before it completes.
    sync = "actively synced" if job.actively_synced else "in sync"
    return Check(name, True, f"ready, {sync} ({format_bytes(job.len)}), io ok")


def mirror_checks(jobs: Iterable[BlockJob]) -> list[Check]:
    checks = [mirror_check(job) for job in sorted(jobs, key=lambda j: j.device)]
    return checks or [Check("mirrors", True, "none: RAM-only migration", info=True)]


def source_check(src: VmState) -> Check:
    status = src.migration_status
    if status == "pre-switchover":
        return Check("source", True, "paused in pre-switchover (guest stopped)")
    return Check("source", False, f"not paused in pre-switchover (migration status {status})")


def destination_check(dst: VmState | None, dst_connected: bool | None, dst_poll_error: str | None = None) -> Check:
    if dst is None or dst_connected is None:
        return Check("destination", True, "not monitored: not checked", info=True)
    if not dst_connected:
        return Check("destination", False, "monitor not connected")
    if dst_poll_error:
        # A hung destination QEMU: what is known of it is old, and a switchover would stall
        # on it with the guest stopped.
        return Check("destination", False, f"not answering its polls ({dst_poll_error})")
    run = dst.run_state
    status = dst.migration_status
    if (run is not None and run.incoming) or status == "active":
        what = run.status if run is not None else "?"
        return Check("destination", True, f"receiving the migration ({what}, migration {status})")
    if run is None and status == "none":
        return Check("destination", False, "state not known yet")
    what = run.status if run is not None else "unknown"
    return Check("destination", False, f"not receiving a migration (run state {what}, migration {status})")


def ram_check(src: VmState) -> Check:
    ram = src.migration.ram
    remaining = ram.remaining if ram is not None else None
    if remaining is None:
        return Check("RAM", True, "remaining unknown", info=True)
    return Check("RAM", True, f"{format_bytes(remaining)} left to send during the pause", info=True)


def checklist(src: VmState, dst: VmState | None = None, dst_connected: bool | None = None,
              dst_poll_error: str | None = None) -> Checklist:
    """Everything that must hold before finishing the mirrors and continuing.

    ``dst``/``dst_connected`` are None when the destination is not monitored.
    """
    checks = [source_check(src), *mirror_checks(mirror_jobs(src))]
    checks += [destination_check(dst, dst_connected, dst_poll_error), ram_check(src)]
    return Checklist(tuple(checks))


def pause_checklist(src: VmState, dst: MonitorSession | None) -> Checklist:
    """The checklist of a source's pause, its paired destination's session as it is now."""
    if dst is None:
        return checklist(src)
    return checklist(src, dst.state, dst.connected, dst.poll_error)


async def fresh_checklist(src: MonitorSession, destination: Callable[[], MonitorSession | None],
                          generation: int) -> tuple[list[BlockJob], Checklist]:
    """One fresh ``query-block-jobs`` on ``src`` (on connection ``generation`` only), folded
    into its state, then the checklist: (the jobs, the checklist). ``destination`` is read
    once the reply is in (one attached meanwhile is checked too). Raises what
    :meth:`MonitorSession.execute` raises; the caller words it."""
    reply = await src.execute("query-block-jobs", generation=generation)
    src.feed("query-block-jobs", reply)
    return parse_block_jobs(reply), pause_checklist(src.state, destination())
