"""One-shot snapshots of monitors (``migtui status``): from a session the engine already
holds, or from a read-only connection of their own. Monitors are queried concurrently;
one dead monitor is reported (``ok: false``) without hiding the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..address import CONNECT, LIBVIRT, MonitorAddress
from ..errors import DomainGone, GreetingTimeout, MonitorError
from ..model.advisor import UNKNOWN, Advice
from ..model.migration import MigrationInfo
from ..model.runstate import RunState
from ..transport import Monitor
from .session import MonitorSession

ONE_SNAPSHOT = ("one snapshot, no engine watching this monitor: the verdict needs the passes an engine sees"
                " (watch it with migtui)")


@dataclass
class Snapshot:
    address: MonitorAddress
    error: str | None = None
    qemu: str | None = None
    run_state: str | None = None
    migration: MigrationInfo | None = None
    capabilities: dict[str, bool] = field(default_factory=dict)
    block_jobs: list[dict[str, Any]] = field(default_factory=list)
    held: bool = False  # no QMP greeting: another client (maybe a migtui engine) holds the monitor
    # The advisor's word (``migration.convergence``): the engine's, else "unknown" (one snapshot).
    convergence: dict[str, Any] | None = None
    gone: str | None = None  # a libvirt domain that left its host (migrated away, shut off): why
    pause: dict[str, Any] | None = None  # the engine's pause facts (``engine/facts.py`` pause_json)
    converge_policy: dict[str, Any] | None = None  # the engine's convergence policy on this monitor

    @property
    def stopped(self) -> bool:
        """The guest does not run: a dirty rate QEMU still reports is its last, not a live one."""
        return self.run_state is not None and self.run_state != "running"

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.address.name,
            "address": self.address.display,
            **self.source(),
            "ok": self.ok,
            "error": self.error,
            "qemu": self.qemu,
            "run_state": self.run_state,
            "migration": self._migration_json(),
            "capabilities": self.capabilities,
            "block_jobs": self.block_jobs,
            "gone": self.gone,
            "pause": self.pause_facts(),
            "converge_policy": self.converge_policy,
        }

    def _migration_json(self) -> dict[str, Any] | None:
        if self.migration is None:
            return None
        out = {**self.migration.to_json(), "convergence": self.convergence or no_verdict()}
        if self.stopped:  # never a stopped guest's last figure as a live rate
            out["dirty_rate_bytes_per_s"] = None
            out["dirty_rate_stopped_last_bytes_per_s"] = self.migration.dirty_rate_bytes_per_s
        return out

    def pause_facts(self) -> dict[str, Any] | None:
        """The pause as the engine that watches the monitor knows it, else QEMU's word only."""
        return self.pause or self._pause_json()

    def _pause_json(self) -> dict[str, Any] | None:
        """No engine watches this monitor: QEMU's word only (paused or not; its start unknown)."""
        if self.migration is None:
            return None
        paused = self.migration.status == "pre-switchover"
        return {"paused": paused, "start": None, "start_exact": None, "start_earliest": None, "paused_s": None,
                "deadline": None, "no_deadline": "no migtui engine watches this monitor" if paused else "",
                "armed_by": None, "armed_by_engine": [], "driven_by": None, "driver": "", "destination": None}


    def source(self) -> dict[str, Any]:
        """Where the figures come from: a QMP monitor, or libvirt's API (its URI and domain)."""
        if self.address.kind in (LIBVIRT, CONNECT):
            return {"source": "libvirt", "uri": self.address.path,
                    "domain": self.address.host if self.address.kind == LIBVIRT else None}
        return {"source": "qmp"}

    @classmethod
    def from_json(cls, address: MonitorAddress, data: dict[str, Any]) -> Snapshot:
        """What :meth:`to_json` wrote (the engine's answer), for ``address`` as given here."""
        mig = data.get("migration")
        convergence = mig.get("convergence") if isinstance(mig, dict) else None
        pause, policy = data.get("pause"), data.get("converge_policy")
        return cls(address, error=data.get("error"), qemu=data.get("qemu"), run_state=data.get("run_state"),
                   migration=MigrationInfo.from_qmp(mig.get("raw")) if isinstance(mig, dict) else None,
                   capabilities=dict(data.get("capabilities") or {}),
                   block_jobs=list(data.get("block_jobs") or []),
                   gone=data.get("gone") if isinstance(data.get("gone"), str) else None,
                   convergence=dict(convergence) if isinstance(convergence, dict) else None,
                   pause=dict(pause) if isinstance(pause, dict) else None,
                   converge_policy=dict(policy) if isinstance(policy, dict) else None)


def no_verdict() -> dict[str, Any]:
    """``migration.convergence`` of a snapshot taken without an engine: no passes seen."""
    return Advice(UNKNOWN, ONE_SNAPSHOT).to_json()


def snapshot_of(session: MonitorSession, address: MonitorAddress, block_jobs: Any,
                convergence: dict[str, Any] | None = None) -> Snapshot:
    """The snapshot of a monitor the engine already watches (no new connection), with the
    engine's convergence advice."""
    snap = Snapshot(address, convergence=convergence)
    err = session.status.error
    if isinstance(err, DomainGone):  # a libvirt domain that left its host: its last figures stand
        snap.gone = str(err)
    elif not session.connected:
        snap.error = str(err) if err is not None else f"{session.name}: not connected ({session.status.label()})"
        return snap
    state = session.state
    snap.qemu = session.qemu_version
    snap.run_state = state.run_state.status if state.run_state else None
    snap.migration = state.migration
    snap.capabilities = dict(state.capabilities)
    snap.block_jobs = list(block_jobs) if isinstance(block_jobs, list) else []
    return snap


async def snapshot(address: MonitorAddress, timeout: float) -> Snapshot:
    snap = Snapshot(address)
    mon = Monitor(address, read_only=True, connect_timeout=timeout, command_timeout=timeout)
    try:
        await mon.connect()
        snap.qemu = mon.qemu_version
        snap.capabilities = dict(mon.capabilities)
        # The migration first: QEMU stops the guest before it enters pre-switchover, so a run state
        # read after a pre-switchover is the stopped one ("running" beside it was a stale read).
        snap.migration = MigrationInfo.from_qmp(await mon.execute("query-migrate"))
        snap.run_state = RunState.from_qmp(await mon.execute("query-status")).status
        jobs = await mon.execute("query-block-jobs") if mon.supports("query-block-jobs") else []
        snap.block_jobs = list(jobs) if isinstance(jobs, list) else []
    except MonitorError as exc:
        snap.error = str(exc)
        snap.held = isinstance(exc, GreetingTimeout)
    finally:
        await mon.close()
    return snap


async def collect(addresses: list[MonitorAddress], timeout: float) -> list[Snapshot]:
    return list(await asyncio.gather(*(snapshot(a, timeout) for a in addresses)))
