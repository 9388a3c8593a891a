"""No pause is unbounded: a source's pre-switchover pause gets a deadline.

When a pause reaches ``since + max_pause_s`` the policy is applied by the engine,
whether or not a view is attached: ``abort`` as the dialog's abort; ``resume`` only
when the checklist passes (otherwise abort: a guest stopped for good is the worse
outcome); ``wait`` does nothing. It applies only where :func:`policy.applies` allows
(migtui's own pause, or the operator named the monitor with the flag; never
libvirt's). A resume or abort already under way (the operator's) is left alone.
If the pause outlives the action (it never reached QEMU, or the operator's action ended
without ending the pause), the deadline looks again every ``RETRY_S``: it never lapses.
A deadline belongs to one pause of one connection (the session's ``generation``): once
the session reconnected -- maybe to another QEMU at the same socket -- it never fires.

An explicit state machine: :class:`Phase` and the allowed moves in ``MOVES``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable

from ..errors import MigtuiError
from ..listeners import Listeners
from ..model.pauseclock import PauseClock
from . import availability
from .checklist import fresh_checklist
from .policy import Policy, applies
from .session import CONNECTION, MIGRATION, MonitorSession
from .switchover import Switchover, Switchovers

log = logging.getLogger("migtui.deadline")

RETRY_S = 5.0  # the pause outlived the deadline's action: look again this soon


class Phase(enum.StrEnum):
    IDLE = "idle"  # no pause
    COUNTING = "counting"  # paused; the deadline is set
    ACTING = "acting"  # the deadline passed: the policy's action runs
    DONE = "done"  # this pause's policy was applied (or not allowed)


MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.COUNTING}),
    # COUNTING again: the policy changed (rearm); IDLE: the pause ended, or its connection did.
    Phase.COUNTING: frozenset({Phase.IDLE, Phase.ACTING, Phase.COUNTING}),
    Phase.ACTING: frozenset({Phase.DONE, Phase.IDLE}),
    # COUNTING: the pause outlived the action, the deadline looks again (RETRY_S), or a new pause.
    Phase.DONE: frozenset({Phase.IDLE, Phase.COUNTING}),
}

Report = Callable[[str, str], None]  # (level, one line)


class PauseDeadline:
    def __init__(
        self,
        source: MonitorSession,
        *,
        policy: Callable[[], Policy],
        owner: Callable[[], str],
        destination: Callable[[], MonitorSession | None],
        switchovers: Switchovers,
        on_report: Report | None = None,
        clock: Callable[[], float] = time.time,
        origin: Callable[[float], float] | None = None,
    ) -> None:
        self.source = source
        self.switchovers = switchovers
        # The pause's start when known better than the state's first sight of it (a pause
        # an engine took up again: QEMU's stamp, as the engine before recorded it).
        self._origin = origin
        self._policy = policy
        self._owner = owner
        self._destination = destination
        self._report: Listeners[[str, str]] = Listeners("deadline report listener", log, source.name)
        if on_report is not None:
            self._report.add(on_report)
        self.clock = clock
        self.phase = Phase.IDLE
        self.since: float | None = None  # the pause this deadline is for ...
        self.generation = source.generation  # ... on this connection
        self.deadline: float | None = None  # wall clock
        self.outcome: str | None = None  # what the policy did, one line
        self.tries = 0  # the policy's actions started in this pause
        self._timer: asyncio.TimerHandle | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.task: asyncio.Task[None] | None = None

    def _move(self, phase: Phase) -> None:
        if phase not in MOVES[self.phase]:
            raise RuntimeError(f"deadline: {self.phase.value} -> {phase.value} is not a move")
        self.phase = phase

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.source.add_change_listener(self._on_change)
            self._on_change(self.source, frozenset({MIGRATION}))

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def allowed(self) -> tuple[bool, str]:
        return applies(self._policy(), self._owner(), "deadline")

    def _on_change(self, session: MonitorSession, kinds: frozenset[str]) -> None:
        if not kinds & {MIGRATION, CONNECTION}:
            return
        state = session.state
        if not state.in_pre_switchover or not session.connected or session.generation != self.generation:
            if self.phase in (Phase.COUNTING, Phase.DONE):
                self._cancel_timer()
                self.deadline = None
                self._move(Phase.IDLE)
            if not state.in_pre_switchover or not session.connected:
                return
        since = state.pre_switchover_since
        if (self.phase in (Phase.COUNTING, Phase.ACTING, Phase.DONE) and since == self.since
                and session.generation == self.generation):
            return
        if self.phase is Phase.ACTING:
            return  # the action's own outcome moves us on
        self.since = since
        self.generation = session.generation
        self.outcome = None
        self.tries = 0
        self.rearm()

    def rearm(self) -> None:
        """(Re)compute the deadline of the current pause (the policy may have changed)."""
        if self.phase not in (Phase.IDLE, Phase.COUNTING, Phase.DONE) or not self.source.state.in_pre_switchover:
            return
        self._cancel_timer()
        policy = self._policy()
        clock = PauseClock.of(self.source.state)  # the guest stopped then: the clock every view shows
        start = clock.start if clock is not None else self.since if self.since is not None else self.clock()
        if self._origin is not None:
            start = self._origin(start)
        self.deadline = start + policy.max_pause_s
        self._move(Phase.COUNTING)
        delay = max(0.0, self.deadline - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        src = self.source
        if (self.phase is not Phase.COUNTING or not src.state.in_pre_switchover
                or src.generation != self.generation):
            return
        allowed, why = self.allowed
        if not allowed:
            self.outcome = f"deadline passed: nothing done ({why})"
            log.info("%s: %s", src.name, self.outcome)
            self._move(Phase.ACTING)
            self._move(Phase.DONE)
            return
        self._move(Phase.ACTING)
        self.task = asyncio.get_running_loop().create_task(self._act(), name=f"deadline-{self.source.name}")

    async def _act(self) -> None:
        src = self.source
        name = src.name
        policy = self._policy()
        generation = self.generation
        controller = self.switchovers.for_pause(src, self._destination())
        try:
            if controller.generation != generation:
                self._say("info", f"{name}: the QEMU behind this monitor changed (reconnected): its pause's"
                                  " deadline does nothing")
                return
            if controller.running:
                self._say_once("info", f"{name}: deadline passed while {controller.action} was under way:"
                                       " left to it")
                return
            abort = availability.abort(src, controller)
            if not abort.allowed:  # nothing can be started: say why
                self._say_once("warning", f"{name}: deadline passed: nothing done ({abort.reason})")
                return
            again = " again" if self.tries else ""
            self.tries += 1
            if policy.on_max_pause == "resume" and availability.resume(src, controller).allowed:
                checks = None
                try:
                    jobs, checks = await fresh_checklist(src, lambda: controller.destination, generation)
                except MigtuiError as err:
                    self.outcome = f"cannot read the block jobs ({err})"
                if checks is not None and checks.passed:
                    self._say("warning", f"{name}: paused {policy.max_pause_s:g} s: resuming{again}"
                                         " (--on-max-pause resume)")
                    await self._run(controller, controller.start_resume(jobs))
                    return
                why = checks.reason() if checks is not None else self.outcome
                self._say("error", f"{name}: paused {policy.max_pause_s:g} s and the checklist fails ({why}):"
                                   f" aborting{again} instead")
            elif policy.on_max_pause == "resume":
                self._say("error", f"{name}: paused {policy.max_pause_s:g} s and resume cannot run"
                                   f" ({availability.resume(src, controller).reason}): aborting{again} instead")
            else:
                self._say("error", f"{name}: paused {policy.max_pause_s:g} s: aborting the migration{again}"
                                   " (--on-max-pause abort)")
            await self._run(controller, controller.start_abort())
        except Exception as err:  # never let the guard die silently
            log.exception("%s: deadline action failed", name)
            self.outcome = f"deadline action failed: {err}"
            self._say("error", f"{name}: {self.outcome}")
        finally:
            if self.phase is Phase.ACTING:
                self._move(Phase.DONE)
            self._again(controller, generation)

    def _again(self, controller: Switchover, generation: int) -> None:
        """The pause outlived the deadline's action -- one that reached nothing (QEMU gave
        no answer), or the operator's, still running or ended without ending the pause:
        the deadline does not lapse. It looks again after RETRY_S while something runs or
        an abort can still be started."""
        src = self.source
        if (self.phase is not Phase.DONE or self._unsubscribe is None or self._timer is not None
                or not src.state.in_pre_switchover or not src.connected or src.generation != generation):
            return
        if not (controller.running or availability.abort(src, controller).allowed):
            return
        self.deadline = self.clock() + RETRY_S
        self._move(Phase.COUNTING)
        self._timer = asyncio.get_running_loop().call_later(RETRY_S, self._fire)

    async def _run(self, controller: Switchover, task: asyncio.Task[object]) -> None:
        controller.actor = "the engine's deadline"  # it started this action (none ran)
        result = await asyncio.shield(task)
        self.outcome = f"deadline: {getattr(result, 'reason', result)}"
        # The switchover's own log line records the outcome: this one is for the views.
        self._say("info" if getattr(result, "ok", False) else "error", self.outcome, logged=True)

    def _say_once(self, level: str, text: str) -> None:
        """Say it unless it is what was said last (the deadline looks again every RETRY_S)."""
        if text != self.outcome:
            self._say(level, text)

    def _say(self, level: str, text: str, *, logged: bool = False) -> None:
        self.outcome = text
        if not logged:
            log.log(logging.WARNING if level == "error" else logging.INFO, "%s", text)
        self._report(level, text)
