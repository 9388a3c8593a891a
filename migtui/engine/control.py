"""The engine's side of migration control: the convergence advice it decides and sends, the
controls it offers for it (abort any migration, the remedies), and the requests that act.

One :class:`EngineControl` per engine. After every change of a watched monitor it re-runs the
advisor (``model/advisor.py``) on the session's state and parameters and sends the
:class:`~migtui.protocol.messages.Convergence` message when anything in it changed (the
ETA moves once a poll; most changes change nothing); the same advice goes into
``migtui status --json`` as ``migration.convergence``. Requests: an ``abort`` of a migration
that is not paused before switchover runs a :class:`~migtui.workflow.cancel.MigrationCancel`
(once per migration; a pause's abort stays the switchover's), a remedy sends its
``migrate-set-parameters`` (``workflow/control.py``). Every view hears of both as a notice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..errors import MigtuiError
from ..model.advisor import ABORT, REMEDY_ACTIONS, Advice, Settings, advise
from ..protocol import messages as m
from ..workflow import control
from ..workflow.cancel import MigrationCancel
from ..workflow.session import CONFIG, CONNECTION, DIRTY_RATE, MIGRATION, RUN_STATE
from ..workflow.switchover import Switchover

if TYPE_CHECKING:
    from .engine import Engine, ViewLink, Watched

log = logging.getLogger("migtui.engine")

# What the advice is made of: a change of any of these re-decides it.
ADVICE_KINDS = frozenset({MIGRATION, CONFIG, CONNECTION, DIRTY_RATE, RUN_STATE})


class CancelRun:
    """One abort of a migration before its pause: who asked, and its task."""

    def __init__(self, cancel: MigrationCancel, actor: str, task: asyncio.Task[Any]) -> None:
        self.cancel = cancel
        self.actor = actor
        self.task = task


class EngineControl:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sent: dict[str, m.Convergence] = {}  # monitor -> the advice views have
        self._cancels: dict[str, CancelRun] = {}  # monitor -> its migration's abort, while it runs

    # ------------------------------------------------------------------ the advice

    def advice(self, w: Watched) -> Advice:
        session = w.session
        settings = Settings.of(session.parameters, session.state.capabilities)
        return advise(session.state, settings, connected=session.connected, measuring=session.measuring)

    def message(self, w: Watched) -> m.Convergence:
        """What views have (or would have) of ``w``'s advice."""
        return self._sent.get(w.name) or m.Convergence(w.name, self.advice(w))

    def on_change(self, w: Watched, kinds: frozenset[str]) -> None:
        """Re-decide ``w``'s advice; tell every view if it changed (and the controls it feeds)."""
        if not kinds & ADVICE_KINDS:
            return
        message = m.Convergence(w.name, self.advice(w))
        previous = self._sent.get(w.name)
        if message == previous:
            return
        self._sent[w.name] = message
        self.engine.broadcast(message)
        if previous is None or (previous.advice.verdict, previous.advice.remedies) != (
                message.advice.verdict, message.advice.remedies):
            self.engine.refresh_controls(w)
            if previous is None or previous.advice.verdict != message.advice.verdict:
                log.info("%s: %s: %s", w.name, message.advice.verdict, message.advice.reason)

    def status(self, w: Watched) -> dict[str, Any]:
        """``migration.convergence`` of ``migtui status --json``: what the screen shows."""
        return self.message(w).advice.to_json()

    # ------------------------------------------------------------------ the controls

    def controls(self, w: Watched, controller: Switchover | None, *, libvirt: bool,
                 mirrors: bool) -> dict[str, m.Control]:
        """The abort (any stage) and the remedies, as ``controls`` carries them."""
        session = w.session
        advice = self.message(w).advice
        running = self._cancels.get(w.name)
        if running is not None:
            abort = m.Control(False, f"{w.name}: abort under way (started by {running.actor})")
        else:
            allowed = control.abort(session, controller, libvirt=libvirt and not w.via_libvirt)
            abort = m.Control(allowed.allowed, allowed.reason, control.abort_does(session, mirrors))
        actions = {ABORT: abort}
        for action in REMEDY_ACTIONS:
            allowed = control.remedy(session, advice, action)
            remedy = control.proposal(advice, action)
            actions[action] = m.Control(allowed.allowed, allowed.reason, remedy.line() if remedy is not None else "")
        return actions

    # ------------------------------------------------------------------ requests

    def handles(self, w: Watched, action: str) -> bool:
        """Whether ``action`` on ``w`` is this module's (a pause's abort is the switchover's)."""
        if action in REMEDY_ACTIONS:
            return True
        if action != ABORT:
            return False
        controller = self.engine.switchovers.current(w.session)
        return not (w.session.state.in_pre_switchover or (controller is not None and controller.running)
                    or (controller is not None and controller.result is not None
                        and controller.result.abort_offered and not controller.finished))

    async def request(self, w: Watched, view: ViewLink, action: str, *, value: str = "",
                      force: bool = False) -> m.Reply:
        if action == ABORT:
            return self._abort(w, view, force=force)
        advice = self.message(w).advice
        try:
            said = await control.apply_remedy(w.session, advice, action, value)
        except MigtuiError as err:
            log.info("%s: %s refused for %s: %s", w.name, action, view.label, err)
            return m.Reply(0, False, error=str(err))
        log.info("%s (by %s)", said, view.label)
        self.engine.broadcast(m.Notice("info", f"{said} (by {view.label})", w.name))
        return m.Reply(0, True, message=said, actor=view.label)

    def _abort(self, w: Watched, view: ViewLink, *, force: bool) -> m.Reply:
        running = self._cancels.get(w.name)
        if running is not None:
            return m.Reply(0, True, message=f"{w.name}: abort already started by {running.actor}",
                           actor=running.actor)
        session = w.session
        libvirt = w.owner == "libvirt" and not w.via_libvirt
        allowed = control.abort(session, self.engine.switchovers.current(session), libvirt=libvirt and not force)
        if allowed.allowed is not True:
            return m.Reply(0, False, error=allowed.reason or f"{w.name}: nothing to abort")
        cancel = MigrationCancel(session)
        log.info("%s: abort (migrate_cancel, %s) requested by %s", w.name, session.state.migration_status,
                 view.label)
        task = asyncio.get_running_loop().create_task(cancel.run(), name=f"cancel-{w.name}")
        self._cancels[w.name] = CancelRun(cancel, view.label, task)
        task.add_done_callback(lambda t: self._aborted(w, t))
        self.engine.refresh_controls(w)
        self.engine.broadcast(m.Notice("info", f"{w.name}: abort started by {view.label}", w.name))
        return m.Reply(0, True, message=f"{w.name}: abort started", actor=view.label)

    def _aborted(self, w: Watched, task: asyncio.Task[Any]) -> None:
        self._cancels.pop(w.name, None)
        self.engine.refresh_controls(w)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("%s: abort failed", w.name, exc_info=error)
            self.engine.broadcast(m.Notice("error", f"{w.name}: abort failed: {error}", w.name))
            return
        result = task.result()
        (log.info if result.ok else log.warning)("%s", result.message)
        self.engine.broadcast(m.Notice("info" if result.ok else "error", result.message, w.name))
