"""The engine's side of the convergence advisor: the advice it decides and sends.

One :class:`EngineControl` per engine. After every change of a watched monitor it re-runs the
advisor (``model/advisor.py``) on the session's state and parameters and sends the
:class:`~migtui.protocol.messages.Convergence` message when anything in it changed (the
ETA moves once a poll; most changes change nothing); the same advice goes into
``migtui status --json`` as ``migration.convergence``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..model.advisor import Advice, Settings, advise
from ..protocol import messages as m
from ..workflow.session import CONFIG, CONNECTION, DIRTY_RATE, MIGRATION, RUN_STATE

if TYPE_CHECKING:
    from .engine import Engine, Watched

log = logging.getLogger("migtui.engine")

# What the advice is made of: a change of any of these re-decides it.
ADVICE_KINDS = frozenset({MIGRATION, CONFIG, CONNECTION, DIRTY_RATE, RUN_STATE})


class EngineControl:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sent: dict[str, m.Convergence] = {}  # monitor -> the advice views have

    # ------------------------------------------------------------------ the advice

    def advice(self, w: Watched) -> Advice:
        session = w.session
        settings = Settings.of(session.parameters, session.state.capabilities)
        return advise(session.state, settings, connected=session.connected, measuring=session.measuring)

    def message(self, w: Watched) -> m.Convergence:
        """What views have (or would have) of ``w``'s advice."""
        return self._sent.get(w.name) or m.Convergence(w.name, self.advice(w))

    def on_change(self, w: Watched, kinds: frozenset[str]) -> None:
        """Re-decide ``w``'s advice; tell every view if it changed."""
        if not kinds & ADVICE_KINDS:
            return
        message = m.Convergence(w.name, self.advice(w))
        previous = self._sent.get(w.name)
        if message == previous:
            return
        self._sent[w.name] = message
        self.engine.broadcast(message)
        if previous is None or previous.advice.verdict != message.advice.verdict:
            log.info("%s: %s: %s", w.name, message.advice.verdict, message.advice.reason)

    def status(self, w: Watched) -> dict[str, Any]:
        """``migration.convergence`` of ``migtui status --json``: what the screen shows."""
        return self.message(w).advice.to_json()
