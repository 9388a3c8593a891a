"""The dashboard with the convergence advisor's panel.

Built on :class:`SwitchoverDashboard`: the engine's word on the selected migration (verdict,
why in numbers, ETA, the remedies it would take) in a panel above the dirty-rate chart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...view.remote import RemoteSession
from ...workflow import session as kinds_
from ..widgets.advice_panel import AdvicePanel
from .switchover_dashboard import SwitchoverDashboard

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
