"""What the engine tells views about a monitor, a switchover and a pause, as JSON.

The engine side builds these dicts from its live objects; the view side
(``migtui/view/remote.py``) sets them back onto its mirrors. One module, so the two
ends cannot drift apart. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..model.features import QemuFeatures
from ..workflow.session import MonitorSession
from ..workflow.switchover import Switchover
from ..workflow.switchover_state import Outcome, Phase, Step, StepState, SwitchoverResult


def session_json(session: MonitorSession, *, with_commands: bool = False) -> dict[str, Any]:
    status = session.status
    data: dict[str, Any] = {
        "name": session.name,
        "state": status.state.value,
        "attempt": status.attempt,
        "error": str(status.error) if status.error is not None else None,
        "error_kind": type(status.error).__name__ if status.error is not None else None,
        "poll_error": session.poll_error,
        "qemu": session.qemu_version,
        "measuring": session.measuring,
        "polls": session.polls,
        "features": dataclasses.asdict(session.features),
        "read_only": session.read_only,
        "generation": session.generation,
    }
    if with_commands and session.monitor is not None:
        data["commands"] = sorted(session.monitor.commands)
    return data


def features_from_json(data: Any) -> QemuFeatures:
    names = {f.name for f in dataclasses.fields(QemuFeatures)}
    known = {k: v for k, v in data.items() if k in names} if isinstance(data, dict) else {}
    return QemuFeatures(**known)


def step_json(step: Step) -> dict[str, Any]:
    return {"key": step.key, "label": step.label, "state": step.state.value, "started": step.started,
            "finished": step.finished, "detail": step.detail}


def step_from_json(data: dict[str, Any]) -> Step:
    try:
        state = StepState(str(data.get("state")))
    except ValueError:
        state = StepState.PENDING
    return Step(str(data.get("key", "")), str(data.get("label", "")), state, data.get("started"),
                data.get("finished"), str(data.get("detail", "")))


def result_json(result: SwitchoverResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"action": result.action, "outcome": result.outcome.value, "reason": result.reason,
            "downtime_ms": result.downtime_ms, "pause_ms": result.pause_ms,
            "abort_offered": result.abort_offered, "source_running": result.source_running,
            "destination_running": result.destination_running, "retry": result.retry}


def result_from_json(data: Any) -> SwitchoverResult | None:
    if not isinstance(data, dict):
        return None
    try:
        outcome = Outcome(str(data.get("outcome")))
    except ValueError:
        outcome = Outcome.ERROR
    return SwitchoverResult(str(data.get("action", "watch")), outcome, str(data.get("reason", "")),
                            downtime_ms=data.get("downtime_ms"), pause_ms=data.get("pause_ms"),
                            abort_offered=bool(data.get("abort_offered")),
                            source_running=data.get("source_running"),
                            destination_running=data.get("destination_running"),
                            retry=data.get("retry") is True)


def switchover_json(controller: Switchover) -> dict[str, Any]:
    """Its phase says what runs and what may still be done (running, can_abort, finished).
    ``attempt``: the last action that changed nothing (it may be tried again); ``attempts``:
    how many actions were started on this pause (a view knows its request was taken up)."""
    return {
        "phase": controller.phase.value,
        "action": controller.action,
        "actor": controller.actor,
        "steps": [step_json(s) for s in controller.steps],
        "result": result_json(controller.result),
        "attempt": result_json(controller.attempt),
        "attempts": controller.attempts,
        "pause_since": controller.pause_since,
        "device_at": controller.device_at,
        "pause_ms": controller.pause_ms,
        "destination": controller.destination.name if controller.destination else None,
    }


def phase_from_json(data: Any) -> Phase:
    try:
        return Phase(data)
    except ValueError:
        return Phase.WAITING  # nothing known: as a switchover made before any pause
