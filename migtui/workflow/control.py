"""Migration control: may a view abort this migration or apply one of the advisor's remedies
now, and if not why; and applying a remedy.

Like ``availability.py`` (whose sentences and :class:`Availability` it shares), one answer per
action for every place that asks: the engine's ``controls`` message, and the engine itself
before it acts. ``x`` aborts any migration QEMU still lets migtui cancel: a pause before
switchover through the switchover's abort, anything earlier through
:class:`~migtui.workflow.cancel.MigrationCancel`. The remedies (``bandwidth``,
``switchover-bandwidth``, ``downtime``, ``throttle``: the advisor's proposals,
``model/advisor.py``) each send one ``migrate-set-parameters`` with a value checked first
(``model/units.py``); ``dirty-limit`` sends ``set-vcpu-dirty-limit`` (KVM's dirty ring only:
under TCG it says why not), ``postcopy`` ``migrate-start-postcopy`` (only when postcopy-ram
was on at the start).
"""

from __future__ import annotations

from typing import Any

from ..errors import CommandFailed, MigtuiError, MonitorError
from ..libvirt.domain import LIBVIRT
from ..model.advisor import (
    BANDWIDTH,
    CONVERGING,
    DIRTY_LIMIT,
    DOWNTIME,
    NOT_CONVERGING,
    POSTCOPY,
    SWITCHOVER_BANDWIDTH,
    THROTTLE,
    WORDS,
    Advice,
    Remedy,
)
from ..model.switchover import SwitchoverView
from ..model.units import (
    bandwidth_text,
    downtime_text,
    parse_bandwidth,
    parse_dirty_limit,
    parse_downtime,
    parse_percent,
)
from . import availability
from .availability import YES, Availability, blocked_reason
from .cancel import CANCELLABLE, POSTCOPY_CANCELLABLE
from .cancel import POSTCOPY as POSTCOPY_STATUSES
from .session import MonitorSession

# A schema fact of QEMU 10.0, the release that refuses migrate_cancel once postcopy has started.
POSTCOPY_CANCEL_REFUSED_MARKER = "blockdev-set-active"
# Remedies apply while QEMU copies RAM before the switchover.
REMEDIABLE = frozenset({"active"})

ABORT_MIRRORS = ("migrate_cancel, then force-cancel the disk mirrors (as libvirt does): the source keeps running,"
                 " the destination is discarded")
ABORT_RAM = "migrate_cancel: the source keeps running, the destination is discarded"
POSTCOPY_ABORT = ("migrate_cancel after postcopy began: the guest has run on the destination since; its changes"
                  " since then are lost and the source resumes from its own copy")
ABORT_LIBVIRT = ("abortJob: libvirt cancels the migration and its disk mirrors; the source keeps running,"
                 " the destination is discarded")


def action_words(action: str) -> str:
    """How a refusal names ``action``: "downtime" is "change downtime-limit of"."""
    return WORDS.get(action, action)


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
    if state.run_state is not None and state.run_state.incoming:
        return Availability(False, f"{name}: the destination of this migration: abort it on its source")
    if status in POSTCOPY_STATUSES:
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
        return Availability(False if availability.never(session) else None, blocked)
    if libvirt:
        return Availability(None, f"{name}: {availability.LIBVIRT_DRIVES}: migtui does not abort it")
    return YES


def libvirt_domain(session: MonitorSession) -> bool:
    """A domain watched through libvirt's API: its controls are libvirt's calls."""
    return session.monitor is not None and session.monitor.manager == LIBVIRT


def abort_does(session: MonitorSession, mirrors: bool) -> str:
    if libvirt_domain(session):
        return ABORT_LIBVIRT
    if session.state.migration_status in POSTCOPY_STATUSES:
        return POSTCOPY_ABORT
    return ABORT_MIRRORS if mirrors else ABORT_RAM


# ---------------------------------------------------------------------- 1-4: remedies


def proposal(advice: Advice, action: str) -> Remedy | None:
    return next((r for r in advice.remedies if r.action == action), None)


def remedy(session: MonitorSession, advice: Advice, action: str, *, no_dirty_limit: str = "",
           no_postcopy: str = "") -> Availability:
    """A remedy's key: allowed while it is proposed for a migration that is not converging.
    ``no_dirty_limit``: why this QEMU cannot limit its vCPUs' dirty rate, ``no_postcopy``: why
    libvirt will not switch this migration to postcopy (the engine knows both)."""
    name = session.name
    status = session.state.migration_status
    if status not in REMEDIABLE:
        return Availability(False, f"{name}: no pre-copy running (migration status {status}): nothing to remedy")
    blocked = blocked_reason(session, WORDS[action])
    if blocked:
        return Availability(None, blocked)
    if proposal(advice, action) is not None:
        return YES
    return Availability(None, why_not(session, advice, action, no_dirty_limit, no_postcopy))


