"""Switchover: finish the mirrors and continue a migration paused in pre-switchover, or abort it.

One :class:`Switchover` per source pause. ``resume()``: gracefully cancel each mirror
(``block-job-cancel force=false``: the destination copy ends consistent, the source
keeps its own), wait for BLOCK_JOB_COMPLETED from the event stream, then
``migrate-continue {state: pre-switchover}`` and follow MIGRATION to the end.
``abort()``: ``migrate_cancel``, force-cancel the mirrors, confirm the guest runs.

Every millisecond here is guest downtime, so the resume path only awaits events
and command replies: no sleeps, no polls. Progress is a list of :class:`Step`
plus progress callbacks (the TUI dialog renders them). QMP errors end an action
with a one-line reason in the :class:`SwitchoverResult`; nothing raises to the
caller except ReadOnlyRefused (before anything is sent).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..errors import MigtuiError
from ..model.blockjobs import BlockJob, parse_block_jobs
from ..model.events import QmpEvent
from ..model.runstate import RunState
from .arm import refuse_read_only
from .checklist import MIRROR, mirror_check, source_check
from .session import CONNECTION, MIGRATION, MonitorSession

log = logging.getLogger("migtui.switchover")

T = TypeVar("T")

RESUME_DESCRIPTION = (
    "finish each disk mirror gracefully (the destination's copy becomes final), then let QEMU"
    " send the device state: the destination takes over"
)
ABORT_DESCRIPTION = (
    "cancel the migration and force-cancel the mirrors: the source guest runs again, the"
    " destination is discarded"
)

# Statuses a migration ends in after migrate-continue (postcopy-active: the destination runs).
END_STATUSES = frozenset({"completed", "postcopy-active", "failed", "cancelled"})
# Left pre-switchover, but not yet clear whether towards completion or cancellation.
PASSING_STATUSES = frozenset({"device", "wait-unplug"})
# A migration migrate_cancel can still stop before the destination takes over.
ABORTABLE_STATUSES = frozenset({"setup", "active", "pre-switchover", "wait-unplug"})
ABORT_WAIT_S = 15.0  # force-cancelled mirrors and the guest's RESUME come within ms
DESTINATION_WAIT_S = 10.0


class StepState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Step:
    key: str
    label: str
    state: StepState = StepState.PENDING
    started: float | None = None  # wall clock, comparable with QEMU's event timestamps
    finished: float | None = None
    detail: str = ""

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


class Outcome(str, enum.Enum):
    COMPLETED = "completed"  # source completed: the destination has taken over
    POSTCOPY = "postcopy-active"  # the destination runs, pages still follow
    FAILED = "failed"  # QEMU's migration failed after migrate-continue
    STOPPED = "stopped"  # not continued (a mirror failed, a check failed): abort is offered
    ABORTED = "aborted"  # migration cancelled, the source guest runs again
    OTHER_CLIENT = "other-client"  # another QMP client continued or cancelled it
    NOT_PAUSED = "not-paused"  # nothing to do in this migration status
    ERROR = "error"  # a QMP command failed or the monitor went away


@dataclass(frozen=True)
class SwitchoverResult:
    action: str  # "resume", "abort" or "watch"
    outcome: Outcome
    reason: str  # one line
    downtime_ms: int | None = None  # query-migrate `downtime` after completion
    pause_ms: float | None = None  # QEMU timestamps: MIGRATION pre-switchover -> device
    abort_offered: bool = False
    source_running: bool | None = None
    destination_running: bool | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.COMPLETED, Outcome.POSTCOPY, Outcome.ABORTED)

    @property
    def final(self) -> bool:
        """Nothing more can be done in this pause (otherwise abort is still possible)."""
        return self.outcome is not Outcome.STOPPED and not self.abort_offered


class _Stop(Exception):
    """Ends an action early with a result."""

    def __init__(self, result: SwitchoverResult) -> None:
        super().__init__(result.reason)
        self.result = result


ProgressListener = Callable[["Switchover"], None]


class Switchover:
    """The switchover of one source paused in pre-switchover (and its destination, if watched)."""

    def __init__(
        self,
        source: MonitorSession,
        destination: MonitorSession | None = None,
        *,
        on_progress: ProgressListener | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.destination = destination
        self.name = source.name
        self.clock = clock
        self.steps: list[Step] = []
        self.action: str | None = None  # "resume" or "abort" once one started
        self.actor: str | None = None  # who started it ("view tui on /dev/pts/3", "auto-resume", ...)
        self.result: SwitchoverResult | None = None
        self.pause_since = source.state.pre_switchover_since
        self.device_at: float | None = None  # QEMU timestamp of MIGRATION device
        self._was_paused = source.state.in_pre_switchover
        self._sent_continue = False
        self._sent_cancel = False
        self._listeners: list[ProgressListener] = [on_progress] if on_progress else []
        self._resume_task: asyncio.Task[SwitchoverResult] | None = None
        self._abort_task: asyncio.Task[SwitchoverResult] | None = None
        self._interrupt: asyncio.Future[SwitchoverResult] | None = None
        self._pending: dict[str, Step] = {}  # mirror id -> its step, while finishing
        self._mirrors: asyncio.Future[None] | None = None
        self._cont_step: Step | None = None
        self._continue_task: asyncio.Task[Any] | None = None
        self._ended_jobs: dict[str, QmpEvent] = {}
        self._resumed = False  # a RESUME event since abort started
        self._unsubscribe = [
            source.add_event_listener(self._on_event),
            source.add_change_listener(self._on_change),
        ]

    # ------------------------------------------------------------------ observing

    def add_progress_listener(self, cb: ProgressListener) -> Callable[[], None]:
        """``cb(switchover)`` after every step change and when a result is set."""
        self._listeners.append(cb)
        return lambda: self._listeners.remove(cb) if cb in self._listeners else None

    @property
    def running(self) -> bool:
        return any(t is not None and not t.done() for t in (self._resume_task, self._abort_task))

    @property
    def finished(self) -> bool:
        """Nothing more can happen here (a STOPPED resume still offers abort)."""
        return self.result is not None and self.result.final and not self.running

    @property
    def can_abort(self) -> bool:
        return (
            not self._sent_continue
            and self._abort_task is None
            and (self.result is None or not self.result.final)
        )

    def close(self) -> None:
        """Stop listening to the session (the registry does it when a new pause starts)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def _progress(self) -> None:
        for cb in list(self._listeners):
            try:
                cb(self)
            except Exception:
                log.exception("%s: progress listener %r failed", self.name, cb)

    def _step(self, step: Step, state: StepState, detail: str | None = None) -> None:
        now = self.clock()
        if state is StepState.RUNNING and step.started is None:
            step.started = now
        if state in (StepState.DONE, StepState.FAILED, StepState.SKIPPED):
            step.started = step.started if step.started is not None else now
            step.finished = now
        step.state = state
        if detail is not None:
            step.detail = detail
        self._progress()

    def _finish(self, result: SwitchoverResult) -> SwitchoverResult:
        for step in self.steps:
            if step.state is StepState.RUNNING:
                self._step(step, StepState.FAILED, step.detail or "interrupted")
            elif step.state is StepState.PENDING:
                self._step(step, StepState.SKIPPED)
        self.result = result
        level = logging.INFO if result.ok else logging.WARNING
        log.log(level, "%s: %s %s: %s", self.name, result.action, result.outcome.value, result.reason)
        self._progress()
        return result

    # ------------------------------------------------------------------ input

    def _loop_future(self) -> asyncio.Future[SwitchoverResult]:
        if self._interrupt is None:
            self._interrupt = asyncio.get_running_loop().create_future()
        return self._interrupt

    def _interrupt_with(self, result: SwitchoverResult) -> None:
        fut = self._interrupt
        if fut is not None and not fut.done():
            fut.set_result(result)

    def _on_event(self, ev: QmpEvent) -> None:
        name = ev.name
        if name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
            job = str(ev.data.get("device", ""))
            self._ended_jobs[job] = ev
            if job in self._pending:
                self._mirror_ended(job, ev)
        elif name == "BLOCK_JOB_ERROR":
            job = str(ev.data.get("device", ""))
            # action "report" ends the job at once (COMPLETED with error follows);
            # "stop" pauses it forever: fail now rather than wait.
            if job in self._pending and ev.data.get("action") == "stop":
                op = ev.data.get("operation", "I/O")
                self._mirror_failed(job, f"{op} error, the job stopped")
        elif name == "MIGRATION":
            if ev.data.get("status") == "device" and self.device_at is None:
                self.device_at = ev.timestamp
        elif name == "RESUME":
            self._resumed = True

    def _on_change(self, session: MonitorSession, kinds: frozenset[str]) -> None:
        if CONNECTION in kinds and not session.connected and self.running:
            self._interrupt_with(self._error(
                f"{self.name}: monitor connection lost: check the migration state once it is back",
                abort_offered=not self._sent_continue and not self._sent_cancel))
        if MIGRATION not in kinds:
            return
        status = session.state.migration_status
        if status == "pre-switchover":
            self._was_paused = True
            if self.pause_since is None:
                self.pause_since = session.state.pre_switchover_since
            return
        if not self._was_paused or self._sent_continue or self._sent_cancel:
            return
        if self.result is not None and self.result.final:
            return
        if status in PASSING_STATUSES:
            # Not conclusive: a migrate_cancel that races the end of the pause passes
            # through "device" too (QEMU 7.2). The next status tells which it was.
            return
        # The pause ended without us: another QMP client (or QEMU itself) moved on.
        result = self._other_client(status)
        if self.running:
            self._interrupt_with(result)
        else:
            self._finish(result)
            self.close()

    def _other_client(self, status: str) -> SwitchoverResult:
        if status in ("cancelling", "cancelled"):
            what = "another client cancelled the migration"
        elif status == "failed":
            desc = self.source.state.migration.error_desc
            what = "the migration failed" + (f" ({desc})" if desc else "")
        else:
            what = "another client continued the migration"
        return SwitchoverResult(
            "watch", Outcome.OTHER_CLIENT, f"{self.name}: {what} (status now {status}): nothing left to do"
        )

    def _error(self, reason: str, *, abort_offered: bool = False) -> SwitchoverResult:
        return SwitchoverResult(self.action or "watch", Outcome.ERROR, reason, abort_offered=abort_offered)

    # ------------------------------------------------------------------ waiting

    async def _wait(self, fut: asyncio.Future[T]) -> T:
        """``fut``'s result, unless an interruption (other client, abort, lost link) comes first."""
        interrupt = self._loop_future()
        if not fut.done():
            await asyncio.wait((fut, interrupt), return_when=asyncio.FIRST_COMPLETED)
        if fut.done():
            return fut.result()
        raise _Stop(interrupt.result())

    def _check_interrupt(self) -> None:
        interrupt = self._loop_future()
        if interrupt.done():
            raise _Stop(interrupt.result())

    async def _execute(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        monitor = self.source.monitor
        assert monitor is not None
        return await monitor.execute(cmd, args)

    def _wait_status(self, statuses: Iterable[str]) -> asyncio.Future[str]:
        """A future for the source's migration status reaching one of ``statuses``."""
        wanted = frozenset(statuses)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        remove: Callable[[], None] = lambda: None

        def check(session: MonitorSession, kinds: frozenset[str]) -> None:
            status = session.state.migration_status
            if status in wanted and not fut.done():
                fut.set_result(status)
                remove()

        remove = self.source.add_change_listener(check)
        fut.add_done_callback(lambda _f: remove())
        check(self.source, frozenset({MIGRATION}))
        return fut

    # ------------------------------------------------------------------ resume

    async def resume(self, jobs: Iterable[BlockJob] | None = None) -> SwitchoverResult:
        """Finish the mirrors, continue, follow to the end. Runs once: later calls await
        the same run and get the same result, sending nothing.

        ``jobs``: a fresh ``query-block-jobs`` the caller already judged (``--auto-resume``),
        saving the check's round trip. Raises ReadOnlyRefused before sending anything.
        """
        return await asyncio.shield(self.start_resume(jobs))

    def start_resume(self, jobs: Iterable[BlockJob] | None = None) -> asyncio.Task[SwitchoverResult]:
        """Like :meth:`resume` but returns the (single) task at once."""
        assert self.source.monitor is not None, "a replayed session cannot resume"
        refuse_read_only(self.source.monitor, "resume the switchover")
        if self._resume_task is None:
            self._loop_future()
            self._resume_task = asyncio.create_task(
                self._run("resume", self._resume(None if jobs is None else list(jobs))),
                name=f"switchover-resume-{self.name}",
            )
        return self._resume_task

    async def _run(self, action: str, body: Any) -> SwitchoverResult:
        """Run one action; every failure becomes a result with a one-line reason."""
        if self.result is not None and self.result.final:
            body.close()
            return self.result  # the pause already ended (another client, or an abort)
        self.action = action
        try:
            result = await body
        except _Stop as stop:
            result = stop.result
        except MigtuiError as err:
            result = self._error(str(err), abort_offered=action == "resume" and not self._sent_continue)
        except Exception as err:  # a bug must not leave the dialog hanging with a traceback
            log.exception("%s: %s failed", self.name, action)
            result = self._error(f"{self.name}: {action} failed unexpectedly: {err.__class__.__name__}: {err}")
        if result.action != action:
            result = replace(result, action=action)
        self._finish(result)
        if result.final:
            self.close()  # nothing more will happen: stop listening
        return result

    async def _resume(self, jobs: list[BlockJob] | None) -> SwitchoverResult:
        name = self.name
        state = self.source.state
        check = Step("check", "Check the source and its mirrors")
        self.steps = [check]
        self._step(check, StepState.RUNNING)
        if not state.in_pre_switchover:
            self._step(check, StepState.FAILED, f"migration status {state.migration_status}")
            return SwitchoverResult("resume", Outcome.NOT_PAUSED,
                                    f"{name}: not paused in pre-switchover (status {state.migration_status}):"
                                    " nothing to resume")
        if jobs is None:
            reply = await self._execute("query-block-jobs")
            self.source.feed("query-block-jobs", reply)
            jobs = parse_block_jobs(reply)
            detail = "fresh query-block-jobs"
        else:
            detail = "checked by auto-resume"
        self._check_interrupt()
        mirrors = self._mirrors_to_finish(jobs)
        checks = [source_check(state)] + [mirror_check(job, require_sync=False) for job in mirrors]
        bad = [c for c in checks if not c.ok]
        if bad:
            reason = "; ".join(f"{c.name}: {c.detail}" for c in bad)
            self._step(check, StepState.FAILED, reason)
            return self._stopped(f"{name}: {reason}")
        self._step(check, StepState.DONE, f"{detail}: {len(mirrors)} mirror(s) ready")

        steps = {job.device: Step(f"mirror:{job.device}", f"Finish mirror {job.device} (block-job-cancel)")
                 for job in mirrors}
        cont = Step("continue", "Continue the migration (migrate-continue)")
        complete = Step("complete", "Wait for the migration to complete")
        self.steps += [*steps.values(), cont, complete]
        dst_step: Step | None = None
        if self.destination is not None:
            dst_step = Step("destination", f"Destination {self.destination.name} runs")
            self.steps.append(dst_step)
        self._progress()

        ended = self._wait_status(END_STATUSES)
        try:
            if steps:
                continued = await self._finish_mirrors(steps, cont)
            else:
                self._check_interrupt()
                continued = self._send_continue(cont)
            try:
                await continued
            except MigtuiError as err:
                self._sent_continue = False
                status = state.migration_status
                if status != "pre-switchover":
                    raise _Stop(self._other_client(status)) from None
                self._step(cont, StepState.FAILED, str(err))
                return self._stopped(f"{name}: migrate-continue failed: {err}")
            self._step(cont, StepState.DONE)
            self._step(complete, StepState.RUNNING)
            status = await self._wait(ended)
        finally:
            ended.cancel()
        return await self._conclude(status, complete, dst_step)

    def _mirrors_to_finish(self, jobs: list[BlockJob]) -> list[BlockJob]:
        """Mirrors of this migration: the fresh list, plus any that ended since it started
        (kept in the state from their events) so a failed mirror blocks the resume."""
        mirrors = {job.device: job for job in jobs if job.type == MIRROR}
        for job in self.source.state.block_jobs.values():
            if job.type == MIRROR and job.device not in mirrors and job.ended is not None:
                if job.ended != "completed" or job.error:
                    mirrors[job.device] = job
        return sorted(mirrors.values(), key=lambda j: j.device)

    def _stopped(self, reason: str) -> SwitchoverResult:
        return SwitchoverResult(
            "resume", Outcome.STOPPED,
            f"{reason}: migrate-continue not sent, the guest stays stopped; abort to let the source run again",
            abort_offered=True,
        )

    def _send_continue(self, step: Step) -> asyncio.Task[Any]:
        self._sent_continue = True
        task = asyncio.ensure_future(self._execute("migrate-continue", {"state": "pre-switchover"}))
        self._step(step, StepState.RUNNING)
        return task

    async def _finish_mirrors(self, steps: dict[str, Step], cont: Step) -> asyncio.Task[Any]:
        """Gracefully cancel every mirror at once. The last BLOCK_JOB_COMPLETED sends
        migrate-continue from the event callback itself (no task hop: it is downtime);
        returns that command's task."""
        loop = asyncio.get_running_loop()
        self._mirrors = loop.create_future()
        self._cont_step = cont
        self._pending = dict(steps)  # registered before sending: the event can beat the reply
        for step in steps.values():
            step.state, step.started = StepState.RUNNING, self.clock()
        self._progress()
        replies = await asyncio.gather(
            *(self._execute("block-job-cancel", {"device": job, "force": False}) for job in steps),
            return_exceptions=True,
        )
        for job, reply in zip(steps, replies):
            if isinstance(reply, BaseException) and job in self._pending:
                if isinstance(reply, asyncio.CancelledError):
                    raise reply
                self._mirror_failed(job, f"block-job-cancel failed: {_line(reply)}")
        try:
            await self._wait(self._mirrors)
        except MigtuiError as err:
            failed = next((s for s in steps.values() if s.state is StepState.FAILED), None)
            job = failed.key.partition(":")[2] if failed else "?"
            raise _Stop(self._stopped(f"{self.name}: mirror {job} {err}")) from None
        finally:
            self._pending = {}
        if self._continue_task is None:  # the pause ended without us: the reason follows
            raise _Stop(await self._loop_future())
        return self._continue_task

    def _mirror_ended(self, job: str, ev: QmpEvent) -> None:
        error = ev.data.get("error")
        if ev.name == "BLOCK_JOB_CANCELLED":
            self._mirror_failed(job, "was cancelled instead of completing (its copy is incomplete)")
        elif error:
            self._mirror_failed(job, f"ended with an error ({error})")
        else:
            step = self._pending.pop(job)
            last = not self._pending and self._mirrors is not None and not self._mirrors.done()
            interrupted = self._interrupt is not None and self._interrupt.done()
            # Another client may have moved on meanwhile: then migrate-continue would only fail.
            if last and not interrupted and self._cont_step is not None and self.source.state.in_pre_switchover:
                self._continue_task = self._send_continue(self._cont_step)  # before anything else
            self._step(step, StepState.DONE, "completed: the destination's copy is final")
            if last:
                self._mirrors.set_result(None)  # type: ignore[union-attr]

    def _mirror_failed(self, job: str, why: str) -> None:
        step = self._pending.pop(job, None)
        if step is not None:
            self._step(step, StepState.FAILED, why)
        if self._mirrors is not None and not self._mirrors.done():
            self._mirrors.set_exception(MigtuiError(why))

    async def _conclude(self, status: str, complete: Step, dst_step: Step | None) -> SwitchoverResult:
        name = self.name
        info_reply = await self._execute("query-migrate")
        self.source.feed("query-migrate", info_reply)
        info = self.source.state.migration
        pause_ms = self.pause_ms
        if status == "failed":
            why = info.error_desc or "no reason given"
            self._step(complete, StepState.FAILED, f"failed: {why}")
            return SwitchoverResult("resume", Outcome.FAILED, f"{name}: the migration failed after"
                                    f" migrate-continue: {why}", pause_ms=pause_ms)
        if status == "cancelled":
            self._step(complete, StepState.FAILED, "cancelled")
            return SwitchoverResult("resume", Outcome.OTHER_CLIENT, f"{name}: another client cancelled"
                                    " the migration after migrate-continue", pause_ms=pause_ms)
        downtime = info.downtime
        self._step(complete, StepState.DONE, status + (f", downtime {downtime} ms" if downtime is not None else ""))
        dst_running = await self._destination(dst_step) if dst_step is not None else None
        outcome = Outcome.COMPLETED if status == "completed" else Outcome.POSTCOPY
        reason = f"{name}: migration {status}"
        if downtime is not None:
            reason += f", downtime {downtime} ms"
        if pause_ms is not None:
            reason += f" (paused {pause_ms:.1f} ms before switchover)"
        return SwitchoverResult("resume", outcome, reason, downtime_ms=downtime, pause_ms=pause_ms,
                                source_running=False, destination_running=dst_running)

    @property
    def pause_ms(self) -> float | None:
        """QEMU's own timestamps: MIGRATION pre-switchover -> MIGRATION device.

        None when the pause was first seen by a poll (migtui started during it):
        then only QEMU's `downtime` is exact.
        """
        if self.pause_since is None or self.device_at is None or not self._pause_from_event():
            return None
        return (self.device_at - self.pause_since) * 1000

    def _pause_from_event(self) -> bool:
        for change in reversed(self.source.state.status_changes):
            if change.status == "pre-switchover":
                return change.source == "event" and change.time == self.pause_since
        return False

    async def _destination(self, step: Step) -> bool | None:
        """Wait (briefly) until the destination reports it runs; never fails the resume."""
        dst = self.destination
        assert dst is not None
        self._step(step, StepState.RUNNING)
        if not dst.connected:
            self._step(step, StepState.SKIPPED, "monitor not connected")
            return None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def check(session: MonitorSession, _kinds: frozenset[str]) -> None:
            st = session.state
            if (st.running or st.migration_status in ("completed", "failed")) and not fut.done():
                fut.set_result(None)

        remove = dst.add_change_listener(check)
        try:
            check(dst, frozenset())
            if not fut.done():
                dst.poll_soon()
            async with asyncio.timeout(DESTINATION_WAIT_S):
                await fut
            if dst.state.running is not True:
                dst.feed("query-status", await dst.monitor.execute("query-status"))  # type: ignore[union-attr]
        except (TimeoutError, MigtuiError) as err:
            self._step(step, StepState.FAILED, _line(err) if isinstance(err, MigtuiError) else "no news in time")
            return None
        finally:
            remove()
        run = dst.state.run_state or RunState()
        if run.running:
            self._step(step, StepState.DONE, "running")
            return True
        self._step(step, StepState.FAILED, f"{run.status} (started with -S? resume it with 'cont')")
        return False

    # ------------------------------------------------------------------ abort

    async def abort(self) -> SwitchoverResult:
        """Cancel the migration, force-cancel the mirrors, confirm the source runs.
        Runs once; interrupts a resume that has not sent migrate-continue yet."""
        return await asyncio.shield(self.start_abort())

    def start_abort(self) -> asyncio.Task[SwitchoverResult]:
        assert self.source.monitor is not None, "a replayed session cannot abort"
        refuse_read_only(self.source.monitor, "abort the migration")
        if self._abort_task is None:
            self._loop_future()
            self._abort_task = asyncio.create_task(self._run_abort(), name=f"switchover-abort-{self.name}")
        return self._abort_task

    async def _run_abort(self) -> SwitchoverResult:
        name = self.name
        if self._sent_continue:
            return SwitchoverResult("abort", Outcome.ERROR, f"{name}: too late to abort: migrate-continue"
                                    " was sent and the destination is taking over")
        resume = self._resume_task
        if resume is not None and not resume.done():
            self._interrupt_with(SwitchoverResult(
                "resume", Outcome.STOPPED, f"{name}: resume interrupted by abort", abort_offered=False))
            await asyncio.gather(resume, return_exceptions=True)
            if self._sent_continue:  # it got there first
                return SwitchoverResult("abort", Outcome.ERROR, f"{name}: too late to abort:"
                                        " migrate-continue was already sent")
        self._interrupt = None  # a fresh one for the abort's own waits
        return await self._run("abort", self._abort())

    async def _abort(self) -> SwitchoverResult:
        name = self.name
        state = self.source.state
        cancel = Step("cancel", "Cancel the migration (migrate_cancel)")
        mirrors = Step("mirrors", "Force-cancel the mirrors (block-job-cancel force)")
        guest = Step("guest", "Source guest runs again")
        self.steps = [cancel, mirrors, guest]
        self._step(cancel, StepState.RUNNING)
        status = state.migration_status
        if status not in ABORTABLE_STATUSES:
            self._step(cancel, StepState.FAILED, f"migration status {status}")
            return SwitchoverResult("abort", Outcome.NOT_PAUSED,
                                    f"{name}: nothing to abort (migration status {status})")
        self._resumed = False
        stopped = self._wait_status(("cancelled", "failed", "completed"))
        try:
            self._sent_cancel = True
            await self._execute("migrate_cancel")
            self._step(cancel, StepState.DONE)
            self._step(mirrors, StepState.RUNNING)
            await self._force_cancel_mirrors(mirrors)
            self._step(guest, StepState.RUNNING, "waiting for RESUME")
            try:
                async with asyncio.timeout(ABORT_WAIT_S):
                    final = await stopped
            except TimeoutError:
                final = state.migration_status
        finally:
            stopped.cancel()
        self.source.feed("query-status", await self._execute("query-status"))
        run = state.run_state or RunState()
        if final == "completed":
            self._step(guest, StepState.FAILED, "the migration completed before the cancel")
            return SwitchoverResult("abort", Outcome.ERROR, f"{name}: too late: the migration completed"
                                    " before migrate_cancel took effect", source_running=run.running)
        if run.running:
            self._step(guest, StepState.DONE, "running (RESUME)" if self._resumed else "running")
            return SwitchoverResult("abort", Outcome.ABORTED, f"{name}: migration cancelled, mirrors"
                                    " cancelled, the source guest runs again", source_running=True)
        self._step(guest, StepState.FAILED, f"QEMU status {run.status}")
        return SwitchoverResult("abort", Outcome.ABORTED, f"{name}: migration cancelled but the source guest"
                                f" is {run.status} (was it running before?): resume it with 'cont'",
                                source_running=False)

    async def _force_cancel_mirrors(self, step: Step) -> None:
        reply = await self._execute("query-block-jobs")
        self.source.feed("query-block-jobs", reply)
        jobs = parse_block_jobs(reply)
        remaining = [job.device for job in jobs if job.type == MIRROR]
        if not remaining:
            self._step(step, StepState.DONE, "none left")
            return
        loop = asyncio.get_running_loop()
        ends = {job: loop.create_future() for job in remaining}

        def on_end(session: MonitorSession, _kinds: frozenset[str]) -> None:
            for job, fut in ends.items():
                if job in self._ended_jobs and not fut.done():
                    fut.set_result(None)

        remove = self.source.add_change_listener(on_end)
        try:
            replies = await asyncio.gather(
                *(self._execute("block-job-cancel", {"device": job, "force": True}) for job in remaining),
                return_exceptions=True,
            )
            errors = [f"{job}: {_line(r)}" for job, r in zip(remaining, replies) if isinstance(r, BaseException)]
            on_end(self.source, frozenset())
            waiting = [fut for job, fut in ends.items() if not fut.done() and
                       not any(e.startswith(f"{job}:") for e in errors)]
            if waiting:
                try:
                    async with asyncio.timeout(ABORT_WAIT_S):
                        await asyncio.gather(*waiting)
                except TimeoutError:
                    errors.append("no BLOCK_JOB_CANCELLED in time")
        finally:
            remove()
            for fut in ends.values():
                fut.cancel()
        if errors:
            self._step(step, StepState.FAILED, "; ".join(errors))
        else:
            self._step(step, StepState.DONE, ", ".join(remaining) + " cancelled")


def _line(err: BaseException) -> str:
    return str(err) if isinstance(err, MigtuiError) else f"{err.__class__.__name__}: {err}"


# ---------------------------------------------------------------------- registry

_current: "weakref.WeakKeyDictionary[MonitorSession, Switchover]" = weakref.WeakKeyDictionary()


def switchover_for(source: MonitorSession, destination: MonitorSession | None = None) -> Switchover:
    """The controller of ``source``'s current pause, shared by the dialog and --auto-resume.

    A new one is made when the source pauses again (a new pre-switchover episode).
    A view's remote session answers with its mirror of the engine's switchover.
    """
    remote = getattr(source, "remote_switchover", None)
    if remote is not None:
        return remote(destination)  # type: ignore[no-any-return]
    existing = _current.get(source)
    since = source.state.pre_switchover_since
    if existing is not None and (existing.running or since is None or existing.pause_since in (None, since)):
        if existing.destination is None and destination is not None:
            existing.destination = destination
        return existing
    if existing is not None:
        existing.close()
    controller = Switchover(source, destination)
    _current[source] = controller
    return controller


def current_switchover(source: MonitorSession) -> Switchover | None:
    remote = getattr(source, "remote_switchover", None)
    if remote is not None:
        return remote()  # type: ignore[no-any-return]
    return _current.get(source)
