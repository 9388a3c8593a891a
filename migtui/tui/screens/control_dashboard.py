"""The dashboard with migration control: the convergence panel, the remedies (``1``-``6``) and
``x`` for any migration.

Built on :class:`SwitchoverDashboard`: ``x`` there aborts a pause before switchover; here it
also aborts a migration at any earlier stage QEMU lets migtui cancel (after a question that
names the VM). ``1``-``6`` take the advisor's remedies, least invasive first: raise
max-bandwidth, set avail-switchover-bandwidth, raise downtime-limit, CPU throttle, vCPU dirty
limit, postcopy -- each after a dialog that shows its expected effect and cost. Whether each may be done now, and
why not, is the engine's (``RemoteSession.control``); a key pressed anyway says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, ClassVar

from textual import work
from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widget import Widget

from ...errors import MigtuiError
from ...model.advisor import (
    ABORT,
    BANDWIDTH,
    DIRTY_LIMIT,
    DOWNTIME,
    POSTCOPY,
    REMEDY_ACTIONS,
    SWITCHOVER_BANDWIDTH,
    THROTTLE,
    Remedy,
)
from ...model.migration import RUNNING_STATUSES
from ...protocol.messages import Control
from ...view.remote import RemoteSession
from ...workflow import session as kinds_
from ...workflow.checklist import mirror_jobs
from ...workflow.control import proposal
from ...workflow.start import Choices
from ..lookup import one
from ..messages import NOT_AVAILABLE
from ..widgets.advice_panel import KEYS, AdvicePanel
from .control import AbortConfirm, PostcopyConfirm, RemedyScreen, abort_question, remedy_question
from .start import StartScreen
from .switchover_dashboard import NO_MONITOR, SwitchoverDashboard

log = logging.getLogger("migtui.tui")
START = "start"  # the engine's control of m (engine/start.py)
WRITE_BLOCKING = "write-blocking"

_ADVICE = {kinds_.MIGRATION, kinds_.CONFIG, kinds_.CONNECTION}
TITLES = {BANDWIDTH: "Remedy: raise max-bandwidth", SWITCHOVER_BANDWIDTH: "Remedy: set avail-switchover-bandwidth",
          DOWNTIME: "Remedy: raise downtime-limit", THROTTLE: "Remedy: CPU throttle",
          DIRTY_LIMIT: "Remedy: vCPU dirty limit", POSTCOPY: "Remedy: switch to postcopy"}


class ControlDashboard(SwitchoverDashboard):
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(KEYS[action], f"remedy('{action}')", TITLES[action], show=False) for action in REMEDY_ACTIONS),
        Binding("m", "start_migration", "Migrate"),
        Binding("m", "why('m')", show=False),
        Binding("w", "write_blocking", "Write-blocking mirrors", show=False),
        Binding("w", "why('w')", show=False),
    ]

    def __init__(self, sessions: Iterable[RemoteSession], **kwargs: Any) -> None:
        super().__init__(sessions, **kwargs)

    def more_panels(self) -> Iterable[Widget]:
        return (AdvicePanel(id="advice"),)

    def show(self, session: RemoteSession, changed: frozenset[str] | None, *, actions: bool = True) -> None:
        super().show(session, changed, actions=actions)
        if changed is None or changed & _ADVICE:
            one(self, AdvicePanel).show(session)  # composed with the other panels

    # ------------------------------------------------------------------ x: abort any migration

    def _pause_target(self) -> RemoteSession | None:
        target = self.target
        return target if target is not None and (target.pause.paused or target.switchover.running) else None

    def availability_of(self, key: str) -> Control:
        if key in ("m", "w"):
            selected = self.selected
            action = START if key == "m" else WRITE_BLOCKING
            return selected.control(action) if selected is not None else Control(None, NO_MONITOR)
        if key == "x" and self._pause_target() is None:
            selected = self.selected
            return selected.control(ABORT) if selected is not None else Control(False, NO_MONITOR)
        return super().availability_of(key)

    def action_abort_switchover(self) -> None:
        if self._pause_target() is not None:
            super().action_abort_switchover()
            return
        session = self.selected
        if session is None or not self.can_abort_switchover():
            return
        name = session.name
        mirrors = [job.device for job in mirror_jobs(session.state) if job.ended is None]
        does = session.control(ABORT).does
        question = abort_question(name, does, session.state.migration_status, mirrors)
        title, no = f"Abort the migration of {name}?", "keep it migrating"
        if session.state.migration_status not in RUNNING_STATUSES:  # a start still setting up (engine/start.py)
            question, title, no = Content(f"migtui will {does}."), f"Stop the start of {name}?", "let it go on"

        def answered(yes: bool | None) -> None:
            if yes:
                self._abort(session)

        self.app.push_screen(AbortConfirm(title, question, yes=f"abort {name}", no=no, id="confirm-abort"), answered)

    @work(group="abort", exit_on_error=False)
    async def _abort(self, session: RemoteSession) -> None:
        try:
            said = await session.engine_request(ABORT)
        except MigtuiError as err:
            log.info("%s: abort: %s", session.name, err)
            self.notify(str(err), title="Abort", severity="error", timeout=10)
            return
        log.info("%s", said)  # every view hears how it goes from the engine (a notice)

    # ------------------------------------------------------------------ m: start a migration, w: write-blocking

    def can_start_migration(self) -> bool | None:
        return self.availability_of("m").allowed

    def can_write_blocking(self) -> bool | None:
        return self.availability_of("w").allowed

    def action_start_migration(self) -> None:
        session = self.selected
        if session is None or not self.can_start_migration():
            return
        targets = session.start_offer.targets
        if not targets:
            self.notify(f"{session.name}: the engine has not said what a start may set yet", title=NOT_AVAILABLE,
                        severity="warning")
            return

        def answered(choices: Choices | None) -> None:
            if choices is not None:
                self._start(session, choices)

        self.app.push_screen(StartScreen(session.name, list(targets)), answered)

    @work(group="start", exit_on_error=False)
    async def _start(self, session: RemoteSession, choices: Choices) -> None:
        try:
            said = await session.start_request(choices)
        except MigtuiError as err:
            log.info("%s: start: %s", session.name, err)
            self.notify(str(err), title="Not started", severity="error", timeout=10)
            return
        log.info("%s", said)  # every view hears how it goes from the engine (notices)

    def action_write_blocking(self) -> None:
        session = self.selected
        if session is not None and self.can_write_blocking():
            self._write_blocking(session)

    @work(group="write-blocking", exit_on_error=False)
    async def _write_blocking(self, session: RemoteSession) -> None:
        try:
            await session.engine_request(WRITE_BLOCKING)
        except MigtuiError as err:
            self.notify(str(err), title="Write-blocking", severity="error", timeout=10)

    # ------------------------------------------------------------------ 1-4: remedies

    def action_remedy(self, action: str) -> None:
        session = self.selected
        if session is None:
            self.notify(NO_MONITOR, title=NOT_AVAILABLE, severity="warning")
            return
        control = session.control(action)
        remedy = proposal(session.convergence.advice, action)
        if control.allowed is not True or remedy is None:
            self.notify(control.reason or f"{session.name}: not proposed now", title=NOT_AVAILABLE,
                        severity="warning", timeout=8)
            return

        if action == POSTCOPY:
            self._ask_postcopy(session, remedy)
            return

        def answered(value: str | None) -> None:
            if value:
                self._apply(session, action, value)

        self.app.push_screen(RemedyScreen(session.name, KEYS[action], remedy), answered)

    def _ask_postcopy(self, session: RemoteSession, remedy: Remedy) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._apply(session, POSTCOPY, "")

        # The engine's line says which call it makes (libvirt's migrateStartPostCopy on a libvirt domain).
        does = session.control(POSTCOPY).does
        call = "libvirt's migrateStartPostCopy" if "migrateStartPostCopy" in does else "migrate-start-postcopy"
        question = remedy_question(remedy, f"{call} (it cannot be undone)")
        self.app.push_screen(PostcopyConfirm(f"{session.name}: switch to postcopy?", question,
                                             yes=f"switch {session.name} to postcopy", no="keep pre-copy",
                                             id="confirm-postcopy"), answered)

    @work(group="remedy", exit_on_error=False)
    async def _apply(self, session: RemoteSession, action: str, value: str) -> None:
        try:
            said = await session.engine_request(action, value=value)
        except MigtuiError as err:
            log.info("%s: %s: %s", session.name, action, err)
            self.notify(str(err), title="Not set", severity="error", timeout=10)
            return
        log.info("%s", said)  # every view hears it from the engine (a notice naming who)

    # ------------------------------------------------------------------ command palette

    def switchover_commands(self) -> Iterable[SystemCommand]:
        yield from super().switchover_commands()
        session = self.selected
        if session is None:
            return
        for title, key, run in (("Start a migration", "m", self.action_start_migration),
                                ("Write-blocking mirrors", "w", self.action_write_blocking)):
            control = self.availability_of(key)
            if control.allowed:
                yield SystemCommand(title, f"{control.does} ({key})", run)
            elif control.allowed is None:
                yield SystemCommand(f"{title} (unavailable)", control.reason,
                                    lambda reason=control.reason: self.notify(reason, title=NOT_AVAILABLE,
                                                                              severity="warning"))
        for action, title in TITLES.items():
            control = session.control(action)
            if control.allowed is False:
                continue
            if control.allowed:
                yield SystemCommand(title, f"{control.does} ({KEYS[action]})",
                                    lambda action=action: self.action_remedy(action))
            else:
                yield SystemCommand(f"{title} (unavailable)", control.reason,
                                    lambda reason=control.reason: self.notify(reason, title=NOT_AVAILABLE,
                                                                              severity="warning"))
