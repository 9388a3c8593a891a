"""Switchover: finish the mirrors and continue a migration paused in pre-switchover, or abort it.

One :class:`Switchover` per source pause: an explicit state machine. Its
:attr:`~Switchover.phase` moves only as ``model.switchover.MOVES`` allows; what runs
in each phase is :class:`~migtui.workflow.resume.Resume` (check, finish the mirrors,
migrate-continue, follow to the end) or :class:`~migtui.workflow.abort.Abort`
(migrate_cancel, force-cancel the mirrors, the guest runs again). Each runs once.

This class owns what both share: the phase and the action, the steps and the result,
the progress listeners, the session's events and changes (another client ending the
pause, a lost monitor) and the one interruption future the running action's waits
race against. QMP errors end an action with a one-line reason in the
:class:`SwitchoverResult`; nothing raises to the caller except ReadOnlyRefused
(before anything is sent).

A switchover is bound to the connection (the session's ``generation``) its pause was
seen on: once the session reconnected -- maybe to another QEMU at the same socket -- it
sends nothing more, ends with one line, and :meth:`Switchovers.for_pause` makes a new one.
"Runs once" counts what QEMU got: an attempt that wrote no command that changes the VM
goes back to where it started and can be tried again (its result is ``attempt``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from ..errors import CommandTimeout, Disconnected, MigtuiError
from ..libvirt.domain import LIBVIRT
from ..listeners import Listeners
from ..model.blockjobs import BlockJob
from ..model.events import QmpEvent
from ..model.switchover import (
    ABORTABLE,
    PAST_CONTINUE,
    TERMINAL,
    WATCH,
    Action,
    Outcome,
    Phase,
    PhaseFacts,
    Step,
    StepState,
    Stop,
    SwitchoverResult,
    can_be_tried_again,
    check_move,
    log_line,
    too_late,
    under_way,
)
from .abort import Abort
from .arm import refuse_read_only
from .resume import Resume
from .session import CONNECTION, MIGRATION, MonitorSession, Reconnected

log = logging.getLogger("migtui.switchover")

T = TypeVar("T")


# Left pre-switchover, but not yet clear whether towards completion or cancellation.
PASSING_STATUSES = frozenset({"device", "wait-unplug"})
# Phases in which the end of the pause, seen on the session, is another client's doing.
_WATCHING = frozenset({Phase.PAUSED, Phase.CHECKING, Phase.FINISHING_MIRRORS, Phase.STOPPED})
# A resume under way that has not sent migrate-continue: abort is still offered if it fails.
_BEFORE_CONTINUE = frozenset({Phase.CHECKING, Phase.FINISHING_MIRRORS})
# The commands of the actions that change the VM: once one was written, the action ran.
_CHANGING = frozenset({"block-job-cancel", "migrate-continue", "migrate_cancel"})
# Where an action that changed nothing may go back to (and be tried again).
_RETRY_FROM = frozenset({Phase.WAITING, Phase.PAUSED, Phase.STOPPED})

ProgressListener = Callable[["Switchover"], None]


class Switchover(PhaseFacts):
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
        self.generation = source.generation  # the connection this pause was seen on
        self.phase = Phase.PAUSED if source.state.in_pre_switchover else Phase.WAITING
        self.action: Action | None = None  # once one started
        self.actor: str | None = None  # who started it ("view tui on /dev/pts/3", "auto-resume", ...)
        self.steps: list[Step] = []
        self.result: SwitchoverResult | None = None
        self.attempt: SwitchoverResult | None = None  # the last attempt that changed nothing
        self.attempts = 0  # actions started (a view tells its request's answer by it)
        self.pause_since = source.state.pre_switchover_since
        self.device_at: float | None = None  # QEMU timestamp of MIGRATION device
        self.ended_jobs: dict[str, QmpEvent] = {}  # block jobs seen ending, by id
        self._listeners: Listeners[[Switchover]] = Listeners("progress listener", log, self.name)
        if on_progress is not None:
            self._listeners.add(on_progress)
        self._tasks: dict[Action, asyncio.Task[SwitchoverResult]] = {}  # each action runs once
        self._runs: list[Resume | Abort] = []  # they get the session's events
        self._interrupt: asyncio.Future[SwitchoverResult] | None = None
        self._wrote = False  # the running action wrote a command that changes the VM
        # What an action that changes nothing goes back to: (phase, action, result, steps).
        self._before: tuple[Phase, Action | None, SwitchoverResult | None, list[Step]] | None = None
        self._unsubscribe = [
            source.add_event_listener(self._on_event),
            source.add_change_listener(self._on_change),
            source.add_write_listener(self._on_write),
        ]

    # ------------------------------------------------------------------ the state

    @property
    def stale(self) -> bool:
        """The session reconnected since this pause was seen: maybe another QEMU is there."""
        return self.source.generation != self.generation

    def move(self, phase: Phase) -> None:
        """The only way the phase changes (``model.switchover.MOVES``). Listeners hear of it
        with the step change or the result that comes with every move."""
        check_move(self.name, self.phase, phase)
        log.debug("%s: switchover %s -> %s", self.name, self.phase.value, phase.value)
        self.phase = phase

    # ------------------------------------------------------------------ observing

    def add_progress_listener(self, cb: ProgressListener) -> Callable[[], None]:
        """``cb(switchover)`` after every step change and when a result is set."""
        return self._listeners.add(cb)

    def close(self) -> None:
        """Stop listening to the session (the registry does it when a new pause starts)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def progress(self) -> None:
        self._listeners(self)

    def set_step(self, step: Step, state: StepState, detail: str | None = None) -> None:
        now = self.clock()
        if state is StepState.RUNNING and step.started is None:
            step.started = now
        if state in (StepState.DONE, StepState.FAILED, StepState.SKIPPED):
            step.started = step.started if step.started is not None else now
            step.finished = now
        step.state = state
        if detail is not None:
            step.detail = detail
        self.progress()

    def _finish(self, result: SwitchoverResult) -> SwitchoverResult:
        for step in self.steps:
            if step.state is StepState.RUNNING:
                self.set_step(step, StepState.FAILED, step.detail or "interrupted")
            elif step.state is StepState.PENDING:
                self.set_step(step, StepState.SKIPPED)
        self.result = result
        if not (self.phase is Phase.ABORTING and result.action == Action.RESUME):  # else the abort moves on
            if self.phase is Phase.ABORTING or result.final:
                end = Phase.CONTINUED if self.phase in PAST_CONTINUE else Phase.DONE
            else:
                end = Phase.STOPPED
            if end is not self.phase:
                self.move(end)
        log.log(logging.INFO if result.ok else logging.WARNING, "%s", log_line(result))
        self.progress()
        return result

    # ------------------------------------------------------------------ input

    def _on_event(self, ev: QmpEvent) -> None:
        name = ev.name
        if name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
            self.ended_jobs[str(ev.data.get("device", ""))] = ev
        elif name == "MIGRATION" and ev.data.get("status") == "device" and self.device_at is None:
            self.device_at = ev.timestamp
        for run in self._runs:
            run.on_event(ev)

    def _on_write(self, command: str, _arguments: dict[str, Any] | None) -> None:
        if command in _CHANGING and self.running:
            self._wrote = True

    def _on_change(self, session: MonitorSession, kinds: frozenset[str]) -> None:
        if self.stale:
            self._reconnected()
            return
        if CONNECTION in kinds and not session.connected and self.running:
            self._interrupt_with(self._error(
                f"{self.name}: monitor connection lost: check the migration state once it is back",
                abort_offered=self.phase in _BEFORE_CONTINUE))
        if MIGRATION not in kinds:
            return
        status = session.state.migration_status
        if status == "pre-switchover":
            if self.phase is Phase.WAITING:
                self.move(Phase.PAUSED)
            if self.pause_since is None:
                self.pause_since = session.state.pre_switchover_since
            return
        if self.phase not in _WATCHING or status in PASSING_STATUSES:
            # Passing is not conclusive: a migrate_cancel that races the end of the pause
            # passes through "device" too (QEMU 7.2). The next status tells which it was.
            return
        # The pause ended without us: another QMP client (or QEMU itself) moved on.
        result = self.other_client(status)
        if self.running:
            self._interrupt_with(result)
        else:
            self._finish(result)
            self.close()

    def other_client(self, status: str) -> SwitchoverResult:
        if status in ("cancelling", "cancelled"):
            what = "another client cancelled the migration"
        elif status == "failed":
            desc = self.source.state.migration.error_desc
            what = "the migration failed" + (f" ({desc})" if desc else "")
        elif self.source.monitor is not None and self.source.monitor.manager == LIBVIRT:
            most = self.pause_at_most_ms
            if self.pause_ms is not None:
                paused, how = f"{self.pause_ms:.0f} ms", ""
            elif most is not None:  # libvirt's events only: a bound, said as one
                paused, how = f"≤ {math.ceil(most):.0f} ms", "; read-only: no QEMU events, bounded by libvirt's"
            else:
                paused, how = "(not measured)", ""
            return SwitchoverResult(WATCH, Outcome.OTHER_CLIENT, f"{self.name}: paused before switchover {paused}"
                                                                 f" (libvirt resumed it{how}; status now {status})")
        else:
            what = "another client continued the migration"
        return SwitchoverResult(
            WATCH, Outcome.OTHER_CLIENT, f"{self.name}: {what} (status now {status}): nothing left to do"
        )

    def _error(self, reason: str, *, abort_offered: bool = False) -> SwitchoverResult:
        return SwitchoverResult(self.action or WATCH, Outcome.ERROR, reason, abort_offered=abort_offered)

    def _reconnected(self) -> None:
        """The session has another connection: whatever runs ends, nothing more is sent, the
        pause's switchover ends (the registry makes a new one for the new connection)."""
        result = self._error(str(Reconnected(self.name)))
        if self.running:
            self._interrupt_with(result)  # its next command would be refused anyway
        elif not self.finished:
            self._finish(result)
            self.close()
        else:
            self.close()

    # ------------------------------------------------------------------ waiting (for the actions)

    def interruption(self) -> asyncio.Future[SwitchoverResult]:
        """Set when the running action must end early (another client, an abort, a lost link)."""
        if self._interrupt is None:
            self._interrupt = asyncio.get_running_loop().create_future()
        return self._interrupt

    def interrupted(self) -> bool:
        return self._interrupt is not None and self._interrupt.done()

    def _interrupt_with(self, result: SwitchoverResult) -> None:
        fut = self._interrupt
        if fut is not None and not fut.done():
            fut.set_result(result)

    async def wait(self, fut: asyncio.Future[T]) -> T:
        """``fut``'s result, unless an interruption comes first (then :class:`Stop`)."""
        interrupt = self.interruption()
        if not fut.done():
            await asyncio.wait((fut, interrupt), return_when=asyncio.FIRST_COMPLETED)
        if fut.done():
            return fut.result()
        raise Stop(interrupt.result())

    def check_interrupt(self) -> None:
        interrupt = self.interruption()
        if interrupt.done():
            raise Stop(interrupt.result())

    async def execute(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        """A command on the connection this pause was seen on: never on a later one (raises
        Reconnected, having sent nothing)."""
        return await self.source.execute(cmd, args, generation=self.generation)

    def wait_status(self, statuses: Iterable[str]) -> asyncio.Future[str]:
        """A future for the source's migration status reaching one of ``statuses``."""
        wanted = frozenset(statuses)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        remove: Callable[[], None] | None = None  # what removes the listener, once added

        def check(session: MonitorSession, kinds: frozenset[str]) -> None:
            status = session.state.migration_status
            if status in wanted and not fut.done():
                fut.set_result(status)
                if remove is not None:
                    remove()

        remove = self.source.add_change_listener(check)
        fut.add_done_callback(lambda _f: remove())
        check(self.source, frozenset({MIGRATION}))
        return fut

    @property
    def pause_ms(self) -> float | None:
        """QEMU's own timestamps: MIGRATION pre-switchover -> MIGRATION device.

        None when the pause was first seen by a poll (migtui started during it):
        then only QEMU's `downtime` is exact.
        """
        if self.pause_since is None or self.device_at is None or not self._pause_from_event():
            return None
        return (self.device_at - self.pause_since) * 1000

    @property
    def pause_at_most_ms(self) -> float | None:
        """A pause not seen by QEMU's events (a read-only libvirt connection): the longest it
        can have lasted, from the last sign the guest still ran (``pause_began_after``) to the
        first status after the pause, and never more than the migration's final downtime."""
        if self.pause_since is None or self._pause_from_event():
            return None
        state = self.source.state
        bounds = []
        end = next((c.time for c in state.status_changes if c.time > self.pause_since
                    and c.status != "pre-switchover"), None)
        if state.pause_began_after is not None and end is not None:
            bounds.append((end - state.pause_began_after) * 1000)
        if state.migration.status == "completed" and state.migration.downtime is not None:
            bounds.append(float(state.migration.downtime))
        return min(bounds) if bounds else None

    def _pause_from_event(self) -> bool:
        for change in reversed(self.source.state.status_changes):
            if change.status == "pre-switchover":
                return change.source == "event" and change.time == self.pause_since
        return False

    # ------------------------------------------------------------------ actions

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
        task = self._tasks.get(Action.RESUME)
        if task is not None:
            return task
        if self.stale or self.phase not in (Phase.WAITING, Phase.PAUSED):
            return asyncio.create_task(self._refused(Action.RESUME))
        run = Resume(self, None if jobs is None else list(jobs))
        self._begin(Action.RESUME, Phase.CHECKING, run)
        task = asyncio.create_task(self._act(Action.RESUME, run), name=f"switchover-resume-{self.name}")
        self._tasks[Action.RESUME] = task
        return task

    async def abort(self) -> SwitchoverResult:
        """Cancel the migration, force-cancel the mirrors, confirm the source runs.
        Runs once; interrupts a resume that has not sent migrate-continue yet."""
        return await asyncio.shield(self.start_abort())

    def start_abort(self) -> asyncio.Task[SwitchoverResult]:
        assert self.source.monitor is not None, "a replayed session cannot abort"
        refuse_read_only(self.source.monitor, "abort the migration")
        task = self._tasks.get(Action.ABORT)
        if task is not None:
            return task
        if self.stale or self.phase not in ABORTABLE:
            return asyncio.create_task(self._refused(Action.ABORT))
        resume = self._tasks.get(Action.RESUME) if self.phase in _BEFORE_CONTINUE else None
        if resume is not None:  # it stops before migrate-continue: the abort takes over
            self._interrupt_with(SwitchoverResult(
                Action.RESUME, Outcome.STOPPED, f"{self.name}: resume interrupted by abort"))
        run = Abort(self)
        self._begin(Action.ABORT, Phase.ABORTING, run)
        task = asyncio.create_task(self._abort_after(resume, run), name=f"switchover-abort-{self.name}")
        self._tasks[Action.ABORT] = task
        return task

    def _begin(self, action: Action, phase: Phase, run: Resume | Abort) -> None:
        self._before = (self.phase, self.action, self.result, list(self.steps))
        self._wrote = False
        self.attempts += 1
        self.move(phase)
        self.action = action
        self._runs.append(run)
        self.interruption()  # from now on, an interruption is kept for the action's first wait

    async def _refused(self, action: Action) -> SwitchoverResult:
        """The answer to an action that cannot start in this phase: nothing is sent, and
        nothing recorded (the same request may succeed later, e.g. an abort once QEMU
        refused migrate-continue)."""
        if self.stale:
            return SwitchoverResult(action, Outcome.ERROR, str(Reconnected(self.name)))
        if self.phase in PAST_CONTINUE and action is Action.ABORT:
            return SwitchoverResult(Action.ABORT, Outcome.ERROR, too_late(self.name))
        if self.phase in TERMINAL and self.result is not None:
            return self.result  # the pause already ended (another client, or an abort)
        return SwitchoverResult(action, Outcome.ERROR, under_way(self.name, self.action or "an action"))

    async def _abort_after(self, resume: asyncio.Task[SwitchoverResult] | None, run: Abort) -> SwitchoverResult:
        if resume is not None:
            # migrate-continue cannot go out now (the phase is ABORTING); wait for the
            # resume to wind down, unless the pause ended meanwhile.
            await asyncio.gather(resume, return_exceptions=True)
            if self.result is not None and self.result.final:
                self.move(Phase.DONE)
                self.close()
                self.progress()
                return self.result
            self._interrupt = None
            self.interruption()  # a fresh one for the abort's own waits
            self._before = None  # it took over a resume: it does not go back to where that started
        return await self._act(Action.ABORT, run)

    async def _act(self, action: Action, run: Resume | Abort) -> SwitchoverResult:
        """Run one action; every failure becomes a result with a one-line reason."""
        error: MigtuiError | None = None
        try:
            result = await run.run()
        except Stop as stop:
            result = stop.result
        except MigtuiError as err:
            error = err
            result = self._error(str(err), abort_offered=action is Action.RESUME and self.phase not in PAST_CONTINUE)
        except Exception as err:  # a bug must not leave the dialog hanging with a traceback
            log.exception("%s: %s failed", self.name, action)
            result = self._error(f"{self.name}: {action} failed unexpectedly: {err.__class__.__name__}: {err}")
        if result.action != action:
            result = replace(result, action=action)
        # Only a command that failed (no answer, refused) makes a retryable attempt: a check
        # that failed (a mirror already broken) is a decision, and abort is what is offered.
        if error is not None and not isinstance(error, Disconnected) and self._changed_nothing(action, result):
            return self._try_again(action, run, result, error)
        self._finish(result)
        if self.finished:
            self.close()  # nothing more will happen: stop listening
        return result

    def _changed_nothing(self, action: Action, result: SwitchoverResult) -> bool:
        """Whether ``action`` ended without QEMU getting any of its commands that change the
        VM, on a QEMU still paused and still reachable: then it may be tried again."""
        before = self._before
        return (before is not None and before[0] in _RETRY_FROM and not self._wrote and self.action == action
                and self.phase in (Phase.CHECKING, Phase.ABORTING)
                and result.outcome in (Outcome.ERROR, Outcome.STOPPED) and not self.stale
                and self.source.connected and self.source.monitor is not None and self.source.monitor.connected
                and self.source.state.in_pre_switchover)

    def _try_again(self, action: Action, run: Resume | Abort, result: SwitchoverResult,
                   error: MigtuiError | None) -> SwitchoverResult:
        """Back to where ``action`` started, as if it had not: it can be tried again."""
        assert self._before is not None
        if isinstance(error, CommandTimeout):
            monitor = self.source.monitor
            seconds = monitor.command_timeout if monitor is not None else 0
            what = f"no answer from QEMU within {seconds:g} s (frozen?)"
        else:
            what = result.reason.removeprefix(f"{self.name}: ")
            what = what.split(": migrate-continue not sent", 1)[0]  # it says so below, plainly
        attempt = replace(result, outcome=Outcome.ERROR, reason=can_be_tried_again(self.name, what, action),
                          abort_offered=False, retry=True)
        for step in self.steps:
            if step.state is StepState.RUNNING:
                self.set_step(step, StepState.FAILED, step.detail or what)
            elif step.state is StepState.PENDING:
                self.set_step(step, StepState.SKIPPED)
        phase, self.action, self.result, self.steps = self._before
        self.actor = None  # nobody acts now: the next action names its own
        self._before = None
        self.move(phase)
        self.attempt = attempt
        self._tasks.pop(action, None)
        self._runs = [r for r in self._runs if r is not run]
        self._interrupt = None
        log.warning("%s", log_line(attempt))
        self.progress()
        return attempt


# ---------------------------------------------------------------------- registry


class Switchovers:
    """The controller of each source's current pause, owned by whoever acts on pauses (the
    engine): an operator's request, --auto-resume and the deadline share it, so each action
    runs once per pause."""

    def __init__(self) -> None:
        self._current: weakref.WeakKeyDictionary[MonitorSession, Switchover] = weakref.WeakKeyDictionary()

    def for_pause(self, source: MonitorSession, destination: MonitorSession | None = None) -> Switchover:
        """The controller of ``source``'s current pause: a new one when the source pauses
        again (a new pre-switchover episode); ``destination`` fills in one not known yet."""
        existing = self._current.get(source)
        since = source.state.pre_switchover_since
        if existing is not None and not existing.stale and (
                existing.running or since is None or existing.pause_since == since
                or (existing.pause_since is None and not existing.finished)):
            if existing.destination is None and destination is not None:
                existing.destination = destination
            return existing
        if existing is not None:
            existing.close()
        controller = Switchover(source, destination)
        self._current[source] = controller
        return controller

    def current(self, source: MonitorSession) -> Switchover | None:
        """The controller of ``source``'s current (or last) pause; None when there is none,
        or when it belonged to the QEMU before a reconnection."""
        existing = self._current.get(source)
        return None if existing is None or existing.stale else existing
