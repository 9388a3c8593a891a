"""May I, and if not, why? One answer per action, for every place that asks.

The dialog's keys, the dashboard's footer (``check_action``) and its "why not"
notices, and the command palette all read these functions; each sentence is written
here (or, for what the switchover itself refuses, in ``model/switchover.py``) once.

An :class:`Availability` is ``(allowed, reason)``. ``allowed`` is True (go ahead),
None (it applies, but not now: shown unavailable) or False (nothing it could act on
here: left out of the footer). ``reason`` says why not, in one line, for a key pressed
anyway; it is "" when allowed. Pure reads of sessions and switchovers: no I/O, no textual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ..libvirt.domain import LIBVIRT
from ..model.migration import RUNNING_STATUSES
from ..model.switchover import (
    PAST_CONTINUE,
    Action,
    SwitchoverView,
    not_paused,
    too_late,
    under_way,
)
from ..transport import ConnState
from .arm import ALREADY_ARMED, busy_reason
from .paused import paused_sources
from .session import MonitorSession

# A libvirt domain: libvirt turns pause-before-switchover on for its own migrations and
# sends migrate-continue itself; migtui only watches that pause.
LIBVIRT_ARMS = "a libvirt domain: libvirt arms its own migrations and drives the pause itself"


def monitor_lost(session: MonitorSession) -> bool:
    """The monitor dropped and the session tries to get it back: what it shows is the last
    known (not while it first connects)."""
    return session.status.state in (ConnState.RETRYING, ConnState.LOST)


class Availability(NamedTuple):
    allowed: bool | None
    reason: str = ""


YES = Availability(True)
NO_MONITOR = "no monitor selected"
LIBVIRT_DRIVES = "libvirt drives this migration and finishes the pause itself"


def blocked_reason(session: MonitorSession, doing: str = "resume or abort") -> str | None:
    """Why migtui may not act on ``session`` at all (None: it may)."""
    name = session.name
    if not session.live:
        return f"{name}: replayed data: migtui cannot act on it"
    if session.read_only:
        return f"read-only: migtui will not {doing} {name} (started with --read-only)"
    if not session.connected:
        if session.state.in_pre_switchover and monitor_lost(session):  # the last known: its QEMU may be gone
            return (f"{name}: source QEMU gone (monitor {session.status.label()}): migtui cannot"
                    f" {doing} a pause it cannot see")
        return f"{name}: monitor not connected ({session.status.label()}): wait until it is back"
    return None


def never(session: MonitorSession) -> bool:
    """Nothing migtui may ever do on ``session`` (read-only, replayed): its keys are not
    offered at all (False), where a monitor that is only not connected now dims them (None)."""
    return not session.live or session.read_only


def _not_paused(session: MonitorSession | None) -> str:
    if session is None:
        return NO_MONITOR
    return not_paused(session.name, session.state.migration_status)


def _over(switchover: SwitchoverView) -> str:
    assert switchover.result is not None
    return f"this pause is over: {switchover.result.reason}"


# ---------------------------------------------------------------------- one source's pause


def resume(session: MonitorSession, switchover: SwitchoverView | None, *, libvirt: bool = False) -> Availability:
    """``y`` in the dialog: resume this pause's switchover. Once an action was confirmed
    the key is left out (it would do nothing: each action runs once). ``libvirt``: a
    libvirt-managed QEMU (libvirt sends its own migrate-continue)."""
    blocked = blocked_reason(session)
    if blocked:
        return Availability(False if never(session) else None, blocked)
    sw = switchover
    if sw is not None and sw.action is not None:
        if sw.running:
            return Availability(False, under_way(session.name, sw.action))
        if sw.action == Action.RESUME:
            return Availability(False, f"{session.name}: resume was confirmed already: it runs once")
        return Availability(False, _over(sw) if sw.result is not None else _not_paused(session))
    if sw is not None and sw.result is not None:
        return Availability(None, _over(sw))
    if not session.state.in_pre_switchover:
        return Availability(None, _not_paused(session))
    if libvirt:
        return Availability(None, f"{session.name}: {LIBVIRT_DRIVES}: migtui does not resume it")
    return YES


def abort(session: MonitorSession, switchover: SwitchoverView | None, *, libvirt: bool = False) -> Availability:
    """``x``: abort this pause's migration (before migrate-continue only). Left out once
    nothing more can happen in this pause."""
    sw = switchover
    gone = False if sw is not None and sw.finished else None
    blocked = blocked_reason(session)
    if blocked:
        return Availability(False if never(session) else gone, blocked)
    if sw is not None and sw.running:
        return Availability(None, under_way(session.name, sw.action or Action.ABORT))
    if sw is not None and not sw.can_abort:
        why = too_late(session.name) if sw.phase in PAST_CONTINUE else f"{session.name}: nothing left to abort"
        return Availability(gone, why)
    offered = sw is not None and sw.result is not None and sw.result.abort_offered
    if (session.state.in_pre_switchover or offered) and libvirt:
        return Availability(None, f"{session.name}: {LIBVIRT_DRIVES}: migtui does not abort it")
    if session.state.in_pre_switchover or offered:
        return YES
    if sw is not None and sw.result is not None:
        return Availability(gone, _over(sw))
    return Availability(gone, _not_paused(session))


# ---------------------------------------------------------------------- a monitor's keys


def arm(session: MonitorSession | None) -> Availability:
    """``a``: switch on events and pause-before-switchover on the selected source."""
    if session is None:
        return Availability(False, NO_MONITOR)
    if session.monitor is not None and session.monitor.manager == LIBVIRT:
        return Availability(False, f"{session.name}: {LIBVIRT_ARMS}")
    blocked = blocked_reason(session, "arm")
    if never(session):
        return Availability(False, blocked or "")
    if blocked:
        return Availability(None, blocked)
    state = session.state
    if state.armed:
        return Availability(False, f"{session.name}: {ALREADY_ARMED}")
    if state.migration_status in RUNNING_STATUSES:
        return Availability(False, busy_reason(session.name, state.migration_status))
    return YES


def measure_dirty_rate(session: MonitorSession | None, sessions: Iterable[MonitorSession]) -> Availability:
    """``d``: calc-dirty-rate on the selected monitor, between migrations."""
    paused = paused_sources(sessions)
    if paused:  # a migration runs, and the footer needs s and x
        return Availability(False, f"{paused[0].name} is paused before switchover: its migration shows the rates")
    if session is None:
        return Availability(None, NO_MONITOR)
    name = session.name
    blocked = blocked_reason(session, "measure")
    if blocked:
        return Availability(False if never(session) else None, blocked)
    if session.measuring:
        return Availability(None, f"{name}: a measurement is under way")
    if session.state.migration.is_running:  # not offered: the migration's own figures are there
        return Availability(False, f"{name}: a migration is {session.state.migration_status}: its own figures"
                                  " show the dirty rate")
    if not session.supports("calc-dirty-rate"):
        return Availability(None, f"{name}: QEMU {session.qemu_version or '?'} has no calc-dirty-rate")
    return YES
