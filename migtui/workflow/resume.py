"""Resume a switchover: check, finish the mirrors, migrate-continue, follow to the end.

Gracefully cancel each mirror (``block-job-cancel force=false``: the destination copy
ends consistent, the source keeps its own), wait for BLOCK_JOB_COMPLETED from the
event stream, then ``migrate-continue {state: pre-switchover}`` -- sent from the last
mirror's event callback itself -- and follow MIGRATION to the end. Every millisecond
here is guest downtime, so it only awaits events and command replies: no sleeps, no
polls. A failed check or mirror stops it before migrate-continue (STOPPED: the guest
stays stopped, abort is offered).

One :class:`Resume` per switchover, run by :class:`~migtui.workflow.switchover.Switchover`,
whose phase it moves along (``model.switchover.MOVES``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..errors import MigtuiError
from ..format import format_ms
from ..model.blockjobs import BlockJob, parse_block_jobs
from ..model.events import QmpEvent
from ..model.migration import FINISHED_STATUSES, MigrationInfo
from ..model.runstate import RunState
from ..model.switchover import (
    Action,
    Outcome,
    Phase,
    Step,
    StepState,
    Stop,
    SwitchoverResult,
    error_line,
    not_paused,
)
from .checklist import MIRROR, mirror_check, source_check
from .session import MonitorSession

if TYPE_CHECKING:
    from .switchover import Switchover

# Statuses a migration ends in after migrate-continue (postcopy-active: the destination runs).
RESUME_END_STATUSES: frozenset[str] = FINISHED_STATUSES | {"postcopy-active"}
DESTINATION_WAIT_S = 10.0


class Resume:
    def __init__(self, switchover: Switchover, jobs: list[BlockJob] | None) -> None:
        """``jobs``: a fresh ``query-block-jobs`` the caller already judged (``--auto-resume``)."""
        self.sw = switchover
        self.jobs = jobs
        self.pending: dict[str, Step] = {}  # mirror id -> its step, while finishing
        self.mirrors: asyncio.Future[None] | None = None  # every mirror completed (or one failed)
        self.cont: Step | None = None
        self.continued: asyncio.Task[Any] | None = None  # migrate-continue, sent by the last mirror's event

    async def run(self) -> SwitchoverResult:
        sw = self.sw
        name = sw.name
        state = sw.source.state
        check = Step("check", "Check the source and its mirrors")
        sw.steps = [check]
        sw.set_step(check, StepState.RUNNING)
        if not state.in_pre_switchover:
            sw.set_step(check, StepState.FAILED, f"migration status {state.migration_status}")
            return SwitchoverResult(Action.RESUME, Outcome.NOT_PAUSED,
                                    f"{not_paused(name, state.migration_status)}: nothing to resume")
        jobs = self.jobs
        if jobs is None:
            reply = await sw.execute("query-block-jobs")
            sw.source.feed("query-block-jobs", reply)
            jobs = parse_block_jobs(reply)
            detail = "fresh query-block-jobs"
        else:
            detail = "checked by auto-resume"
        sw.check_interrupt()
        mirrors = self._mirrors_to_finish(jobs)
        checks = [source_check(state)] + [mirror_check(job, require_sync=False) for job in mirrors]
        bad = [c for c in checks if not c.ok]
        if bad:
            reason = "; ".join(f"{c.name}: {c.detail}" for c in bad)
            sw.set_step(check, StepState.FAILED, reason)
            return self._stopped(f"{name}: {reason}")
        sw.set_step(check, StepState.DONE, f"{detail}: {len(mirrors)} mirror(s) ready")

        steps = {job.device: Step(f"mirror:{job.device}", f"Finish mirror {job.device} (block-job-cancel)")
                 for job in mirrors}
        cont = Step("continue", "Continue the migration (migrate-continue)")
        complete = Step("complete", "Wait for the migration to complete")
        sw.steps += [*steps.values(), cont, complete]
        dst_step: Step | None = None
        if sw.destination is not None:
            dst_step = Step("destination", f"Destination {sw.destination.name} runs")
            sw.steps.append(dst_step)
        sw.progress()

        ended = sw.wait_status(RESUME_END_STATUSES)
        try:
            if steps:
                continued = await self._finish_mirrors(steps, cont)
            else:
                sw.check_interrupt()
                continued = self._send_continue(cont)
            try:
                await continued
            except MigtuiError as err:
                sw.move(Phase.STOPPED)  # QEMU refused it: not continued after all
                status = state.migration_status
                if status != "pre-switchover":
                    raise Stop(sw.other_client(status)) from None
                sw.set_step(cont, StepState.FAILED, str(err))
                return self._stopped(f"{name}: migrate-continue failed: {err}")
            sw.move(Phase.COMPLETING)
            sw.set_step(cont, StepState.DONE)
            sw.set_step(complete, StepState.RUNNING)
            status = await sw.wait(ended)
        finally:
            ended.cancel()
        return await self._conclude(status, complete, dst_step)

    def _mirrors_to_finish(self, jobs: list[BlockJob]) -> list[BlockJob]:
        """Mirrors of this migration: the fresh list, plus any that ended since it started
        (kept in the state from their events) so a failed mirror blocks the resume."""
        mirrors = {job.device: job for job in jobs if job.type == MIRROR}
        for job in self.sw.source.state.block_jobs.values():
            if (job.type == MIRROR and job.device not in mirrors and job.ended is not None
                    and (job.ended != "completed" or job.error)):
                mirrors[job.device] = job
        return sorted(mirrors.values(), key=lambda j: j.device)

    def _stopped(self, reason: str) -> SwitchoverResult:
        return SwitchoverResult(
            Action.RESUME, Outcome.STOPPED,
            f"{reason}: migrate-continue not sent, the guest stays stopped; abort to let the source run again",
            abort_offered=True,
        )

    def _send_continue(self, step: Step) -> asyncio.Task[Any]:
        self.sw.move(Phase.CONTINUING)
        task = asyncio.ensure_future(self.sw.execute("migrate-continue", {"state": "pre-switchover"}))
        self.sw.set_step(step, StepState.RUNNING)
        return task

    async def _finish_mirrors(self, steps: dict[str, Step], cont: Step) -> asyncio.Task[Any]:
        """Gracefully cancel every mirror at once. The last BLOCK_JOB_COMPLETED sends
        migrate-continue from the event callback itself (no task hop: it is downtime);
        returns that command's task."""
        sw = self.sw
        sw.move(Phase.FINISHING_MIRRORS)
        self.mirrors = asyncio.get_running_loop().create_future()
        self.cont = cont
        self.pending = dict(steps)  # registered before sending: the event can beat the reply
        for step in steps.values():
            step.state, step.started = StepState.RUNNING, sw.clock()
        sw.progress()
        replies = await asyncio.gather(
            *(sw.execute("block-job-cancel", {"device": job, "force": False}) for job in steps),
            return_exceptions=True,
        )
        for job, reply in zip(steps, replies, strict=True):
            if isinstance(reply, BaseException) and job in self.pending:
                if isinstance(reply, asyncio.CancelledError):
                    raise reply
                self._mirror_failed(job, f"block-job-cancel failed: {error_line(reply)}")
        try:
            await sw.wait(self.mirrors)
        except MigtuiError as err:
            failed = next((s for s in steps.values() if s.state is StepState.FAILED), None)
            job = failed.key.partition(":")[2] if failed else "?"
            raise Stop(self._stopped(f"{sw.name}: mirror {job} {err}")) from None
        finally:
            self.pending = {}
        if self.continued is None:  # the pause ended without us: the reason follows
            raise Stop(await sw.interruption())
        return self.continued

    # ------------------------------------------------------------------ events

    def on_event(self, ev: QmpEvent) -> None:
        name = ev.name
        if name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
            job = str(ev.data.get("device", ""))
            if job in self.pending:
                self._mirror_ended(job, ev)
        elif name == "BLOCK_JOB_ERROR":
            job = str(ev.data.get("device", ""))
            # action "report" ends the job at once (COMPLETED with error follows);
            # "stop" pauses it forever: fail now rather than wait.
            if job in self.pending and ev.data.get("action") == "stop":
                op = ev.data.get("operation", "I/O")
                self._mirror_failed(job, f"{op} error, the job stopped")

    def _mirror_ended(self, job: str, ev: QmpEvent) -> None:
        error = ev.data.get("error")
        if ev.name == "BLOCK_JOB_CANCELLED":
            self._mirror_failed(job, "was cancelled instead of completing (its copy is incomplete)")
        elif error:
            self._mirror_failed(job, f"ended with an error ({error})")
        else:
            sw = self.sw
            step = self.pending.pop(job)
            last = not self.pending and self.mirrors is not None and not self.mirrors.done()
            # Not when an abort took over, the link broke, or another client moved on
            # meanwhile (then migrate-continue would only fail).
            if (last and sw.phase is Phase.FINISHING_MIRRORS and not sw.interrupted()
                    and self.cont is not None and sw.source.state.in_pre_switchover):
                self.continued = self._send_continue(self.cont)  # before anything else
            sw.set_step(step, StepState.DONE, "completed: the destination's copy is final")
            if last and self.mirrors is not None and not self.mirrors.done():  # a listener may have ended it
                self.mirrors.set_result(None)

    def _mirror_failed(self, job: str, why: str) -> None:
        step = self.pending.pop(job, None)
        if step is not None:
            self.sw.set_step(step, StepState.FAILED, why)
        if self.mirrors is not None and not self.mirrors.done():
            self.mirrors.set_exception(MigtuiError(why))

    # ------------------------------------------------------------------ the end

    async def _conclude(self, status: str, complete: Step, dst_step: Step | None) -> SwitchoverResult:
        sw = self.sw
        name = sw.name
        # The session asked QEMU at once, at the end event: its final figures, kept even
        # when the source QEMU quits right after (or what is known, if it was too quick).
        info = await sw.source.final_migration(sw.generation)
        if info.status != status:
            info = MigrationInfo(status=status)  # older figures are not this end's
        pause_ms = sw.pause_ms
        if status == "failed":
            why = info.error_desc
            if why:
                sw.set_step(complete, StepState.FAILED, f"failed: {why}")
                reason = f"{name}: the migration failed after migrate-continue: {why}"
            else:
                sw.set_step(complete, StepState.FAILED, "failed (QEMU gave no reason)")
                reason = (f"{name}: the migration failed after migrate-continue"
                          " (QEMU gave no reason: check the destination)")
            return SwitchoverResult(Action.RESUME, Outcome.FAILED, reason, pause_ms=pause_ms)
        if status == "cancelled":
            sw.set_step(complete, StepState.FAILED, "cancelled")
            return SwitchoverResult(Action.RESUME, Outcome.OTHER_CLIENT, f"{name}: another client cancelled"
                                    " the migration after migrate-continue", pause_ms=pause_ms)
        downtime = info.downtime
        sw.set_step(complete, StepState.DONE, status + (f", downtime {format_ms(downtime)}" if downtime is not None
                                                        else ""))
        dst_running = await self._destination(dst_step) if dst_step is not None else None
        outcome = Outcome.COMPLETED if status == "completed" else Outcome.POSTCOPY
        reason = f"{name}: migration {status}"
        if downtime is not None:
            reason += f", downtime {format_ms(downtime)}"
        if pause_ms is not None:
            reason += f" (paused {format_ms(pause_ms)} before switchover)"
        return SwitchoverResult(Action.RESUME, outcome, reason, downtime_ms=downtime, pause_ms=pause_ms,
                                source_running=False, destination_running=dst_running)

    async def _destination(self, step: Step) -> bool | None:
        """Wait (briefly) until the destination reports it runs; never fails the resume."""
        sw = self.sw
        dst = sw.destination
        assert dst is not None
        generation = dst.generation  # the destination QEMU seen now, not one started later
        sw.set_step(step, StepState.RUNNING)
        if not dst.connected:
            sw.set_step(step, StepState.SKIPPED, "monitor not connected")
            return None
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

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
                dst.feed("query-status", await dst.execute("query-status", generation=generation))
        except (TimeoutError, MigtuiError) as err:
            sw.set_step(step, StepState.FAILED, error_line(err) if isinstance(err, MigtuiError) else "no news in time")
            return None
        finally:
            remove()
        run = dst.state.run_state or RunState()
        if run.running:
            sw.set_step(step, StepState.DONE, "running")
            return True
        sw.set_step(step, StepState.FAILED, f"{run.status} (started with -S? resume it with 'cont')")
        return False
