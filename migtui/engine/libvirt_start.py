"""The engine's side of starting a migration of a libvirt domain (``m``): the offer (every other
connected libvirt host), the ``start`` control, and the request that calls libvirt's
``migrateToURI3`` (``workflow/libvirt_start.py`` plans it). Never a QMP command: libvirt owns
the domain's monitor and drives the migration, its pause and its end; migtui follows it as it
follows one started with ``virsh migrate``, and knows what it asked for (postcopy allowed or
not: libvirt's API does not tell that of a migration someone else started).
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MigtuiError
from ..libvirt.connection import LibvirtHost
from ..libvirt.domain import DomainMonitor
from ..model.migration import FINISHED_STATUSES, RUNNING_STATUSES
from ..model.startoffer import StartTarget
from ..model.units import BadValue
from ..protocol import messages as m
from ..transport import ConnState
from ..workflow import libvirt_start as lv_start
from ..workflow.start import Choices

if TYPE_CHECKING:
    from .engine import Engine, ViewLink, Watched

log = logging.getLogger("migtui.engine")

START_DOES = ("migrate it to another libvirt host you pick (libvirt's migrateToURI3: live, peer to peer,"
              " copying the disks you tick); a summary to confirm first")


@dataclass
class LibvirtRun:
    plan: lv_start.LibvirtPlan
    actor: str
    task: asyncio.Task[Any]
    began: bool = False  # libvirt's job was seen running


class LibvirtStarts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._disks: dict[str, tuple[int, list[tuple[str, int | None]]]] = {}  # monitor -> (generation, disks)
        self._runs: dict[str, LibvirtRun] = {}
        self._postcopy: dict[str, bool] = {}  # monitor -> postcopy allowed in the migration migtui started

    # ------------------------------------------------------------------ what migtui asked for

    def postcopy(self, w: Watched) -> bool | None:
        """Whether the migration under way was started by migtui with postcopy allowed (None:
        migtui did not start it, so it does not know)."""
        return self._postcopy.get(w.name)

    def on_change(self, w: Watched) -> None:
        run = self._runs.get(w.name)
        status = w.session.state.migration_status
        if run is not None and status in RUNNING_STATUSES:
            run.began = True
        if w.name in self._postcopy and run is None and status not in RUNNING_STATUSES:
            del self._postcopy[w.name]  # its job has ended: the next one is not known
        if w.session.connected and self._disks.get(w.name, (None,))[0] != w.session.generation:
            self._disks[w.name] = (w.session.generation, [])
            asyncio.get_running_loop().create_task(self._read_disks(w), name=f"libvirt-disks-{w.name}")

    # ------------------------------------------------------------------ the offer

    def _host(self, w: Watched) -> LibvirtHost | None:
        monitor = w.session.monitor
        return monitor.host if isinstance(monitor, DomainMonitor) else None

    def destinations(self, w: Watched) -> list[LibvirtHost]:
        """The other libvirt hosts connected now: where ``w`` may go."""
        mine = self._host(w)
        return [h for h in self.engine.libvirt.values()
                if h is not mine and h.status.state is ConnState.CONNECTED]

    def offers(self, w: Watched) -> list[StartTarget]:
        disks = self._disks.get(w.name, (0, []))[1]
        bandwidth = w.session.parameters.get("max-bandwidth")
        return [lv_start.offer(h.name, disks, bandwidth if isinstance(bandwidth, int) else None)
                for h in self.destinations(w)]

    async def _read_disks(self, w: Watched) -> None:
        monitor = w.session.monitor
        if not isinstance(monitor, DomainMonitor) or monitor.dom is None:
            return
        generation = w.session.generation
        try:
            xml = await monitor.host.call("XMLDesc", monitor.dom.XMLDesc, 0)
        except MigtuiError as err:
            log.info("%s: the domain's disks: %s", w.name, err)
            return
        targets = [t.get("dev", "") for d in ET.fromstring(xml).findall("devices/disk")
                   if d.get("device", "disk") == "disk" and d.find("readonly") is None
                   for t in d.findall("target") if t.get("dev")]
        disks: list[tuple[str, int | None]] = []
        for target in targets:
            try:  # (capacity, allocation, physical): the guest's size of it
                size = int((await monitor.host.call("blockInfo", monitor.dom.blockInfo, target, 0))[0])
            except (MigtuiError, AttributeError):  # (the domain went meanwhile: dom is None)
                size = None
            disks.append((target, size))
        self._disks[w.name] = (generation, disks)
        self.engine.starts.refresh(w)

    # ------------------------------------------------------------------ the controls

    def controls(self, w: Watched) -> dict[str, m.Control]:
        running = self._runs.get(w.name)
        if running is not None:
            plan = running.plan
            return {"start": m.Control(None, f"{w.name}: migrating to {plan.destination} (libvirt's migrateToURI3,"
                                             f" started by {running.actor})", START_DOES)}
        allowed = lv_start.can_start(w.session, [h.name for h in self.destinations(w)])
        return {"start": m.Control(allowed.allowed, allowed.reason, START_DOES)}

    def under_way(self, w: Watched) -> str | None:
        running = self._runs.get(w.name)
        return f"a migration to {running.plan.destination} it started (migrateToURI3)" if running else None

    # ------------------------------------------------------------------ the request

    async def request(self, view: ViewLink, w: Watched, message: m.Start) -> m.Reply:
        running = self._runs.get(w.name)
        if running is not None:
            return m.Reply(0, False, error=f"{w.name}: a migration it started is under way (by {running.actor})")
        allowed = lv_start.can_start(w.session, [h.name for h in self.destinations(w)])
        if allowed.allowed is not True:
            return m.Reply(0, False, error=allowed.reason)
        target = next((t for t in self.offers(w) if t.name == message.destination), None)
        if target is None:
            return m.Reply(0, False, error=f"{message.destination or 'a typed URI'}: not a connected libvirt host"
                                           " to migrate to")
        choices = Choices(message.destination, message.address, tuple(message.capabilities),
                          dict(message.parameters), tuple(message.disks))
        try:
            plan = lv_start.plan(w.name, target, choices)
        except BadValue as err:
            return m.Reply(0, False, error=str(err))
        destination = next(h for h in self.destinations(w) if h.name == plan.destination)
        self._postcopy[w.name] = "POSTCOPY" in plan.flags
        task = asyncio.get_running_loop().create_task(self._run(w, plan, destination, view.label),
                                                      name=f"libvirt-start-{w.name}")
        self._runs[w.name] = LibvirtRun(plan, view.label, task)
        log.info("%s: start requested by %s: %s", w.name, view.label, "; ".join(lv_start.summary(plan)))
        self.engine.refresh_controls(w)
        self.engine.refresh_advice(w)
        self.engine.broadcast(m.Notice("info", f"{w.name}: migration to {plan.destination} started by {view.label}"
                                               " (libvirt's migrateToURI3)", w.name))
        return m.Reply(0, True, message=f"{w.name}: migration to {plan.destination} under way", actor=view.label)

    async def _run(self, w: Watched, plan: lv_start.LibvirtPlan, destination: LibvirtHost, actor: str) -> None:
        monitor = w.session.monitor
        try:
            if not isinstance(monitor, DomainMonitor) or monitor.dom is None:
                raise MigtuiError(f"{w.name}: no longer runs here")
            lv = monitor.host.libvirt
            flags = 0
            for name in plan.flags:
                flags |= getattr(lv, f"VIR_MIGRATE_{name}")
            # Returns when libvirt's migration has ended (p2p: the source's libvirtd drives it).
            await monitor.host.call_to_end("migrateToURI3", monitor.dom.migrateToURI3, destination.uri,
                                           plan.params(), flags)
            said = f"{w.name}: migrated to {plan.destination} by libvirt (started by {actor})"
            log.info("%s", said)
            self.engine.broadcast(m.Notice("info", said, w.name))
        except MigtuiError as err:
            said = f"{w.name}: the migration to {plan.destination} failed: {err}"
            log.warning("%s", said)
            self.engine.broadcast(m.Notice("error", said, w.name))
        finally:
            self._runs.pop(w.name, None)
            if w.session.state.migration_status in FINISHED_STATUSES or not w.session.connected:
                self._postcopy.pop(w.name, None)
            self.engine.refresh_controls(w)
            if not self.engine.views:  # it guarded this migration: maybe nothing now
                self.engine.maybe_exit_soon()
