"""What every view shows about a monitor's pause and controls, decided here, once.

The engine builds a :class:`~migtui.protocol.messages.Pause` and a
:class:`~migtui.protocol.messages.Controls` message per monitor from its live objects
(session, switchover, deadline, policy, ownership) whenever something that feeds them
changes, and sends each only when it differs from the last one sent. Views render
them: none of these rules runs in a view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..model.checks import Check
from ..model.pauseclock import PauseClock
from ..model.switchover import Action
from ..protocol.messages import Control, Controls, Deadline, Pause, PolicyInfo
from ..workflow import availability
from ..workflow.checklist import mirror_jobs, pause_checklist
from ..workflow.deadline import Phase as DeadlinePhase
from ..workflow.pairing import destination_for
from ..workflow.policy import OWNER_LIBVIRT, Policy, applies
from ..workflow.session import MonitorSession
from ..workflow.switchover import Switchovers

if TYPE_CHECKING:
    from .control import EngineControl
    from .engine import Watched
    from .start import EngineStart

# What y and x do, by whether the migration mirrors disks: a RAM-only pause has none to finish.
RESUME_MIRRORS = ("finish each disk mirror gracefully (the destination's copy becomes final), then let QEMU"
                  " send the device state: the destination takes over")
RESUME_RAM = "let QEMU send the device state: the destination takes over"
ABORT_MIRRORS = ("cancel the migration and force-cancel the mirrors: the source guest runs again, the"
                 " destination is discarded")
ABORT_RAM = "cancel the migration: the source guest runs again, the destination is discarded"

LIBVIRT_DRIVER = "libvirt drives this migration and finishes this pause itself: acting here may break it"


def policy_info(policy: Policy) -> PolicyInfo:
    return PolicyInfo(auto_resume=policy.auto_resume, max_pause_s=policy.max_pause_s,
                      on_max_pause=policy.on_max_pause, converge=policy.converge,
                      completion_timeout_s=policy.completion_timeout_s, converge_action=policy.converge_action,
                      explicit=sorted(policy.explicit))


def pause_of(w: Watched, sessions: Sequence[MonitorSession], *, recorded: float | None = None,
             recorded_exact: bool = False) -> Pause:
    """``recorded``: the pause's start as the engine knows it better than its state does (a
    pause taken up from an engine before: QEMU's stamp, as recorded then, when
    ``recorded_exact``)."""
    session = w.session
    state = session.state
    paused = state.in_pre_switchover
    owner = w.owner
    d_allowed, d_why = applies(w.policy, owner, "deadline")
    a_allowed, _ = applies(w.policy, owner, "auto_resume")
    deadline = w.deadline
    at = deadline.deadline if deadline is not None and deadline.phase is DeadlinePhase.COUNTING else None
    destination = destination_for(session, sessions)
    checks: list[Check] = []
    if paused:
        checks = list(pause_checklist(state, destination))
    return Pause(
        name=w.name, paused=paused, episode=w.episodes,
        clock=PauseClock.of(state, recorded, recorded_exact=recorded_exact) if paused else None,
        lost_at=w.lost_at if paused else None,
        owner=owner,
        driver=LIBVIRT_DRIVER if owner == OWNER_LIBVIRT else "",
        armed_by_engine=list(w.armed_by_engine),
        policy=policy_info(w.policy),
        deadline=Deadline(at, w.policy.on_max_pause, w.policy.max_pause_s) if at is not None and d_allowed else None,
        no_deadline="" if d_allowed else d_why,
        auto=a_allowed and not session.read_only,
        notes=dict(w.notes),
        checklist=checks,
        blocked=(availability.blocked_reason(session) or "") if paused else "",
        destination=destination.name if destination is not None else None,
    )


def pause_json(pause: Pause, now: float) -> dict[str, Any]:
    """``pause`` of ``migtui status --json``: the pause as the dialog shows it -- since when and
    how sure, the deadline (or why none), who armed the source and who drives the pause."""
    clock = pause.clock
    deadline = pause.deadline
    if pause.owner == OWNER_LIBVIRT:
        driven = "libvirt"
    elif pause.auto:
        driven = "migtui auto-resume"
    else:
        driven = "the operator" + (f" (deadline: {deadline.action})" if deadline is not None else "")
    return {
        "paused": pause.paused,
        "start": clock.start if clock else None,
        "start_exact": clock.exact if clock else None,  # QEMU's own stamp; else "at least since start"
        "start_earliest": clock.earliest if clock else None,  # not exact: it began after this ("at most")
        "paused_s": clock.seconds(now) if clock else None,
        "deadline": ({"at": deadline.at, "action": deadline.action, "limit_s": deadline.limit_s,
                      "left_s": max(0.0, deadline.at - now)} if deadline is not None else None),
        "no_deadline": pause.no_deadline,
        "armed_by": {OWNER_LIBVIRT: "libvirt", "migtui": "migtui"}.get(pause.owner, "another client"),
        "armed_by_engine": list(pause.armed_by_engine),
        "driven_by": driven if pause.paused else None,
        "driver": pause.driver,
        "destination": pause.destination,
    }


def controls_of(w: Watched, sessions: Sequence[MonitorSession], switchovers: Switchovers,
                control: EngineControl | None = None, start: EngineStart | None = None) -> Controls:
    """Each action as the engine would answer it now; ``control`` adds the abort of a migration
    at any stage and the advisor's remedies (``engine/control.py``), ``start`` the start of a
    migration and what acts on one being set up (``engine/start.py``)."""
    session = w.session
    controller = switchovers.current(session)
    libvirt = w.owner == OWNER_LIBVIRT
    mirrors = bool(mirror_jobs(session.state))
    resume = availability.resume(session, controller, libvirt=libvirt)
    abort = availability.abort(session, controller, libvirt=libvirt)
    arm = availability.arm(session)
    measure = availability.measure_dirty_rate(session, sessions)
    actions = {
        Action.RESUME.value: Control(resume.allowed, resume.reason, RESUME_MIRRORS if mirrors else RESUME_RAM),
        Action.ABORT.value: Control(abort.allowed, abort.reason, ABORT_MIRRORS if mirrors else ABORT_RAM),
        "arm": Control(arm.allowed, arm.reason, "switch on pause-before-switchover (and events): the next"
                       " migration stops the guest before switchover, for you to check and resume"),
        "measure": Control(measure.allowed, measure.reason, "calc-dirty-rate for 1 s: how fast the guest"
                           " dirties memory now (an estimate over that second, not a verdict)"),
    }
    if control is not None:
        actions.update(control.controls(w, controller, libvirt=libvirt, mirrors=mirrors))
    if start is not None:
        actions.update(start.controls(w))
    return Controls(name=w.name, actions=actions)
