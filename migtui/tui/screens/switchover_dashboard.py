"""The dashboard with the pre-switchover actions: arm (``a``), switchover (``s``), abort (``x``).

Built on the dashboard's extension points: a Binding plus ``can_<action>`` per action
(True: enabled, None: shown unavailable, False: hidden), re-checked after every
session change. Each key also has a hidden fallback binding that runs only when the
action is unavailable and says why in one line (read-only, not paused, too old ...).
The pause banner is mounted in ``#banners``.

The footer shows what applies now, so that it fits 80 columns: while a guest waits
in pre-switchover, ``s Switchover`` and ``x Abort`` (they act on the selected source,
or on the paused one when the selection is not paused, as the banner's "s opens"
promises) and not ``d`` (nothing to measure while a migration runs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import work
from textual.app import SystemCommand
from textual.binding import Binding

from ...errors import MigtuiError
from ...model.migration import RUNNING_STATUSES
from ...model.vmstate import can_be_armed
from ...workflow.arm import ALREADY_ARMED, arm_session
from ...workflow.paused import paused_sources
from ...workflow.session import MonitorSession
from ...workflow.switchover import current_switchover
from ..widgets.pause_banner import PauseBanner
from .confirm import ConfirmScreen
from .dashboard import DashboardScreen
from .switchover import blocked_reason

if TYPE_CHECKING:
    from ..pause_watch import PauseWatch

log = logging.getLogger("migtui.tui")

ARM_QUESTION = (
    "Enable the events and pause-before-switchover capabilities on {name}? Its next migration will"
    " stop the guest before switching over and wait for you (or --auto-resume): finish the disk"
    " mirrors, then resume or abort."
)


class SwitchoverDashboard(DashboardScreen):
    BINDINGS = [
        Binding("s", "switchover", "Switchover"),  # opens the paused source's dialog
        Binding("s", "why('s')", show=False),
        Binding("x", "abort_switchover", "Abort"),
        Binding("x", "why('x')", show=False),
        Binding("a", "arm", "Arm"),
        Binding("a", "why('a')", show=False),
    ]

    def __init__(self, sessions: Iterable[MonitorSession], *, pauses: "PauseWatch", **kwargs) -> None:
        super().__init__(sessions, **kwargs)
        self.pauses = pauses

    def on_mount(self) -> None:
        self.query_one("#banners").mount(PauseBanner(self.pauses.banner_content, id="pause-banner"))

    # ------------------------------------------------------------------ availability

    def _paused_or_acting(self, session: MonitorSession) -> bool:
        controller = current_switchover(session)
        return session.state.in_pre_switchover or (controller is not None and controller.running)

    @property
    def target(self) -> MonitorSession | None:
        """What ``s`` and ``x`` act on: the selected source if it is paused (or being acted
        on), else the first paused source (the one the banner names first), else None."""
        session = self.selected
        if session is not None and self._paused_or_acting(session):
            return session
        paused = paused_sources(self.sessions.values())
        return paused[0] if paused else None

    def can_switchover(self) -> bool | None:
        return True if self.target is not None else False

    def can_measure_dirty_rate(self) -> bool | None:
        if paused_sources(self.sessions.values()):
            return False  # a migration is running: nothing to measure; the footer needs s and x
        return super().can_measure_dirty_rate()

    def can_abort_switchover(self) -> bool | None:
        session = self.target
        if session is None or not session.state.in_pre_switchover:
            return False
        controller = current_switchover(session)
        if blocked_reason(session) or (controller is not None and (controller.running or not controller.can_abort)):
            return None
        return True

    def can_arm(self) -> bool | None:
        session = self.selected
        if session is None or not session.live:
            return False  # replayed data: nothing to arm
        if session.read_only or not session.connected:
            return None
        state = session.state
        if state.armed or state.migration_status in RUNNING_STATUSES:
            return False
        return True

    def why(self, key: str) -> str:
        session = self.selected if key == "a" else (self.target or self.selected)
        if session is None:
            return "no monitor selected"
        name = session.name
        blocked = blocked_reason(session)
        if key == "a":
            if not session.live:
                return f"{name}: replayed data: nothing to arm"
            if session.read_only:
                return f"read-only: migtui will not arm {name} (started with --read-only)"
            if blocked:
                return blocked
            if session.state.armed:
                return f"{name}: {ALREADY_ARMED}"
            return (f"{name}: cannot arm while a migration is {session.state.migration_status}: QEMU only"
                    " changes capabilities between migrations; arm before starting the next one")
        if not session.state.in_pre_switchover:
            return f"{name} is not paused in pre-switchover (status {session.state.migration_status})"
        if blocked:
            return blocked
        controller = current_switchover(session)
        if controller is not None and controller.running:
            return f"{name}: {controller.action} is under way"
        return f"{name}: too late to abort: migrate-continue was sent"

    # ------------------------------------------------------------------ actions

    def action_why(self, key: str) -> None:
        self.notify(self.why(key), title="Not available", severity="warning", timeout=6)

    def action_switchover(self) -> None:
        target = self.target
        if target is not None:
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

        self.app.push_screen(ConfirmScreen(f"Arm {session.name}", ARM_QUESTION.format(name=session.name),
                                           yes="arm", no="cancel", id="confirm-arm"), answered)

    @work(group="arm", exit_on_error=False)
    async def _arm(self, session: MonitorSession) -> None:
        try:
            result = await arm_session(session)
        except MigtuiError as err:
            log.info("%s: arm: %s", session.name, err)
            self.notify(str(err), title="Arm", severity="error", timeout=10)
            return
        log.info("%s", result.summary())
        self.notify(result.summary(), title="Arm")

    # ------------------------------------------------------------------ command palette

    def switchover_commands(self) -> Iterable[SystemCommand]:
        """The actions for the command palette, each saying why when it is unavailable."""
        for title, key, action, predicate, help_text in (
            ("Switchover dialog", "s", self.action_switchover, self.can_switchover,
             "resume or abort the paused source's switchover (s)"),
            ("Abort the migration", "x", self.action_abort_switchover, self.can_abort_switchover,
             "cancel the paused migration: the source guest runs again (x)"),
            ("Arm pause-before-switchover", "a", self.action_arm, self.can_arm,
             "make the selected source stop before switchover and wait (a)"),
        ):
            if predicate():
                yield SystemCommand(title, help_text, action)
            else:
                reason = self.why(key)
                yield SystemCommand(f"{title} (unavailable)", reason,
                                    lambda reason=reason: self.notify(reason, title="Not available",
                                                                      severity="warning"))
