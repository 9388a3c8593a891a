"""VmState: everything migtui knows about one monitor's QEMU, folded from events and polls.

Pure and cheap: no I/O and no clock. Every `apply_*` takes the caller's `now`, which
must be wall-clock seconds (`time.time()`), because QMP event timestamps are QEMU's
wall clock and both end up in the same `*_since` fields. Each `apply_*` returns
whether anything a user can see changed, so the UI can skip a repaint.

Events are applied at once; the next poll carries fresher numbers and overwrites
them, with two exceptions seen on real QEMU: a reply without `status` never erases
a status an event told us, and the first reply after a MIGRATION event is ignored
if its status is older than the event's (it was answered before the event was sent:
recorded QEMU 7.2 answers a query-migrate pipelined behind `migrate` with "setup"
after it has already sent the "active" event).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from migtui.model.blockjobs import BlockJob
from migtui.model.capabilities import Capabilities
from migtui.model.coerce import opt_int, opt_str
from migtui.model.dirtyrate import DirtyRateInfo
from migtui.model.events import QmpEvent
from migtui.model.history import DEFAULT_CAPACITY, History, Sample
from migtui.model.migration import FINISHED_STATUSES, RUNNING_STATUSES, MigrationInfo
from migtui.model.passes import PassLog
from migtui.model.runstate import RunState

EVENT_LOG_SIZE = 500
STATUS_LOG_SIZE = 100
# A poll that still lists a job an event just ended was sent before the job ended.
STALE_JOB_POLL_S = 5.0

# Armed: QEMU stops the guest before switchover and waits (pause-before-switchover), and
# says so at once with a MIGRATION event (events). One without the other is not armed.
ARM_CAPABILITIES: tuple[str, ...] = ("events", "pause-before-switchover")


def is_armed(capabilities: Mapping[str, bool]) -> bool:
    """Whether ``query-migrate-capabilities`` (name -> on) has every ARM_CAPABILITIES on."""
    return all(capabilities.get(name) is True for name in ARM_CAPABILITIES)


def can_be_armed(capabilities: Mapping[str, bool]) -> bool:
    """Whether this QEMU lists every ARM_CAPABILITIES (on or off)."""
    return all(name in capabilities for name in ARM_CAPABILITIES)


# Order of MigrationStatus within one migration, to spot a poll older than an event.
# Statuses that can follow each other both ways (the postcopy ones) share a rank.
_STATUS_ORDER = {
    "none": 0, "setup": 1, "wait-unplug": 2, "active": 3, "pre-switchover": 4,
    "device": 5, "postcopy-active": 6, "postcopy-paused": 6, "postcopy-recover-setup": 6,
    "postcopy-recover": 6, "colo": 6, "cancelling": 7, "completed": 8, "failed": 8,
    "cancelled": 8,
}


@dataclass(frozen=True)
class StatusChange:
    time: float
    status: str
    source: str  # "event" or "poll"
    # A poll's: when it was asked. QEMU's answer describes a moment between ``asked`` and
    # ``time`` (a busy machine can put 100 ms between them), so a bound uses the side it needs.
    asked: float | None = None

    @property
    def not_after(self) -> float:
        """A time at or before the moment this status was true in QEMU."""
        return self.time if self.asked is None else self.asked


class VmState:
    def __init__(self, history_capacity: int = DEFAULT_CAPACITY) -> None:
        self.migration = MigrationInfo()
        self.migration_asked: float | None = None  # when the query behind ``migration`` was sent
        self.migration_status = "none"
        self.status_since: float | None = None
        self.status_changes: deque[StatusChange] = deque(maxlen=STATUS_LOG_SIZE)
        self.pass_number: int | None = None
        self.pre_switchover_since: float | None = None
        # The pause began after this (wall clock), known from outside QEMU's status: libvirt's
        # events on a read-only connection, which gets none of QEMU's (PauseClock's earliest).
        self.pause_began_after: float | None = None
        self.final_downtime_ms: int | None = None
        self.run_state: RunState | None = None
        # Seen in "inmigrate": a destination, whose query-migrate never has RAM figures.
        self.incoming_side = False
        self.stopped_since: float | None = None
        self.block_jobs: dict[str, BlockJob] = {}
        self.capabilities = Capabilities()
        self.dirty_rate: DirtyRateInfo | None = None
        self.history = History(history_capacity)
        self.passes = PassLog()  # the current migration's passes (the convergence advisor's evidence)
        self.events: deque[QmpEvent] = deque(maxlen=EVENT_LOG_SIZE)
        self._ended_at: dict[str, float] = {}  # job id -> `now` when an event ended it
        self._since_source = "poll"
        self._event_guard = False  # the next poll may predate the last MIGRATION event

    # --- derived ---------------------------------------------------------

    @property
    def armed(self) -> bool:
        """QEMU will stop in pre-switchover and tell us at once (:func:`is_armed`)."""
        return is_armed(self.capabilities)

    @property
    def running(self) -> bool | None:
        return self.run_state.running if self.run_state else None

    @property
    def in_pre_switchover(self) -> bool:
        return self.migration_status == "pre-switchover"

    @property
    def event_guard(self) -> bool:
        """The next query-migrate may predate the last MIGRATION event (and be dropped)."""
        return self._event_guard

    # --- reducers --------------------------------------------------------

    def apply_event(self, ev: QmpEvent, now: float) -> bool:
        self.events.append(ev)  # the event log is visible: always a change
        at = ev.timestamp if ev.timestamp is not None else now
        data = ev.data
        name = ev.name
        if name == "MIGRATION":
            status = opt_str(data.get("status"))
            if status and self._set_status(status, at, "event"):
                self._event_guard = True
        elif name == "MIGRATION_PASS":
            number = opt_int(data.get("pass"))
            if number is not None:
                self.pass_number = number
                self.passes.on_pass_event(number, at)
        elif name == "STOP":
            if self.stopped_since is None:
                self.stopped_since = at
            # Provisional until the next query-status names the exact RunState.
            if self.run_state is None or self.run_state.running:
                self.run_state = RunState(status="paused", running=False)
        elif name == "RESUME":
            self.stopped_since = None
            self.run_state = RunState(status="running", running=True)
        elif name.startswith("BLOCK_JOB_") or name == "JOB_STATUS_CHANGE":
            self._apply_job_event(name, data, now)
        return True

    def apply_migration(self, info: MigrationInfo, now: float, asked: float | None = None) -> bool:
        """``asked``: when the query-migrate was sent (its figures are from a moment
        between ``asked`` and ``now``)."""
        if self._older_than_event(info.status):
            return False
        changed = info != self.migration
        self.migration = info
        self.migration_asked = now if asked is None else min(asked, now)
        if info.status != "none" or self.migration_status == "none":
            changed |= self._set_status(info.status, now, "poll", asked)
        if info.pass_number is not None and (self.pass_number is None or info.pass_number > self.pass_number):
            self.pass_number = info.pass_number
        if info.status == "completed" and info.downtime is not None:
            self.final_downtime_ms = info.downtime
        self.passes.on_migrate(info, now, asked)
        if info.is_running and info.ram is not None:
            self.history.append(Sample(now, info.dirty_rate_bytes_per_s, info.throughput_bytes_per_s))
            changed = True
        return changed

    def apply_run_state(self, rs: RunState, now: float) -> bool:
        changed = rs != self.run_state
        self.run_state = rs
        self.incoming_side |= rs.incoming
        if rs.running:
            changed |= self.stopped_since is not None
            self.stopped_since = None
        elif self.stopped_since is None:
            self.stopped_since = now  # first seen stopped; a STOP event would be exact
            changed = True
        return changed

    def apply_block_jobs(self, jobs: Iterable[BlockJob], now: float) -> bool:
        fresh: dict[str, BlockJob] = {}
        for job in jobs:
            old = self.block_jobs.get(job.device)
            ended_at = self._ended_at.get(job.device)
            if old is not None and old.ended is not None and ended_at is not None:
                if now - ended_at < STALE_JOB_POLL_S:
                    fresh[job.device] = old  # the poll predates the end event
                    continue
                del self._ended_at[job.device]  # long after: a new job reusing the id
            fresh[job.device] = job
        # Jobs that ended disappear from query-block-jobs (auto-dismiss): keep showing them.
        for job_id, old in self.block_jobs.items():
            if job_id not in fresh and old.is_finished:
                fresh[job_id] = old
        changed = fresh != self.block_jobs
        self.block_jobs = fresh
        return changed

    def apply_capabilities(self, caps: Capabilities) -> bool:
        changed = caps != self.capabilities
        self.capabilities = caps
        return changed

    def apply_dirty_rate(self, info: DirtyRateInfo, now: float) -> bool:
        previous = self.dirty_rate
        changed = info != previous
        self.dirty_rate = info
        rate = info.bytes_per_s
        new_measurement = changed and (previous is None or previous.start_time != info.start_time
                                       or not previous.measured)
        # Outside a migration a measurement is the only dirty-rate figure for the chart.
        if rate is not None and new_measurement and not self.migration.is_running:
            self.history.append(Sample(now, rate, None))
        return changed

    def clear_finished_jobs(self) -> bool:
        finished = [job_id for job_id, job in self.block_jobs.items() if job.is_finished]
        for job_id in finished:
            del self.block_jobs[job_id]
            self._ended_at.pop(job_id, None)
        return bool(finished)

    # --- internals -------------------------------------------------------

    def _older_than_event(self, status: str) -> bool:
        guarded, self._event_guard = self._event_guard, False
        if not guarded:
            return False
        new, current = _STATUS_ORDER.get(status), _STATUS_ORDER.get(self.migration_status)
        return new is not None and current is not None and new < current

    def _set_status(self, status: str, at: float, source: str, asked: float | None = None) -> bool:
        if status == self.migration_status:
            # A poll saw the change first; QEMU's event time is the exact start.
            if source == "event" and self._since_source == "poll":
                if self.status_since is None or at < self.status_since:
                    self.status_since = at
                self._since_source = "event"
            return False
        old = self.migration_status
        if status in RUNNING_STATUSES and (old == "none" or old in FINISHED_STATUSES):
            self._new_migration()
        self.migration_status = status
        self.status_since = at
        self._since_source = source
        self.status_changes.append(StatusChange(at, status, source, asked))
        self.pre_switchover_since = at if status == "pre-switchover" else None
        return True

    def _new_migration(self) -> None:
        self.pass_number = None
        self.final_downtime_ms = None
        self.pre_switchover_since = None
        self.pause_began_after = None
        self.passes.reset()
        self.dirty_rate = None  # a calc-dirty-rate taken before this migration is not news about it
        self.clear_finished_jobs()

    def _apply_job_event(self, name: str, data: Mapping[str, Any], now: float) -> None:
        job_id = opt_str(data.get("device")) or opt_str(data.get("id"))
        if not job_id:
            return
        job = self.block_jobs.get(job_id) or BlockJob(device=job_id)
        updates: dict[str, Any] = {}  # BlockJob fields of several types
        for key, attr in (("len", "len"), ("offset", "offset"), ("speed", "speed")):
            value = opt_int(data.get(key))
            if value is not None:
                updates[attr] = value
        if (job_type := opt_str(data.get("type"))) is not None:
            updates["type"] = job_type
        if name == "JOB_STATUS_CHANGE":
            status = opt_str(data.get("status"))
            if status is None:
                return
            if status == "created" and job.ended is not None:
                job = BlockJob(device=job_id)  # a new job reusing the id
                self._ended_at.pop(job_id, None)
            updates["status"] = status
        elif name == "BLOCK_JOB_READY":
            updates["ready"] = True
        elif name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
            updates["ended"] = "completed" if name == "BLOCK_JOB_COMPLETED" else "cancelled"
            updates["busy"] = False
            if (error := opt_str(data.get("error"))) is not None:
                updates["error"] = error
                updates["ended"] = "failed"  # COMPLETED with an error: the copy is not whole
            self._ended_at[job_id] = now
        elif name == "BLOCK_JOB_ERROR":
            operation = opt_str(data.get("operation")) or "I/O"
            action = opt_str(data.get("action")) or "?"
            updates["error"] = f"{operation} error (action: {action})"
        else:
            return  # e.g. BLOCK_JOB_PENDING: nothing shown
        self.block_jobs[job_id] = replace(job, **updates)
