"""The engine's live objects as protocol messages (``migtui/protocol/messages.py``).

Views never see a session or a switchover: they get these messages, typed. Pure: no I/O.
"""

from __future__ import annotations

from ..address import MonitorAddress
from ..model.switchover import Step
from ..protocol import messages as m
from ..workflow.policy import Policy
from ..workflow.session import MonitorSession
from ..workflow.switchover import Switchover


def policy_from(info: m.PolicyInfo) -> Policy:
    """The policy a view asked for (ValueError: it names a bad value)."""
    return Policy(info.auto_resume, info.max_pause_s, info.on_max_pause, frozenset(info.explicit), info.converge,
                  info.completion_timeout_s, info.converge_action)


def address_info(address: MonitorAddress) -> m.AddressInfo:
    return m.AddressInfo(address.name, address.kind, address.path, address.host, address.port)


def session_message(session: MonitorSession, *, with_commands: bool = False) -> m.Session:
    status = session.status
    error = status.error
    return m.Session(
        name=session.name, state=status.state.value, attempt=status.attempt,
        error=str(error) if error is not None else None,
        error_kind=type(error).__name__ if error is not None else None, retry_s=status.retry_s,
        poll_error=session.poll_error, qemu=session.qemu_version, measuring=session.measuring,
        polls=session.polls, features=session.features, read_only=session.read_only,
        generation=session.generation,
        commands=sorted(session.monitor.commands) if with_commands and session.monitor is not None else None,
    )


def switchover_message(name: str, controller: Switchover) -> m.Switchover:
    """Its phase says what runs and what may still be done (running, can_abort, finished).
    ``attempt``: the last action that changed nothing (it may be tried again); ``attempts``:
    how many actions were started on this pause (a view knows its request was taken up)."""
    return m.Switchover(name, m.SwitchoverState(
        phase=controller.phase, action=controller.action, actor=controller.actor,
        steps=[dataclass_copy(s) for s in controller.steps], result=controller.result,
        attempt=controller.attempt, attempts=controller.attempts, pause_since=controller.pause_since,
        device_at=controller.device_at, pause_ms=controller.pause_ms,
        destination=controller.destination.name if controller.destination else None,
    ))


def dataclass_copy(step: Step) -> Step:
    """A snapshot: the controller goes on changing its steps after the message is queued."""
    return Step(step.key, step.label, step.state, step.started, step.finished, step.detail)
