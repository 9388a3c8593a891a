"""The engine's side of starting a migration: the offer it decides and sends (``start-offer``),
the controls (``start``, ``write-blocking``, and ``abort`` while a start sets up), and the
``start`` request that runs a :class:`~migtui.workflow.launch.Launch`.

The disks of each monitor come from ``query-block``, read on each connection (while no
mirror runs: a mirror puts its filter node above the disk). The offer of a source is decided
again when it changes, and every source's when a destination's readiness changes. A start
answers at once once its choices are valid; every view hears how it goes (notices, and the
``start`` control's reason), and an ``x`` while it sets up stops it and undoes the set-up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MigtuiError
from ..model.advisor import ABORT
from ..model.disks import Disk, parse_disks
from ..model.units import BadValue
from ..protocol import messages as m
from ..workflow import start
from ..workflow.launch import MIGRATING, MIRRORING, SETTING_UP, Launch
from ..workflow.session import CONFIG, CONNECTION, MIGRATION, RUN_STATE
from ..workflow.storage import CHANGE, write_blocking
from .libvirt_start import LibvirtStarts

if TYPE_CHECKING:
    from .engine import Engine, ViewLink, Watched

log = logging.getLogger("migtui.engine")

OFFER_KINDS = frozenset({CONFIG, CONNECTION, RUN_STATE, MIGRATION})
START = "start"
WRITE_BLOCKING = "write-blocking"
START_DOES = ("set up and start a migration to a destination you pick: capabilities, parameters, disks"
              " mirrored over NBD; a summary to confirm first")
WRITE_BLOCKING_DOES = ("switch the start's disk mirrors to write-blocking (block-job-change): each guest write"
                       " waits until the destination has it, so the mirrors converge; the guest's writes slow")
STOP_START_DOES = "stop this start and undo its set-up (mirrors force-cancelled, NBD nodes, exports and server)"


@dataclass
class StartRun:
    launch: Launch
    actor: str
    task: asyncio.Task[Any]


class EngineStart:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._disks: dict[str, list[Disk]] = {}
        self._sent: dict[str, m.StartOffer] = {}
        self._runs: dict[str, StartRun] = {}
        self._waiting: set[str] = set()  # monitors that were destinations on offer
        self.libvirt = LibvirtStarts(engine)  # a libvirt domain's start: libvirt's migrateToURI3

    # ------------------------------------------------------------------ the offer

    def message(self, w: Watched) -> m.StartOffer:
        return self._sent.get(w.name) or self._decide(w)

    def _decide(self, w: Watched) -> m.StartOffer:
        if w.via_libvirt:
            return m.StartOffer(w.name, self.libvirt.offers(w))
        sessions = self.engine.sessions()
        return m.StartOffer(w.name, start.offers(w.session, sessions, self._disks))

    def on_change(self, w: Watched, kinds: frozenset[str]) -> None:
        if w.via_libvirt:  # its disks from libvirt's XML; a host's coming or going changes every offer
            self.libvirt.on_change(w)
            if CONNECTION in kinds:
                self.refresh(*self.engine.watched.values())
                for other in self.engine.watched.values():  # a host's domains came or went: `m` elsewhere
                    if other is not w and other.via_libvirt:
                        self.engine.refresh_controls(other)
            elif kinds & OFFER_KINDS:
                self.refresh(w)
            return
        if CONNECTION in kinds and w.session.connected:
            asyncio.get_running_loop().create_task(self._read_disks(w), name=f"disks-{w.name}")
        if not kinds & OFFER_KINDS:
            return
        waiting = start.waiting_for_migration(w.session)
        if waiting != (w.name in self._waiting):  # a destination came or went: every source's offer changes
            self._waiting ^= {w.name}
            self.refresh(*self.engine.watched.values())
        else:
            self.refresh(w)

    def refresh(self, *watched: Watched) -> None:
        for w in watched:
            message = self._decide(w)
            if message != self._sent.get(w.name):
                self._sent[w.name] = message
                self.engine.broadcast(message)

    async def _read_disks(self, w: Watched) -> None:
        session = w.session
        if session.state.block_jobs:
            return
        try:
            disks = parse_disks(await session.execute("query-block"))
        except MigtuiError as err:
            log.info("%s: query-block: %s", w.name, err)
            return
        if disks != self._disks.get(w.name):
            self._disks[w.name] = disks
            self.refresh(*self.engine.watched.values())

    def under_way(self, w: Watched) -> str | None:
        """One line while a start of ``w`` runs (the engine guards it: no view may be attached)."""
        running = self._runs.get(w.name)
        if running is None:
            return self.libvirt.under_way(w)
        return f"a start of a migration under way ({running.launch.detail})"

    # ------------------------------------------------------------------ the controls

    def controls(self, w: Watched) -> dict[str, m.Control]:
        if w.via_libvirt:
            return {**self.libvirt.controls(w), WRITE_BLOCKING: m.Control(False, f"{w.name}: libvirt's mirrors are"
                                                                                  " libvirt's", WRITE_BLOCKING_DOES)}
        session = w.session
        running = self._runs.get(w.name)
        actions: dict[str, m.Control] = {}
        if running is not None:
            launch = running.launch
            actions[START] = m.Control(None, f"{w.name}: start under way ({launch.detail}; by {running.actor})")
            if self._stoppable(running):
                actions[ABORT] = m.Control(True, "", STOP_START_DOES)
        else:
            allowed = start.can_start(session)
            actions[START] = m.Control(allowed.allowed, allowed.reason, START_DOES)
        actions[WRITE_BLOCKING] = self._write_blocking(w)
        return actions

    def _write_blocking(self, w: Watched) -> m.Control:
        running = self._runs.get(w.name)
        if running is None or not running.launch.plan.mirrors or running.launch.phase not in (MIRRORING, MIGRATING):
            return m.Control(False, f"{w.name}: no disk mirror of a start running", WRITE_BLOCKING_DOES)
        if not w.session.supports(CHANGE):
            version = w.session.qemu_version or ""
            return m.Control(None, f"{w.name}: QEMU {version} has no {CHANGE} (8.2+)".replace("  ", " "),
                             WRITE_BLOCKING_DOES)
        return m.Control(True, "", WRITE_BLOCKING_DOES)

    # ------------------------------------------------------------------ requests

    def handles(self, w: Watched, action: str) -> bool:
        running = self._runs.get(w.name)
        return action == WRITE_BLOCKING or (action == ABORT and running is not None and self._stoppable(running))

    @staticmethod
    def _stoppable(running: StartRun) -> bool:
        """Before migrate-incoming: everything set up so far can be undone."""
        return running.launch.phase in (SETTING_UP, MIRRORING) and not running.launch.listening

    async def act(self, w: Watched, view: ViewLink, action: str) -> m.Reply:
        running = self._runs.get(w.name)
        if action == ABORT:
            assert running is not None
            running.task.cancel()
            self.engine.broadcast(m.Notice("info", f"{w.name}: start stopped by {view.label}: undoing its set-up",
                                           w.name))
            return m.Reply(0, True, message=f"{w.name}: start stopped: undoing its set-up", actor=view.label)
        allowed = self._write_blocking(w)
        if allowed.allowed is not True or running is None:
            return m.Reply(0, False, error=allowed.reason)
        jobs = [mirror.job for mirror in running.launch.plan.mirrors]
        try:
            for job in jobs:
                await write_blocking(w.session, job)
        except MigtuiError as err:
            return m.Reply(0, False, error=str(err))
        said = f"{w.name}: {', '.join(jobs)} write-blocking now (by {view.label})"
        log.info("%s", said)
        self.engine.broadcast(m.Notice("info", said, w.name))
        return m.Reply(0, True, message=said, actor=view.label)

    async def request(self, view: ViewLink, message: m.Start) -> m.Reply:
        engine = self.engine
        w = engine.watched.get(message.monitor)
        if w is None:
            return m.Reply(0, False, error=f"{message.monitor}: not watched by the engine")
        if view.read_only:
            log.warning("%s: start refused: the view %s is read-only", w.name, view.label)
            return m.Reply(0, False, error=f"read-only view: the engine refuses to start a migration of {w.name}")
        if w.via_libvirt:
            return await self.libvirt.request(view, w, message)
        running = self._runs.get(w.name)
        if running is not None:
            return m.Reply(0, False, error=f"{w.name}: a start is under way already (by {running.actor})")
        allowed = start.can_start(w.session)
        if allowed.allowed is not True:
            return m.Reply(0, False, error=allowed.reason)
        target = next((t for t in self._decide(w).targets if t.name == message.destination), None)
        destination = engine.watched.get(message.destination) if message.destination else None
        if target is None or (message.destination and destination is None):
            return m.Reply(0, False, error=f"{message.destination}: not waiting for a migration (-incoming defer)")
        choices = start.Choices(message.destination, message.address, tuple(message.capabilities),
                                dict(message.parameters), tuple(message.disks))
        try:
            plan = start.plan(w.name, target, choices)
        except BadValue as err:
            return m.Reply(0, False, error=str(err))
        launch = Launch(w.session, destination.session if destination is not None else None, plan,
                        arm=lambda: engine.arm(w), disarm=lambda: engine.disarm_engine(w),
                        on_progress=lambda _l: engine.refresh_controls(w))
        task = asyncio.get_running_loop().create_task(self._run(w, launch, view.label), name=f"start-{w.name}")
        self._runs[w.name] = StartRun(launch, view.label, task)
        log.info("%s: start requested by %s: %s", w.name, view.label, "; ".join(start.summary(plan)))
        engine.refresh_controls(w)
        first = "setting up the disk mirrors" if plan.mirrors else "setting up"
        engine.broadcast(m.Notice("info", f"{w.name}: start by {view.label}: {first}", w.name))
        return m.Reply(0, True, message=f"{w.name}: start under way", actor=view.label)

    async def _run(self, w: Watched, launch: Launch, actor: str) -> None:
        try:
            said = await launch.start()
            log.info("%s (by %s)", said, actor)
            self.engine.broadcast(m.Notice("info", said, w.name))
            outcome = await launch.follow()
            (log.info if outcome.ok else log.warning)("%s", outcome.message)
            self.engine.broadcast(m.Notice("info" if outcome.ok else "error", outcome.message, w.name))
        except asyncio.CancelledError:
            self.engine.broadcast(m.Notice("info", f"{w.name}: start stopped; its set-up undone", w.name))
        except MigtuiError as err:
            log.warning("start failed: %s", err)
            self.engine.broadcast(m.Notice("error", f"start failed: {err}", w.name))
        finally:
            self._runs.pop(w.name, None)
            self.engine.refresh_controls(w)
            if not self.engine.views:  # it guarded this start: maybe nothing now
                self.engine.maybe_exit_soon()
            asyncio.get_running_loop().create_task(self._read_disks(w))
