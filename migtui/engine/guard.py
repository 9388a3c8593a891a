"""A pause migtui did not arm, under the operator's deadline, outlives the engine too.

A source armed by someone else (the lab, the operator's own tooling) and watched with an
explicit deadline (``--max-pause``/``--on-max-pause`` naming it: ``policy.applies``) has no
armed record (``durable.py``). Yet once it is paused before switchover, its bound is this
engine's alone. So for such a pause the engine keeps a **guard record**
(``records.GuardRecord``, ``guard-TOKEN.json``): the address, the policy with the flags
the operator gave, and the pause's start as the engine's PauseClock has it. It is written
(fsynced) ``PAUSE_RECORD_DELAY_S`` after the pause began, never while the engine acts on
the stopped guest, and removed when the pause ends (switchover, abort, resume, the
migration or the QEMU gone), when no deadline applies to it any more (the policy changed,
libvirt drives it), or when the source is no longer watched (the pause is the operator's
then). Never for a read-only monitor, nor for a source migtui armed (its armed record
holds its pause).

No marker: migtui did not arm this QEMU, and an ``object-add`` during the pause would cost
the stopped guest a round trip. The migration itself tells that QEMU's pause from any
other: an engine that starts watches each recorded monitor with the recorded policy and,
on each connection, takes the record up only if QEMU is in pre-switchover now, its
migration began before the recorded pause start (by QEMU's total-time: another QEMU at
that socket, or a later migration of the same one, began after it) and libvirt does not
drive it. The pause's deadline then counts from the recorded start, so one already past
--max-pause is acted on at once. Otherwise -- the pause is over, another migration, no
QEMU listening -- the record is dropped, nothing is sent, and a monitor the engine
watched only for that record is no longer watched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from ..libvirt.domain import LIBVIRT
from ..model.migration import MigrationInfo
from ..transport.status import nothing_listening
from ..workflow.ownership import detect_manager
from ..workflow.policy import OWNER_OTHER, applies
from ..workflow.session import CONNECTION, MonitorSession, Reconnected
from .durable import (
    PAUSE_RECORD_DELAY_S,
    Adopted,
    Durable,
    answered,
    by_engine,
    migration_start,
    probe,
    same_migration,
)
from .records import GUARD_PREFIX, GuardRecord

if TYPE_CHECKING:
    from .engine import Watched

log = logging.getLogger("migtui.engine.guard")


class Guards:
    def __init__(self, durable: Durable) -> None:
        self.durable = durable  # the store, and the pauses taken up (``Durable.origin``)
        self.engine = durable.engine
        self.records: dict[str, GuardRecord] = {}  # address display -> its record
        self.verified: dict[str, int] = {}  # display -> the connection its pause is the record's on
        self.unasked: set[str] = set()  # displays watched only to take their record up
        self._verifying: dict[str, int] = {}  # display -> the connection being looked at
        self._pending: set[str] = set()  # displays whose record is to be brought up to date soon
        self._lock = asyncio.Lock()  # one file operation at a time, in order
        self._tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    # ------------------------------------------------------------------ the engine's hooks

    def hook(self, w: Watched) -> None:
        w.session.add_change_listener(partial(self._on_change, w))

    def asked(self, display: str) -> None:
        """A view asked to watch ``display``: it stays watched whatever becomes of its record."""
        self.unasked.discard(display)

    def pending(self, w: Watched) -> bool:
        """Whether ``w`` has a record not looked at on this connection yet."""
        display = w.address.display
        return display in self.records and self.verified.get(display) != w.session.generation

    def unwatched(self, w: Watched) -> None:
        """``w`` is no longer watched: its pause, if any, is the operator's again."""
        rec = self.records.get(w.address.display)
        if rec is not None:
            self._discard(rec)
            self._spawn(self._remove(rec, f"{w.name}: no longer watched: guard record removed"))

    async def adopt(self) -> None:
        """On start: watch every source whose pause an engine guarded in this runtime directory."""
        store = self.durable.store
        if store is None:
            return
        records = await asyncio.to_thread(store.load_guards)
        records.sort(key=lambda r: -r.written_at)  # two for one socket (should not be): the latest counts
        alive = await asyncio.gather(*(probe(r.address) for r in records))
        for rec, listening in zip(records, alive, strict=True):
            display = rec.address.display
            if listening is False or display in self.records or display in self.durable.records:
                why = "no QEMU listens there any more" if listening is False else "another record names it"
                await self._remove(rec, f"{rec.name} ({display}): paused, guarded by migtui (engine"
                                        f" {rec.engine_pid}); {why}: record dropped")
                continue
            self.records[display] = rec
            self.engine.watch([rec.address], rec.policy, read_only=False, interval=rec.interval)
            self.unasked.add(display)
            log.info("%s (%s): paused, guarded by migtui (engine %d, deadline %g s then %s); taking it up again"
                     " if that pause goes on", rec.name, display, rec.engine_pid, rec.policy.max_pause_s,
                     rec.policy.on_max_pause)

    # ------------------------------------------------------------------ watching

    def _on_change(self, w: Watched, session: MonitorSession, kinds: frozenset[str]) -> None:
        display = w.address.display
        rec = self.records.get(display)
        if rec is not None and CONNECTION in kinds:
            generation = session.generation
            if session.connected:
                if self.verified.get(display) != generation and self._verifying.get(display) != generation:
                    self._verifying[display] = generation
                    task = self._spawn(self._verify(w, rec, generation))
                    task.add_done_callback(lambda _t: self._verifying.pop(display, None)
                                           if self._verifying.get(display) == generation else None)
            elif nothing_listening(session.status.error):
                self._discard(rec)  # at once: the next status change must not drop it again
                self._spawn(self._remove(rec, f"{w.name}: no QEMU listens at {display} any more: its pause is"
                                              " over; guard record removed"))
                return
        self.check(w)

    def check(self, w: Watched) -> None:
        """Bring ``w``'s record up to date soon if it is not (its policy may have changed)."""
        display = w.address.display
        rec = self.records.get(display)
        session = w.session
        if (display in self._pending or not session.connected
                or (rec is not None and self.verified.get(display) != session.generation)):
            return  # due already; or no connection, or one being looked at (_verify)
        if rec is None and not session.state.in_pre_switchover:
            return  # the usual case, at no cost
        if self.engine.critical() or not self._known(w):
            self._sync_soon(w)  # decided later: nothing in the way of a stopped guest now
            return
        want = self._want(w)
        held = None if rec is None else (rec.pause_since, rec.pause_exact, rec.policy)
        if held != (None if want is None else (*want, w.policy)):
            self._sync_soon(w)

    @staticmethod
    def _known(w: Watched) -> bool:
        """Whether what ``w``'s record is to hold can be told now: on a connection, and (for
        a pause) once it is known whether libvirt drives that QEMU."""
        return w.session.connected and (w.manager_checked or not w.session.state.in_pre_switchover)

    def _want(self, w: Watched) -> tuple[float, bool] | None:
        """The pause ``w``'s record is to hold: its start, and whether that is QEMU's stamp
        (None: no record -- not paused, or no deadline of migtui's applies to that pause)."""
        session = w.session
        if (not session.state.in_pre_switchover or self.durable.store is None or session.read_only
                or w.address.display in self.durable.records or w.owner != OWNER_OTHER
                or not applies(w.policy, w.owner, "deadline")[0]):
            return None
        return self.durable.pause_start(w)

    def _sync_soon(self, w: Watched) -> None:
        display = w.address.display
        if display in self._pending:
            return
        self._pending.add(display)
        asyncio.get_running_loop().call_later(PAUSE_RECORD_DELAY_S, lambda: self._spawn(self._sync(w)))

    async def _sync(self, w: Watched) -> None:
        """Bring ``w``'s record up to date -- never while the engine acts on a stopped guest."""
        display = w.address.display
        self._pending.discard(display)
        if self.engine.watched.get(w.name) is not w:
            return
        if self.engine.critical() or (w.session.connected and not self._known(w)):
            self._sync_soon(w)  # later (libvirt's signs are being looked for: a moment)
            return
        rec = self.records.get(display)
        if not self._known(w) or (rec is not None and self.verified.get(display) != w.session.generation):
            return  # no connection: its next one is looked at (_verify)
        want = self._want(w)
        if want is None:
            if rec is not None:
                why = ("no deadline of migtui's applies to its pause any more" if w.session.state.in_pre_switchover
                       else "its pause is over")
                self._discard(rec)
                await self._remove(rec, f"{w.name}: {why}: guard record removed")
            return
        since, exact = want
        if rec is None:
            rec = GuardRecord.new(w.address, w.name, w.policy, w.session.interval, since, exact)
            self.records[display] = rec
            self.verified[display] = w.session.generation
            log.info("%s: paused before switchover, deadline %g s then %s: guarded, and recorded (%s%s.json)",
                     w.name, w.policy.max_pause_s, w.policy.on_max_pause, GUARD_PREFIX, rec.token)
        rec.pause_since, rec.pause_exact, rec.policy = since, exact, w.policy
        await self._save(rec)

    async def _verify(self, w: Watched, rec: GuardRecord, generation: int) -> None:
        """Is the pause on this connection the one recorded? Then take it up again."""
        session = w.session
        display = w.address.display

        async def ask() -> MigrationInfo:
            return MigrationInfo.from_qmp(await session.execute("query-migrate", generation=generation))

        try:
            info = await answered(session, generation, ask, lambda: self.records.get(display) is rec,
                                  f"{w.name}: cannot ask QEMU about the pause migtui guarded yet")
        except Reconnected:
            return  # the next connection looks again
        start = migration_start(info, self.engine.clock())
        if info.status != "pre-switchover":
            why = f"its pause is over (migration {info.status})"
        elif start is None or not same_migration(rec.pause_since, start):
            why = "the migration there began after that pause: another migration, or another QEMU"
        elif session.monitor is not None and (await detect_manager(session.monitor))[0] == LIBVIRT:
            why = "libvirt drives it"  # (the engine's own look at it may not have answered yet)
        else:
            why = None
        if self.records.get(display) is not rec or session.generation != generation:
            return
        if why is None:
            self.verified[display] = generation
            self.durable.take_up(w, Adopted(generation, rec.pause_since, rec.pause_exact),
                                 f"guarded by migtui{by_engine(rec.engine_pid)}",
                                 "QEMU's pause start, as recorded" if rec.pause_exact
                                 else "the engine's first sight of it, as recorded")
            self.engine._facts_due(w)
            self.engine.maybe_exit_soon()
            return
        unasked = display in self.unasked  # nobody asked this engine to watch it
        self._discard(rec)
        await self._remove(rec, f"{w.name}: paused when migtui guarded it; {why}: guard record dropped, nothing sent")
        if unasked:
            self.engine.unwatch(w.name, f"{w.name}: watched only to take up that record")
        else:
            self.engine.maybe_exit_soon()

    def _spawn(self, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ files

    def _discard(self, rec: GuardRecord) -> None:
        display = rec.address.display
        if self.records.get(display) is rec:
            del self.records[display]
            self.verified.pop(display, None)
            self.unasked.discard(display)

    async def _save(self, rec: GuardRecord) -> None:
        store = self.durable.store
        if store is None:
            return
        async with self._lock:
            if self.records.get(rec.address.display) is rec:  # not dropped meanwhile
                await asyncio.to_thread(store.save, dataclasses.replace(rec))

    async def _remove(self, rec: GuardRecord, why: str) -> None:
        store = self.durable.store
        if store is not None:
            async with self._lock:
                await asyncio.to_thread(store.remove, rec.token, GUARD_PREFIX)
        log.info("%s", why)
