"""Migration control: may a view abort this migration now, and if not why.

Like ``availability.py`` (whose sentences and :class:`Availability` it shares), one answer per
action for every place that asks: the engine's ``controls`` message, and the engine itself
before it acts. ``x`` aborts any migration QEMU still lets migtui cancel: a pause before
switchover through the switchover's abort, anything earlier through
:class:`~migtui.workflow.cancel.MigrationCancel`.
"""

from __future__ import annotations

from ..model.switchover import SwitchoverView
from . import availability
from .availability import YES, Availability, blocked_reason
from .cancel import CANCELLABLE, POSTCOPY, POSTCOPY_CANCELLABLE
from .session import MonitorSession

# A schema fact of QEMU 10.0, the release that refuses migrate_cancel once postcopy has started.
POSTCOPY_CANCEL_REFUSED_MARKER = "blockdev-set-active"

ABORT_MIRRORS = ("migrate_cancel, then force-cancel the disk mirrors (as libvirt does): the source keeps running,"
                 " the destination is discarded")
ABORT_RAM = "migrate_cancel: the source keeps running, the destination is discarded"
POSTCOPY_ABORT = ("migrate_cancel after postcopy began: the guest has run on the destination since; its changes"
                  " since then are lost and the source resumes from its own copy")


def postcopy_cancel_refused(session: MonitorSession) -> bool:
    """Whether this QEMU refuses migrate_cancel once postcopy has started (10.0 on)."""
    return session.supports(POSTCOPY_CANCEL_REFUSED_MARKER)


# ---------------------------------------------------------------------- x: abort


def abort(session: MonitorSession, switchover: SwitchoverView | None, *, libvirt: bool = False) -> Availability:
    """``x``: abort this migration, whatever its stage, as QEMU allows. A pause before
    switchover (or a switchover under way) is the switchover's own abort."""
    state = session.state
    status = state.migration_status
    if state.in_pre_switchover or (switchover is not None and (switchover.running or (
            switchover.result is not None and switchover.result.abort_offered and not switchover.finished))):
        return availability.abort(session, switchover, libvirt=libvirt)
    name = session.name
    if status in POSTCOPY:
        if status != POSTCOPY_CANCELLABLE or postcopy_cancel_refused(session):
            return Availability(None, f"{name}: {status}: the guest already runs on the destination and QEMU"
                                      " refuses migrate_cancel once postcopy has started (10.0+); recover it instead"
                                if postcopy_cancel_refused(session) else
                                f"{name}: {status}: the guest runs on the destination; cancelling now would lose"
                                " it: only a paused postcopy may be cancelled")
    elif status not in CANCELLABLE:
        return Availability(False, f"{name}: nothing to abort (migration status {status})")
    blocked = blocked_reason(session, "abort")
    if blocked:
        return Availability(None, blocked)
    if libvirt:
        return Availability(None, f"{name}: {availability.LIBVIRT_DRIVES}: migtui does not abort it")
    return YES


def abort_does(session: MonitorSession, mirrors: bool) -> str:
    if session.state.migration_status in POSTCOPY:
        return POSTCOPY_ABORT
    return ABORT_MIRRORS if mirrors else ABORT_RAM
