"""Running a start (``start.py``'s plan): set up, migrate, follow it to its end; a start that
fails midway is undone.

In order: the destination's capabilities and parameters; the storage (``storage.py``: NBD
server and exports on the destination, nodes and mirrors on the source) and the wait until
every mirror is READY; the source's capabilities (pause-before-switchover through the
engine's ``arm``, recorded before QEMU is armed) and parameters; ``migrate-incoming`` on a
monitored destination; ``migrate`` on the source -- ``channels`` where both QEMUs take them
(9.0+), ``uri`` otherwise. A failure at any step undoes every step before it (mirrors, nodes,
exports, server, capabilities and parameters set back; what QEMU cannot take back -- a
destination already listening -- is said). Once QEMU has the migration, a mirror that fails
stops it (``migrate_cancel``, as libvirt does); at its end the storage is finished (completed)
or undone (failed, cancelled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import MigtuiError, MonitorError
from ..model.capabilities import Capabilities
from ..model.migration import FINISHED_STATUSES, RUNNING_STATUSES
from .cancel import MigrationCancel
from .session import MonitorSession
from .start import PAUSE, Plan, waiting_for_migration
from .storage import Storage, run

log = logging.getLogger("migtui.launch")

SETTING_UP = "setting up"
MIRRORING = "mirroring"
MIGRATING = "migrating"
DONE = "done"
FAILED = "failed"
LIVE_STATUSES = frozenset({"setup", "active", "wait-unplug"})  # a failed mirror stops these


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str  # one line, starting with the source's name


class Launch:
    """One start, run once. ``arm`` switches pause-before-switchover (and events) on the way the
    engine records it; ``disarm`` sets it back. ``on_progress`` hears every change of phase."""

    def __init__(self, source: MonitorSession, destination: MonitorSession | None, plan: Plan, *,
                 arm: Callable[[], Awaitable[bool]] | None = None,
                 disarm: Callable[[], Awaitable[None]] | None = None,
                 on_progress: Callable[[Launch], None] | None = None) -> None:
        self.source = source
        self.destination = destination
        self.plan = plan
        self.name = source.name
        self._arm = arm
        self._disarm = disarm
        self._on_progress = on_progress
        self.phase = SETTING_UP
        self.storage = Storage(source, destination, plan) if plan.mirrors and destination is not None else None
        self._restore: list[tuple[MonitorSession, str, dict[str, Any]]] = []  # command + old values, in order
        self._armed = False
        self.listening = False  # the destination runs migrate-incoming: QEMU cannot take that back
        self.failure: str = ""  # a mirror that failed during the migration

    @property
    def detail(self) -> str:
        if self.phase == MIRRORING and self.storage is not None:
            return f"{MIRRORING}: {self.storage.summary}"
        return self.phase

    def _progress(self, phase: str | None = None) -> None:
        if phase is not None:
            self.phase = phase
        if self._on_progress is not None:
            self._on_progress(self)

    # ------------------------------------------------------------------ the start

    async def start(self) -> str:
        """Set up and migrate; the line to tell. MonitorError after undoing what was set up."""
        try:
            await self._set_up()
        except asyncio.CancelledError:  # the operator aborted the start (x): undone, then it ends
            await self._undo()
            self._progress(FAILED)
            raise
        except MigtuiError as err:
            undone = await self._undo()
            self._progress(FAILED)
            raise MonitorError(self.name, f"{err}; {undone}") from None
        self._progress(MIGRATING)
        where = self.plan.destination or self.plan.address.uri
        return f"{self.name}: migration to {where} started"

    async def _set_up(self) -> None:
        src, dst, plan = self.source, self.destination, self.plan
        self._check()
        if dst is not None:
            await self._capabilities(dst, plan.destination_capabilities)
            await self._parameters(dst, plan.destination_parameters)
        if self.storage is not None:
            await self.storage.set_up()
            self._progress(MIRRORING)
            await self.storage.wait_ready(self._progress)
            self._progress(SETTING_UP)
        capabilities = dict(plan.capabilities)
        if capabilities.get(PAUSE) and self._arm is not None:
            self._armed = await self._arm()
            capabilities.pop(PAUSE)
        await self._capabilities(src, capabilities)
        await self._parameters(src, plan.parameters)
        self._check()
        if dst is not None:
            await run(dst, "migrate-incoming", self._where(), f"listen on {plan.address.uri}")
            self.listening = True
        await run(src, "migrate", self._where(), f"to {plan.address.uri}")
        if self.storage is not None:
            self.storage.watch(self._mirror_failed)

    def _check(self) -> None:
        src, dst = self.source, self.destination
        if not src.connected:
            raise MonitorError(self.name, f"{self.name}: monitor not connected")
        if src.state.migration_status in RUNNING_STATUSES:
            raise MonitorError(self.name, f"{self.name}: a migration is under way ({src.state.migration_status})")
        if dst is not None and not self.listening and not waiting_for_migration(dst):
            raise MonitorError(dst.name, f"{dst.name}: not waiting for a migration (it needs -incoming defer)")

    def _where(self) -> dict[str, Any]:
        address = self.plan.address
        return {"channels": address.channels()} if self.plan.channels else {"uri": address.uri}

    async def _capabilities(self, session: MonitorSession, wanted: dict[str, bool]) -> None:
        now = Capabilities.from_qmp(await run(session, "query-migrate-capabilities", None, "capabilities"))
        change = {name: state for name, state in wanted.items() if now.enabled(name) != state}
        if not change:
            return
        await run(session, "migrate-set-capabilities",
                  {"capabilities": [{"capability": n, "state": s} for n, s in change.items()]},
                  ", ".join(f"{n} {'on' if s else 'off'}" for n, s in change.items()))
        self._restore.append((session, "migrate-set-capabilities", {"capabilities": [
            {"capability": n, "state": not s} for n, s in change.items()]}))
        session.poll_soon(config=True)

    async def _parameters(self, session: MonitorSession, wanted: dict[str, int]) -> None:
        if not wanted:
            return
        now = await run(session, "query-migrate-parameters", None, "parameters")
        old = {n: now[n] for n in wanted if isinstance(now, dict) and n in now and now[n] != wanted[n]}
        change = {n: v for n, v in wanted.items() if not isinstance(now, dict) or now.get(n) != v}
        if not change:
            return
        await run(session, "migrate-set-parameters", change, ", ".join(f"{n} {v}" for n, v in change.items()))
        if old:
            self._restore.append((session, "migrate-set-parameters", old))
        session.poll_soon(config=True)

    async def _undo(self) -> str:
        """Every step before the failure, set back; one clause saying so."""
        errors: list[str] = []
        if self.storage is not None:
            errors += await self.storage.undo()
            self.storage.close()
        for session, command, args in reversed(self._restore):
            if session.connected:
                try:
                    await session.execute(command, args)
                except MigtuiError as err:
                    errors.append(f"{session.name}: {command}: {err}")
            session.poll_soon(config=True)
        self._restore = []
        if self._armed and self._disarm is not None:
            try:
                await self._disarm()
            except MigtuiError as err:
                errors.append(str(err))
        if self.listening and self.destination is not None:
            errors.append(f"{self.destination.name} still listens on {self.plan.address.uri}"
                          " (QEMU cannot take migrate-incoming back)")
        return ("not all undone: " + "; ".join(errors)) if errors else "nothing left set up"

    # ------------------------------------------------------------------ until its end

    def _mirror_failed(self, why: str) -> None:
        if self.source.state.migration_status in LIVE_STATUSES and not self.failure:
            self.failure = why
            log.warning("%s: stopping the migration", why)
            asyncio.get_running_loop().create_task(MigrationCancel(self.source).run(), name=f"stop-{self.name}")

    async def follow(self) -> Outcome:
        """Until the migration ends; then the storage finished, or undone."""
        src = self.source
        generation = src.generation
        ended = asyncio.Event()
        remove = src.add_change_listener(
            lambda s, _k: ended.set() if s.state.migration_status in FINISHED_STATUSES
            or s.generation != generation else None)
        try:
            while src.state.migration_status not in FINISHED_STATUSES and src.generation == generation:
                ended.clear()
                await ended.wait()
        finally:
            remove()
        status = src.state.migration_status if src.generation == generation else "unknown (monitor reconnected)"
        errors: list[str] = []
        if self.storage is not None:
            errors = await (self.storage.finish() if status == "completed" else self.storage.undo())
            self.storage.close()
        self._progress(DONE if status == "completed" else FAILED)
        tail = f"; clean-up: {'; '.join(errors)}" if errors else (
            "; NBD nodes and server removed" if self.storage is not None else "")
        if self.failure:
            return Outcome(False, f"{self.failure}: migration stopped ({status}){tail}")
        info = src.state.migration
        why = f": {info.error_desc}" if status == "failed" and info.error_desc else ""
        return Outcome(status == "completed", f"{self.name}: migration {status}{why}{tail}")
