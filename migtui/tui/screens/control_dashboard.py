"""The dashboard with migration control: the convergence panel and ``x`` for any migration.

Built on :class:`SwitchoverDashboard`: ``x`` there aborts a pause before switchover; here it
also aborts a migration at any earlier stage QEMU lets migtui cancel (after a question that
names the VM). Whether it may be done now, and why not, is the engine's
(``RemoteSession.control``); the key pressed anyway says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from textual import work

from ...errors import MigtuiError
from ...model.advisor import ABORT
from ...protocol.messages import Control
from ...view.remote import RemoteSession
from ...workflow import session as kinds_
from ...workflow.checklist import mirror_jobs
from ..widgets.advice_panel import AdvicePanel
from .control import AbortConfirm, abort_question
from .switchover_dashboard import NO_MONITOR, SwitchoverDashboard

log = logging.getLogger("migtui.tui")

_ADVICE = {kinds_.MIGRATION, kinds_.CONFIG, kinds_.CONNECTION}


class ControlDashboard(SwitchoverDashboard):
    def __init__(self, sessions: Iterable[RemoteSession], **kwargs: Any) -> None:
        super().__init__(sessions, **kwargs)

    def on_mount(self) -> None:
        # Runs before the dashboard's own on_mount selects a monitor (Textual calls the
        # subclass's handler first): the panel is there to show it.
        self.query_one("#main").mount(AdvicePanel(id="advice"), before="#dirty")

    def show(self, session: RemoteSession, changed: frozenset[str] | None) -> None:
        super().show(session, changed)
        if changed is None or changed & _ADVICE:
            for panel in self.query(AdvicePanel):
                panel.show(session)

    # ------------------------------------------------------------------ x: abort any migration

    def _pause_target(self) -> RemoteSession | None:
        target = self.target
        return target if target is not None and (target.pause.paused or target.switchover.running) else None

    def availability_of(self, key: str) -> Control:
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
        question = abort_question(name, session.control(ABORT).does, session.state.migration_status, mirrors)

        def answered(yes: bool | None) -> None:
            if yes:
                self._abort(session)

        self.app.push_screen(AbortConfirm(f"Abort the migration of {name}?", question, yes=f"abort {name}",
                                          no="keep it migrating", id="confirm-abort"), answered)

    @work(group="abort", exit_on_error=False)
    async def _abort(self, session: RemoteSession) -> None:
        try:
            said = await session.engine_request(ABORT)
        except MigtuiError as err:
            log.info("%s: abort: %s", session.name, err)
            self.notify(str(err), title="Abort", severity="error", timeout=10)
            return
        log.info("%s", said)  # every view hears how it goes from the engine (a notice)
