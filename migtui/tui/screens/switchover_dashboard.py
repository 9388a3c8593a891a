"""The dashboard with the pre-switchover actions: arm (``a``), switchover (``s``), abort (``x``).

Built on the dashboard's extension points: a Binding plus ``can_<action>`` per action
(True: enabled, None: shown unavailable, False: hidden), re-checked after every
session change. Each answer, and the one line that says why not, is the engine's
(``RemoteSession.control``); each key also has a hidden fallback binding that runs
only when the action is unavailable and says why (read-only, not paused, too old ...).
The pause banner is the dashboard's banner.

The footer shows what applies now, so that it fits 80 columns: while a guest waits
in pre-switchover, ``s Switchover`` and ``x Abort`` (they act on the selected source,
or on the paused one when the selection is not paused, as the banner's "s opens"
promises) and not ``d`` (nothing to measure while a migration runs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.widget import Widget

from ...errors import MigtuiError
from ...model.vmstate import can_be_armed
from ...protocol.messages import Control
from ...view.remote import RemoteSession
from ...workflow.checklist import mirror_jobs
from ..messages import NOT_AVAILABLE
from ..widgets.pause_banner import PauseBanner
from .confirm import ArmConfirm
from .dashboard import DashboardScreen

if TYPE_CHECKING:
    from ..pause_watch import PauseWatch

log = logging.getLogger("migtui.tui")

NO_MONITOR = "no monitor selected"
ARM_QUESTION = (
    "Enable the events and pause-before-switchover capabilities on {name}? Its next migration will"
    " stop the guest before switching over and wait for you (or --auto-resume) in a dialog with a"
    " checklist: y resumes the switchover{mirrors}, x asks to abort."
)
MIRRORS_NOTE = " (finishing the disk mirrors first)"


def arm_question(session: RemoteSession) -> str:
    """What arming does, disk mirrors named only where there are some."""
    return ARM_QUESTION.format(name=session.name, mirrors=MIRRORS_NOTE if mirror_jobs(session.state) else "")


class SwitchoverDashboard(DashboardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "switchover", "Switchover"),  # opens the paused source's dialog
        Binding("s", "why('s')", show=False),
        Binding("x", "abort_switchover", "Abort"),
        Binding("x", "why('x')", show=False),
        Binding("a", "arm", "Arm"),
        Binding("a", "why('a')", show=False),
        # The dashboard's d again: a subclass's bindings of a key replace the base's.
        Binding("d", "measure_dirty_rate", "Dirty rate"),
        Binding("d", "why('d')", show=False),
    ]

    def __init__(self, sessions: Iterable[RemoteSession], *, pauses: PauseWatch, **kwargs: Any) -> None:
        super().__init__(sessions, **kwargs)
        self.pauses = pauses

    def banners(self) -> Iterable[Widget]:
        return (PauseBanner(self.pauses.banner_content, id="pause-banner"),)

    # ------------------------------------------------------------------ availability

    @property
    def target(self) -> RemoteSession | None:
        """What ``s`` and ``x`` act on: the selected source if it is paused (or being acted
        on), else the first paused source (the one the banner names first)."""
        selected = self.selected
        if selected is not None and (selected.pause.paused or selected.switchover.running):
            return selected
        return next((s for s in self.sessions.values() if s.pause.paused), None)

    def availability_of(self, key: str) -> Control:
        """The engine's answer for the action on ``key`` (a, s, x, d), as things stand."""
        selected, target = self.selected, self.target
        if key == "s":
            if target is not None:
                return Control(True)
            return Control(False, selected.control("resume").reason if selected else NO_MONITOR)
        if key == "x":
            if target is not None and target.pause.paused:
                return target.control("abort")
            about = target or selected
            return Control(False, about.control("resume").reason if about is not None else NO_MONITOR)
        if selected is None:
            return Control(False if key == "a" else None, NO_MONITOR)
        return selected.control("arm" if key == "a" else "measure")

    def can_switchover(self) -> bool | None:
        return self.availability_of("s").allowed

    def can_abort_switchover(self) -> bool | None:
        return self.availability_of("x").allowed

    def can_arm(self) -> bool | None:
        return self.availability_of("a").allowed

    # ------------------------------------------------------------------ actions

    def action_why(self, key: str) -> None:
        self.notify(self.availability_of(key).reason, title=NOT_AVAILABLE, severity="warning", timeout=6)

    def action_switchover(self) -> None:
        target = self.target
        if target is not None:  # what can_switchover answers
            self.pauses.open_dialog(target.name, user=True)

    def action_abort_switchover(self) -> None:
        target = self.target
        if target is not None and self.can_abort_switchover():
            self.pauses.open_dialog(target.name, user=True, abort_first=True)

    def action_arm(self) -> None:
        session = self.selected
        if session is None or not self.can_arm():
            return
        caps = session.state.capabilities
        if len(caps) and not can_be_armed(caps):
            self._arm(session)  # only queries, then says the QEMU is too old
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._arm(session)

        self.app.push_screen(ArmConfirm(f"Arm {session.name}?", arm_question(session),
                                        yes=f"arm {session.name}", no="cancel", id="confirm-arm"), answered)

    @work(group="arm", exit_on_error=False)
    async def _arm(self, session: RemoteSession) -> None:
        try:
            said = await session.engine_request("arm")
        except MigtuiError as err:
            log.info("%s: arm: %s", session.name, err)
            self.notify(str(err), title="Arm", severity="error", timeout=10)
            return
        log.info("%s", said)
        self.notify(said, title="Arm")

    # ------------------------------------------------------------------ command palette

    def switchover_commands(self) -> Iterable[SystemCommand]:
        """The actions for the command palette, each saying why when it is unavailable."""
        for title, key, action, help_text in (
            ("Switchover dialog", "s", self.action_switchover, "resume or abort the paused source's switchover (s)"),
            ("Abort the migration", "x", self.action_abort_switchover,
             "cancel the paused migration: the source guest runs again (x)"),
            ("Arm pause-before-switchover", "a", self.action_arm,
             "make the selected source stop before switchover and wait (a)"),
        ):
            control = self.availability_of(key)
            allowed, reason = control.allowed, control.reason
            if allowed:
                yield SystemCommand(title, help_text, action)
            else:
                yield SystemCommand(f"{title} (unavailable)", reason,
                                    lambda reason=reason: self.notify(reason, title=NOT_AVAILABLE,
                                                                      severity="warning"))