def why_not(session: MonitorSession, advice: Advice, action: str, no_dirty_limit: str = "",
            no_postcopy: str = "") -> str:
    name = session.name
    if action == DIRTY_LIMIT and no_dirty_limit:
        return f"{name}: {no_dirty_limit}"
    if action == POSTCOPY and no_postcopy:
        return f"{name}: {no_postcopy}"
    if action == POSTCOPY and not session.state.capabilities.enabled("postcopy-ram"):
        return (f"{name}: postcopy-ram was off when this migration started, and QEMU switches capabilities only"
                " between migrations: abort, enable it on both sides, migrate again")
    if action == SWITCHOVER_BANDWIDTH and "avail-switchover-bandwidth" not in session.parameters:
        return f"{name}: QEMU {session.qemu_version or ''} has no avail-switchover-bandwidth (8.2+)".replace("  ", " ")
    if action == THROTTLE and not session.state.capabilities.enabled("auto-converge"):
        return (f"{name}: auto-converge is off, and QEMU switches capabilities only between migrations:"
                " abort, enable it, migrate again")
    if advice.verdict == CONVERGING:
        return f"{name}: converging: nothing to remedy"
    if advice.verdict != NOT_CONVERGING:
        return f"{name}: no verdict yet ({advice.headline or advice.reason}): nothing to remedy"
    if action == BANDWIDTH:
        return f"{name}: max-bandwidth is not what limits this migration"
    if action == DOWNTIME:
        return f"{name}: the expected downtime fits the limit already"
    return f"{name}: not proposed now"


def read_value(action: str, parameter: str, text: str) -> tuple[int, str]:
    """The QMP value of ``text`` for ``parameter``, and how it reads back; BadValue if it cannot be sent."""
    if action in (BANDWIDTH, SWITCHOVER_BANDWIDTH):
        value = parse_bandwidth(text, parameter)
        return value, bandwidth_text(value)
    if action == DOWNTIME:
        value = parse_downtime(text, parameter)
        return value, downtime_text(value)
    if action == DIRTY_LIMIT:
        value = parse_dirty_limit(text, parameter)
        return value, f"{value} MB/s"
    high = 100 if parameter == "cpu-throttle-increment" else 99
    value = parse_percent(text, parameter, high=high)
    return value, f"{value} %"


async def apply_remedy(session: MonitorSession, advice: Advice, action: str, text: str = "", *,
                       no_postcopy: str = "") -> str:
    """Check ``text`` (the proposal when empty), then ``migrate-set-parameters``; one line saying
    what changed. Raises MigtuiError (a bad value, a refusal, QEMU's own refusal naming the
    parameter) before or instead of a change."""
    allowed = remedy(session, advice, action, no_postcopy=no_postcopy)
    if allowed.allowed is not True:
        raise MonitorError(session.name, allowed.reason)
    proposed = proposal(advice, action)
    assert proposed is not None
    name = session.name
    if action == POSTCOPY:
        if libvirt_domain(session):
            await send(session, "migrate-start-postcopy", {}, "migrateStartPostCopy")
            return f"{name}: libvirt's migrateStartPostCopy: the destination runs the guest and fetches the rest"
        await send(session, "migrate-start-postcopy", {}, "migrate-start-postcopy")
        return f"{name}: migrate-start-postcopy: the destination runs the guest and fetches the rest"
    parameter = proposed.parameter
    value, shown = read_value(action, parameter, text or proposed.value)
    if action == DIRTY_LIMIT:
        await send(session, "set-vcpu-dirty-limit", {parameter: value}, f"set-vcpu-dirty-limit {shown}")
        return f"{name}: vCPU dirty limit {proposed.current} → {shown}"
    await send(session, "migrate-set-parameters", {parameter: value}, f"{parameter} {shown}")
    session.poll_soon(config=True)
    return f"{name}: {parameter} {proposed.current} → {shown}"


async def send(session: MonitorSession, command: str, arguments: dict[str, Any], what: str) -> None:
    """``command``; QEMU's refusal (or a lost monitor) as one line naming ``what`` was not done."""
    try:
        await session.execute(command, arguments)
    except CommandFailed as err:
        who = "libvirt" if libvirt_domain(session) else "QEMU"
        raise MonitorError(session.name, f"{session.name}: {who} refused {what}: {err.desc}") from None
    except MigtuiError as err:
        raise MonitorError(session.name, f"{session.name}: {what} not done: {err}") from None
