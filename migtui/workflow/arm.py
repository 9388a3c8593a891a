"""Arm a source: make QEMU stop in pre-switchover and tell us at once.

Enables the ``events`` and ``pause-before-switchover`` migration capabilities: armed
means both on (``model.vmstate.is_armed``), so a QEMU that lacks either is refused as
too old. QEMU refuses capability changes while a migration runs; that is checked
first so the refusal reads as one line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import CommandFailed, MonitorError, NotSupported, ReadOnlyRefused
from ..model.capabilities import Capabilities
from ..model.migration import RUNNING_STATUSES, MigrationInfo
from ..model.vmstate import ARM_CAPABILITIES, can_be_armed, is_armed
from ..transport import Monitor
from .session import MonitorSession

ALREADY_ARMED = "already armed (events and pause-before-switchover on)"
# Called with the capabilities about to be switched on, before they are (the engine
# records what it arms, durably, first: engine/durable.py).
BeforeSet = Callable[[tuple[str, ...]], Awaitable[None]]


@dataclass(frozen=True)
class ArmResult:
    monitor: str
    enabled: tuple[str, ...]  # switched on by this call
    already: tuple[str, ...]  # were on before
    message: str = ""  # the engine's summary, for a view's request

    @property
    def changed(self) -> bool:
        return bool(self.enabled)

    def summary(self) -> str:
        if self.message:
            return self.message
        if not self.enabled:
            return f"{self.monitor}: {ALREADY_ARMED}"
        return f"{self.monitor}: armed: {', '.join(self.enabled)} enabled"


def refuse_read_only(monitor: Monitor, action: str) -> None:
    """Raise before anything is sent: --read-only never changes QEMU's state."""
    if monitor.read_only:
        raise ReadOnlyRefused(monitor.name, f"--read-only: {monitor.name}: not allowed to {action}")


async def arm(monitor: Monitor, before_set: BeforeSet | None = None) -> ArmResult:
    """Enable ``events`` and ``pause-before-switchover`` on a source.

    Raises ReadOnlyRefused, NotSupported (QEMU too old), MonitorError (a migration is
    running) or CommandFailed.
    """
    refuse_read_only(monitor, "arm pause-before-switchover")
    name = monitor.name
    caps = Capabilities.from_qmp(await monitor.execute("query-migrate-capabilities"))
    if not can_be_armed(caps):
        version = monitor.qemu_version or "this"
        missing = " and ".join(cap for cap in ARM_CAPABILITIES if not caps.supports(cap))
        raise NotSupported(name, f"{name}: QEMU {version} is too old for {missing} (needs 2.11+)")
    if is_armed(caps):
        return ArmResult(name, (), ARM_CAPABILITIES)
    already = tuple(cap for cap in ARM_CAPABILITIES if caps.enabled(cap))
    todo = tuple(cap for cap in ARM_CAPABILITIES if not caps.enabled(cap))
    status = MigrationInfo.from_qmp(await monitor.execute("query-migrate")).status
    if status in RUNNING_STATUSES:
        raise MonitorError(name, busy_reason(name, status))
    if before_set is not None:
        await before_set(todo)
    try:
        await monitor.execute(
            "migrate-set-capabilities",
            {"capabilities": [{"capability": cap, "state": True} for cap in todo]},
        )
    except CommandFailed as err:
        # A migration may have started between our query and the change.
        if "in progress" in err.desc or "migration" in err.desc.lower():
            raise MonitorError(name, busy_reason(name, "running")) from None
        raise
    return ArmResult(name, todo, already)


async def disarm(monitor: Monitor, capabilities: tuple[str, ...]) -> None:
    """Switch ``capabilities`` off again (what this migtui armed itself), between migrations."""
    refuse_read_only(monitor, "disarm")
    name = monitor.name
    status = MigrationInfo.from_qmp(await monitor.execute("query-migrate")).status
    if status in RUNNING_STATUSES:
        raise MonitorError(name, f"{name}: cannot disarm while a migration is {status}: QEMU only changes"
                                 " capabilities between migrations")
    await monitor.execute(
        "migrate-set-capabilities",
        {"capabilities": [{"capability": cap, "state": False} for cap in capabilities]},
    )


async def arm_session(session: MonitorSession, before_set: BeforeSet | None = None) -> ArmResult:
    """:func:`arm` the session's monitor, then re-read its capabilities at once so the
    monitors list and migration panel show it armed without waiting for the next poll."""
    if session.monitor is None:
        raise NotSupported(session.name, f"{session.name}: a replayed session cannot be armed")
    result = await arm(session.monitor, before_set)
    session.poll_soon(config=True)
    return result


def busy_reason(name: str, status: str) -> str:
    """Why a source cannot be armed now (a migration is ``status``)."""
    return (
        f"{name}: cannot arm while a migration is {status}: QEMU only changes capabilities"
        " between migrations; arm before starting the next one"
    )
