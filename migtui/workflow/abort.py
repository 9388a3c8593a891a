"""Abort a switchover: ``migrate_cancel``, force-cancel the mirrors, confirm the guest runs.

The destination is discarded; the source guest runs again (QEMU resumes it once the
cancel takes effect: the RESUME event). One :class:`Abort` per switchover, run by
:class:`~migtui.workflow.switchover.Switchover` in its ABORTING phase; a resume that
has not sent migrate-continue yet is interrupted first (the switchover does that).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..model.blockjobs import parse_block_jobs
from ..model.events import QmpEvent
from ..model.migration import FINISHED_STATUSES
from ..model.runstate import RunState
from ..model.switchover import (
    Action,
    Outcome,
    Step,
    StepState,
    SwitchoverResult,
    error_line,
)
from .checklist import MIRROR
from .session import MonitorSession

if TYPE_CHECKING:
    from .switchover import Switchover

# A migration migrate_cancel can still stop before the destination takes over.
ABORTABLE_STATUSES = frozenset({"setup", "active", "pre-switchover", "wait-unplug"})
ABORT_WAIT_S = 15.0  # force-cancelled mirrors and the guest's RESUME come within ms


class Abort:
    def __init__(self, switchover: Switchover) -> None:
        self.sw = switchover
        self.resumed = False  # a RESUME event since migrate_cancel went out

    def on_event(self, ev: QmpEvent) -> None:
        if ev.name == "RESUME":
            self.resumed = True

    async def run(self) -> SwitchoverResult:
        sw = self.sw
        name = sw.name
        state = sw.source.state
        cancel = Step("cancel", "Cancel the migration (migrate_cancel)")
        mirrors = Step("mirrors", "Force-cancel the mirrors (block-job-cancel force)")
        guest = Step("guest", "Source guest runs again")
        sw.steps = [cancel, mirrors, guest]
        sw.set_step(cancel, StepState.RUNNING)
        status = state.migration_status
        if status not in ABORTABLE_STATUSES:
            sw.set_step(cancel, StepState.FAILED, f"migration status {status}")
            return SwitchoverResult(Action.ABORT, Outcome.NOT_PAUSED,
                                    f"{name}: nothing to abort (migration status {status})")
        self.resumed = False
        stopped = sw.wait_status(FINISHED_STATUSES)
        try:
            await sw.execute("migrate_cancel")
            sw.set_step(cancel, StepState.DONE)
            sw.set_step(mirrors, StepState.RUNNING)
            await self._force_cancel_mirrors(mirrors)
            sw.set_step(guest, StepState.RUNNING, "waiting for RESUME")
            try:
                async with asyncio.timeout(ABORT_WAIT_S):
                    final = await sw.wait(stopped)  # a lost monitor ends it at once
            except TimeoutError:
                final = state.migration_status
        finally:
            stopped.cancel()
        sw.source.feed("query-status", await sw.execute("query-status"))
        run = state.run_state or RunState()
        if final == "completed":
            sw.set_step(guest, StepState.FAILED, "the migration completed before the cancel")
            return SwitchoverResult(Action.ABORT, Outcome.ERROR, f"{name}: too late: the migration completed"
                                    " before migrate_cancel took effect", source_running=run.running)
        if run.running:
            sw.set_step(guest, StepState.DONE, "running (RESUME)" if self.resumed else "running")
            return SwitchoverResult(Action.ABORT, Outcome.ABORTED, f"{name}: migration cancelled, mirrors"
                                    " cancelled, the source guest runs again", source_running=True)
        sw.set_step(guest, StepState.FAILED, f"QEMU status {run.status}")
        return SwitchoverResult(Action.ABORT, Outcome.ABORTED, f"{name}: migration cancelled but the source"
                                f" guest is {run.status} (was it running before?): resume it with 'cont'",
                                source_running=False)

    async def _force_cancel_mirrors(self, step: Step) -> None:
        sw = self.sw
        reply = await sw.execute("query-block-jobs")
        sw.source.feed("query-block-jobs", reply)
        remaining = [job.device for job in parse_block_jobs(reply) if job.type == MIRROR]
        if not remaining:
            sw.set_step(step, StepState.DONE, "none left")
            return
        loop = asyncio.get_running_loop()
        ends = {job: loop.create_future() for job in remaining}

        def on_end(session: MonitorSession, _kinds: frozenset[str]) -> None:
            for job, fut in ends.items():
                if job in sw.ended_jobs and not fut.done():
                    fut.set_result(None)

        remove = sw.source.add_change_listener(on_end)
        try:
            replies = await asyncio.gather(
                *(sw.execute("block-job-cancel", {"device": job, "force": True}) for job in remaining),
                return_exceptions=True,
            )
            errors = [f"{job}: {error_line(r)}" for job, r in zip(remaining, replies, strict=True)
                      if isinstance(r, BaseException)]
            on_end(sw.source, frozenset())
            waiting = [fut for job, fut in ends.items() if not fut.done() and
                       not any(e.startswith(f"{job}:") for e in errors)]
            if waiting:
                try:
                    async with asyncio.timeout(ABORT_WAIT_S):
                        await sw.wait(asyncio.gather(*waiting))  # a lost monitor ends it at once
                except TimeoutError:
                    errors.append("no BLOCK_JOB_CANCELLED in time")
        finally:
            remove()
            for fut in ends.values():
                fut.cancel()
        if errors:
            sw.set_step(step, StepState.FAILED, "; ".join(errors))
        else:
            sw.set_step(step, StepState.DONE, ", ".join(remaining) + " cancelled")
