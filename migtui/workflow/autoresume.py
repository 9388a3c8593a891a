"""--auto-resume: resume the switchover with no operator, as soon as the checklist passes.

Triggered by the session's change notification for the MIGRATION pre-switchover
*event* (the session calls listeners synchronously as the event is read), or by the
first ``query-migrate`` after connecting when the source was already paused. Then:
one fresh ``query-block-jobs``, the checklist, and :meth:`Switchover.resume` at once.
When the checklist fails nothing is sent: the failure is reported loudly and the
operator decides. Never resumes on exit, never resumes a read-only monitor. A pause
is one pause of one connection (the session's ``generation``): once the session
reconnected -- maybe to another QEMU at the same socket -- nothing is sent for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MigtuiError
from ..listeners import Listeners
from ..model.checks import Checklist
from ..model.switchover import SwitchoverResult
from .arm import refuse_read_only
from .checklist import fresh_checklist
from .session import MIGRATION, MonitorSession
from .switchover import Switchovers

log = logging.getLogger("migtui.autoresume")


@dataclass(frozen=True)
class AutoResumeReport:
    source: str
    time: float
    level: str  # "info" (resumed / resuming) or "error" (held: the operator must act)
    message: str  # one line
    checklist: Checklist | None = None
    result: SwitchoverResult | None = None


ReportListener = Callable[[AutoResumeReport], None]


class AutoResume:
    """Watches one source session; resumes each pre-switchover pause whose checklist passes."""

    def __init__(
        self,
        source: MonitorSession,
        destination: MonitorSession | None = None,
        *,
        switchovers: Switchovers,
        on_report: ReportListener | None = None,
        clock: Callable[[], float] = time.time,
        allowed: Callable[[], tuple[bool, str]] | None = None,
    ) -> None:
        self.source = source
        self.switchovers = switchovers
        # Whether this pause is ours to resume (policy.applies: never libvirt's).
        self.allowed = allowed or (lambda: (True, "auto-resume"))
        self.destination = destination
        self.clock = clock
        self.reports: list[AutoResumeReport] = []
        self.last_checklist: Checklist | None = None
        self.task: asyncio.Task[SwitchoverResult | None] | None = None
        self._listeners: Listeners[[AutoResumeReport]] = Listeners("auto-resume report listener", log, source.name)
        if on_report is not None:
            self._listeners.add(on_report)
        # (generation, pre_switchover_since) of the pause we took
        self._handled: tuple[int, float | None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Begin watching (call on the event loop). Raises ReadOnlyRefused for --read-only."""
        if self.source.monitor is not None:
            refuse_read_only(self.source.monitor, "auto-resume")
        if self._unsubscribe is None:
            self._unsubscribe = self.source.add_change_listener(self._on_change)
            self._on_change(self.source, frozenset({MIGRATION}))  # already paused?

    def stop(self) -> None:
        """Stop watching. A resume already under way finishes (stopping half-way is worse)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_change(self, session: MonitorSession, kinds: frozenset[str]) -> None:
        if MIGRATION not in kinds or not session.state.in_pre_switchover:
            return
        pause = (session.generation, session.state.pre_switchover_since)
        if self._handled == pause:
            return  # this pause is already ours
        self._handled = pause
        ok, why = self.allowed()
        if not ok:
            self._report("info", f"{session.name}: auto-resume does nothing: {why}")
            return
        # A task at once: the event handler must not wait, and nothing waits for a poll.
        self.task = asyncio.get_running_loop().create_task(
            self._handle(session.generation), name=f"auto-resume-{session.name}"
        )

    async def _handle(self, generation: int) -> SwitchoverResult | None:
        src, dst = self.source, self.destination
        name = src.name
        controller = self.switchovers.for_pause(src, dst)
        if controller.generation != generation:
            return None  # reconnected meanwhile: that pause is another QEMU's past
        if controller.running or controller.result is not None:
            return controller.result  # the operator (or an earlier pass) already acts
        try:
            jobs, checks = await fresh_checklist(src, lambda: dst, generation)  # the one fresh query
        except MigtuiError as err:
            self._report("error", f"{name}: auto-resume held: cannot read the block jobs ({err});"
                         " waiting for the operator")
            return None
        self.last_checklist = checks
        if not checks.passed:
            self._report("error", f"{name}: auto-resume held, the guest stays stopped: {checks.reason()};"
                         " waiting for the operator", checks)
            return None
        if controller.running or controller.action is not None or controller.stale:
            return controller.result  # the operator acted meanwhile, or the QEMU changed
        task = controller.start_resume(jobs)  # runs before any listener below
        controller.actor = controller.actor or "auto-resume"
        self._report("info", f"{name}: checklist passed: auto-resuming the switchover", checks)
        result = await asyncio.shield(task)
        # The switchover's own log line records the outcome: this report is for the views.
        self._report("info" if result.ok else "error", f"auto-resume: {result.reason}", checks, result,
                     logged=True)
        return result

    def _report(self, level: str, message: str, checks: Checklist | None = None,
                result: SwitchoverResult | None = None, *, logged: bool = False) -> None:
        report = AutoResumeReport(self.source.name, self.clock(), level, message, checks, result)
        self.reports.append(report)
        if not logged:
            log.log(logging.WARNING if level == "error" else logging.INFO, "%s", message)
        self._listeners(report)
