"""What the engine armed outlives the engine: records, markers, and taking them up again.

A source migtui armed stops its guest at its next pause with nobody else to bound it:
an engine killed (SIGKILL, the OOM killer, a crash) must not take that bound with it.
So, for every source it arms, the engine keeps

- a **record** in its runtime directory (``records.py``): the address, what it switched
  on, the operator's policy, and the pause in progress with its start -- written and
  fsynced *before* the capability is set, removed once it is set back;
- a **marker** in the QEMU itself (``workflow/marker.py``), named by the record's token:
  it tells *that* QEMU process from any other that may later listen at the same socket.

An engine that starts takes every record up at once (:meth:`Durable.adopt`): it watches
the monitor by itself (no view needed), and on each connection looks for the marker.
Marker there: the source is migtui's again, with the recorded policy -- a pause in
progress gets its deadline counted from QEMU's own pause start (as recorded; when the
pause began with no engine, from the earliest moment it can have begun: the migration's
start by QEMU's total-time, or the last time an engine saw the source not paused), so a
pause already past --max-pause is acted on at once; a source armed with nothing to guard
is guarded (the engine stays) and set back when the engine ends, as before. No marker,
or no QEMU listening any more: another QEMU, or none -- the record is dropped and
nothing is sent. Nothing armed any more: marker and record go.

A pause on a source migtui did *not* arm, bounded by the operator's explicit deadline,
has a record of its own, without a marker (``guard.py``); it shares what is here: the
pauses taken up (:meth:`Durable.take_up`, :meth:`Durable.origin`) and when a pause is
recorded (``PAUSE_RECORD_DELAY_S``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..address import MonitorAddress
from ..errors import CommandFailed, MigtuiError, MonitorError
from ..model.capabilities import Capabilities
from ..model.migration import MigrationInfo
from ..model.pauseclock import PauseClock
from ..transport.status import nothing_listening
from ..workflow.arm import ArmResult, arm_session
from ..workflow.marker import add_marker, marked, remove_marker
from ..workflow.session import CONNECTION, MonitorSession, Reconnected
from .records import ArmedRecord, RecordStore

if TYPE_CHECKING:
    from .engine import Engine, Watched

log = logging.getLogger("migtui.engine.durable")
T = TypeVar("T")

# A pause is recorded this long after it began, never while the engine acts on the
# stopped guest: auto-resume ends most pauses within milliseconds, and every one counts.
PAUSE_RECORD_DELAY_S = 0.25
HEARTBEAT_S = 1.0  # the record's mtime is touched at most this often
PROBE_TIMEOUT_S = 2.0
VERIFY_RETRY_S = 2.0  # the marker could not be looked for (QEMU busy): again after this
# A recorded pause belongs to the migration in progress if it began after that migration
# started (QEMU's total-time, as two engines computed it, differs by a poll's latency).
SAME_MIGRATION_S = 2.0


@dataclass(frozen=True)
class Adopted:
    """A pause in progress when the engine took its source up again."""

    generation: int
    origin: float  # what its deadline counts from
    exact: bool  # QEMU's own stamp (recorded by the engine before), not a bound


def same_migration(recorded: float, migration_start: float | None) -> bool:
    """Whether a pause recorded as beginning at ``recorded`` can be one of the migration that
    started at ``migration_start`` (QEMU's total-time; None: unknown, it can)."""
    return migration_start is None or recorded >= migration_start - SAME_MIGRATION_S


def pause_origin(recorded: float | None, migration_start: float | None, seen_unpaused: float | None,
                 now: float) -> tuple[float, bool]:
    """(when the pause in progress began, whether that is QEMU's stamp) for a source taken
    up again during its pause. ``recorded``: the pause start in the record (QEMU's stamp,
    kept by the engine before); it counts if it is this migration's (not before its
    start). Otherwise the earliest moment the pause can have begun: after the migration
    started and after an engine last saw the source not paused. Pure, for tests."""
    if recorded is not None and same_migration(recorded, migration_start):
        return recorded, True
    bounds = [b for b in (migration_start, seen_unpaused) if b is not None]
    return (min(max(bounds), now) if bounds else now), False


class Durable:
    def __init__(self, engine: Engine, directory: Path | None) -> None:
        self.engine = engine
        self.store = RecordStore(directory) if directory is not None else None
        self.records: dict[str, ArmedRecord] = {}  # address display -> its record
        self.verified: dict[str, int] = {}  # display -> the connection its marker was found on
        self.adopted: dict[str, Adopted] = {}  # display -> the pause found in progress
        self._lock: asyncio.Lock | None = None  # one file operation at a time, in order
        self._verifying: dict[str, int] = {}  # display -> the connection being looked at
        self._pending: set[str] = set()  # tokens whose pause is to be recorded soon
        self._beats: dict[str, float] = {}

    # ------------------------------------------------------------------ the engine's hooks

    def hook(self, w: Watched) -> None:
        w.session.add_change_listener(partial(self._on_change, w))

    def owned(self, w: Watched) -> ArmedRecord | None:
        """The record of ``w``, if this connection is to the QEMU it was made for."""
        display = w.address.display
        rec = self.records.get(display)
        return rec if rec is not None and self.verified.get(display) == w.session.generation else None

    def origin(self, w: Watched, since: float) -> float:
        """What the deadline of ``w``'s pause counts from: QEMU's pause start as recorded
        when this engine took the pause up again, else its own record of it (``since``)."""
        adopted = self.adopted.get(w.address.display)
        if adopted is None or adopted.generation != w.session.generation or not w.session.state.in_pre_switchover:
            return since
        return min(since, adopted.origin)

    def origin_exact(self, w: Watched, since: float) -> bool:
        """Whether :meth:`origin` of ``since`` is QEMU's own pause stamp, as recorded by the
        engine before (its clock then says how long, not "at least ... at most")."""
        adopted = self.adopted.get(w.address.display)
        return (adopted is not None and adopted.exact and adopted.generation == w.session.generation
                and w.session.state.in_pre_switchover and self.origin(w, since) == adopted.origin)

    def pause_start(self, w: Watched) -> tuple[float, bool] | None:
        """(when ``w``'s pause began, whether that is QEMU's own stamp) as a record keeps it:
        the start every view shows, or the one taken up from a record; None: not paused."""
        state = w.session.state
        clock = PauseClock.of(state) if state.in_pre_switchover else None
        if clock is None:
            return None
        origin = self.origin(w, clock.start)
        adopted = self.adopted.get(w.address.display)
        return origin, adopted.exact if adopted is not None and origin == adopted.origin else clock.exact

    def pending(self, w: Watched) -> bool:
        """Whether ``w`` has a record not looked at on this connection yet."""
        display = w.address.display
        return display in self.records and self.verified.get(display) != w.session.generation

    def take_up(self, w: Watched, adopted: Adopted, who: str, how: str) -> None:
        """``w``'s pause in progress is taken up from a record: its deadline counts from
        ``adopted.origin`` (``who``: whose it was; ``how``: what that start is), and it is said."""
        self.adopted[w.address.display] = adopted
        if w.deadline is not None:
            w.deadline.rearm()
        origin, policy = adopted.origin, w.policy
        began = time.strftime("%H:%M:%S", time.localtime(origin)) + f".{int(origin % 1 * 10)}"
        text = (f"{w.name}: taken up again, {who}: paused before switchover since {began} ({how});"
                f" its deadline ({policy.max_pause_s:g} s, then {policy.on_max_pause}) counts from there")
        log.warning("%s", text)
        self.engine._note(w, "deadline", "warning", text)

    async def adopt(self) -> None:
        """On start: take up every source an engine armed in this runtime directory."""
        if self.store is None:
            return
        records = await asyncio.to_thread(self.store.load_all)
        records.sort(key=lambda r: -r.armed_at)  # two for one socket (should not be): the latest counts
        alive = await asyncio.gather(*(probe(r.address) for r in records))
        for rec, listening in zip(records, alive, strict=True):
            display = rec.address.display
            if listening is False or display in self.records:
                why = "no QEMU listens there any more" if listening is False else "another record names it"
                log.info("%s (%s): armed by migtui (engine %d); %s: record dropped", rec.name, display,
                         rec.engine_pid, why)
                await self._remove(rec)
                continue
            self.records[display] = rec
            self.engine.watch([rec.address], rec.policy, read_only=False, interval=rec.interval)
            log.info("%s (%s): armed by migtui (engine %d, %s on); taking it up again once its marker is found",
                     rec.name, display, rec.engine_pid, ", ".join(rec.capabilities))

    async def arm(self, w: Watched) -> ArmResult:
        """Arm ``w``'s source; what gets switched on is recorded (and the QEMU marked) first."""
        session = w.session
        store = self.store
        if store is None:
            return await arm_session(session)
        display = w.address.display
        rec = self.owned(w)
        stale = self.records.get(display) if rec is None else None
        created: list[ArmedRecord] = []

        async def before_set(todo: tuple[str, ...]) -> None:
            if stale is not None:  # a record of another QEMU, or not verified yet: not this one's
                await self._drop(w, stale, f"{w.name}: a new arm replaces its record", marker=False)
            record = rec or ArmedRecord.new(w.address, w.name, w.policy, session.interval)
            record.capabilities = tuple(dict.fromkeys(record.capabilities + todo))
            record.policy = w.policy
            self.records[display] = record
            if rec is None:
                created.append(record)
            await self._save(record)  # durably, before the capability is set
            if rec is None:
                try:
                    await add_marker(session, record.token, {"engine_pid": os.getpid(),
                                                             "runtime_dir": str(store.directory),
                                                             "armed_at": record.armed_at})
                except CommandFailed as err:
                    raise MonitorError(w.name, f"{w.name}: not armed: migtui could not mark this QEMU ({err});"
                                       " it arms only a QEMU it can tell again after a restart") from None
                self.verified[display] = session.generation

        try:
            return await arm_session(session, before_set)
        except BaseException:
            for record in created:
                await self._drop(w, record, f"{w.name}: arming failed: record removed", marker=True)
            raise

    async def forget(self, w: Watched) -> None:
        """``w``'s source was set back: its marker and record go."""
        rec = self.records.get(w.address.display)
        if rec is not None:
            await self._drop(w, rec, f"{w.name}: disarmed: its record and marker removed",
                             marker=self.owned(w) is not None)

    def policy_changed(self, w: Watched) -> None:
        rec = self.owned(w)
        if rec is not None and rec.policy != w.policy:
            rec.policy = w.policy
            asyncio.get_running_loop().create_task(self._save(rec))

    # ------------------------------------------------------------------ watching

    def _on_change(self, w: Watched, session: MonitorSession, kinds: frozenset[str]) -> None:
        display = w.address.display
        state = session.state
        if not state.in_pre_switchover and state.migration_status != "none":
            self.adopted.pop(display, None)  # this connection's status is known: not that pause (nor guard.py's)
        rec = self.records.get(display)
        if rec is None:
            return
        if CONNECTION in kinds:
            if session.connected:
                generation = session.generation
                if self.verified.get(display) != generation and self._verifying.get(display) != generation:
                    self._verifying[display] = generation
                    task = asyncio.get_running_loop().create_task(self._verify(w, rec, generation))
                    task.add_done_callback(lambda _t: self._verifying.pop(display, None)
                                           if self._verifying.get(display) == generation else None)
            elif nothing_listening(session.status.error):
                self._discard(display, rec)  # at once: the next status change must not drop it again
                asyncio.get_running_loop().create_task(self._drop(
                    w, rec, f"{w.name}: no QEMU listens at {display} any more: the QEMU migtui armed is gone;"
                            " record dropped", marker=False))
                return
        if self.owned(w) is None:
            return
        if state.in_pre_switchover:
            clock = PauseClock.of(state)
            if rec.pause_since is None or rec.pause_since != self.origin(w, clock.start if clock else 0.0):
                self._record_pause_soon(w, rec)
            return
        if rec.pause_since is not None:
            self._record_pause_soon(w, rec)
        elif session.connected and self.store is not None:
            now = time.monotonic()
            if now - self._beats.get(rec.token, 0.0) >= HEARTBEAT_S:
                self._beats[rec.token] = now
                self.store.heartbeat(rec.token)

    async def _verify(self, w: Watched, rec: ArmedRecord, generation: int) -> None:
        """Is the QEMU on this connection the one migtui armed? Then take it up again."""
        session = w.session
        display = w.address.display

        async def look() -> tuple[Capabilities, MigrationInfo] | None:
            if not await marked(session, rec.token, generation):
                return None
            caps = Capabilities.from_qmp(await session.execute("query-migrate-capabilities", generation=generation))
            return caps, MigrationInfo.from_qmp(await session.execute("query-migrate", generation=generation))

        try:
            found = await answered(session, generation, look, lambda: self.records.get(display) is rec,
                                   f"{w.name}: cannot look for migtui's marker yet")
        except Reconnected:
            return  # the next connection looks again
        if self.records.get(display) is not rec:
            return
        if found is None:
            await self._drop(w, rec, f"{w.name}: the QEMU at {display} is not the one migtui armed (no"
                                     f" marker migtui-armed-{rec.token}): record dropped, nothing sent", marker=False)
            return
        caps, info = found
        now = self.engine.clock()
        on = tuple(c for c in rec.capabilities if caps.enabled(c))
        if not on:
            await self._drop(w, rec, f"{w.name}: nothing migtui armed is on any more ({', '.join(rec.capabilities)}"
                                     " off): record and marker removed", marker=True, generation=generation)
            return
        self.verified[display] = generation
        w.armed_by_engine = tuple(dict.fromkeys(w.armed_by_engine + on))
        who = f"armed by migtui{by_engine(rec.engine_pid)}"
        if info.status == "pre-switchover":
            origin, exact = pause_origin(rec.pause_since, migration_start(info, now), self._seen_unpaused(rec), now)
            self.take_up(w, Adopted(generation, origin, exact), who,
                         "QEMU's pause start, as recorded" if exact
                         else "the earliest it can have begun: it began while no engine watched")
            self._record_pause_soon(w, rec)
        else:
            log.info("%s: taken up again, %s (%s on; migration %s): guarded", w.name, who, ", ".join(on),
                     info.status)
        self.engine._facts_due(w)
        self.engine.maybe_exit_soon()

    def _seen_unpaused(self, rec: ArmedRecord) -> float | None:
        return self.store.seen_unpaused(rec.token) if self.store is not None else None

    # ------------------------------------------------------------------ the pause in the record

    def _record_pause_soon(self, w: Watched, rec: ArmedRecord) -> None:
        if rec.token in self._pending:
            return
        self._pending.add(rec.token)
        loop = asyncio.get_running_loop()
        loop.call_later(PAUSE_RECORD_DELAY_S, lambda: loop.create_task(self._record_pause(w, rec)))

    async def _record_pause(self, w: Watched, rec: ArmedRecord) -> None:
        self._pending.discard(rec.token)
        if self.engine.critical():  # the engine acts on the stopped guest: later
            self._record_pause_soon(w, rec)
            return
        if self.owned(w) is not rec:
            return
        rec.pause_since, rec.pause_exact = self.pause_start(w) or (None, False)
        await self._save(rec)

    # ------------------------------------------------------------------ files and markers

    def _file_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _save(self, rec: ArmedRecord) -> None:
        store = self.store
        if store is None:
            return
        async with self._file_lock():
            if self.records.get(rec.address.display) is not rec:
                return  # dropped meanwhile: not written back
            await asyncio.to_thread(store.save, dataclasses.replace(rec))

    async def _remove(self, rec: ArmedRecord) -> None:
        store = self.store
        if store is None:
            return
        async with self._file_lock():
            await asyncio.to_thread(store.remove, rec.token)

    def _discard(self, display: str, rec: ArmedRecord) -> None:
        if self.records.get(display) is rec:
            del self.records[display]
            self.verified.pop(display, None)
            self.adopted.pop(display, None)

    async def _drop(self, w: Watched, rec: ArmedRecord, why: str, *, marker: bool,
                    generation: int | None = None) -> None:
        self._discard(w.address.display, rec)
        if marker:
            try:
                await remove_marker(w.session, rec.token, generation)
            except MigtuiError as err:
                log.info("%s: migtui's marker not removed: %s", w.name, err)
        await self._remove(rec)
        log.info("%s", why)


async def answered(session: MonitorSession, generation: int, ask: Callable[[], Awaitable[T]],
                   still: Callable[[], bool], what: str) -> T:
    """``ask()`` QEMU on connection ``generation``, again every ``VERIFY_RETRY_S`` while it cannot
    answer (busy). Raises Reconnected once that connection is not the session's any more, or
    ``still()`` does not hold (the record went)."""
    while True:
        try:
            return await ask()
        except Reconnected:
            raise
        except MigtuiError as err:
            log.info("%s: %s", what, err)
        await asyncio.sleep(VERIFY_RETRY_S)
        if session.generation != generation or not session.connected or not still():
            raise Reconnected(session.name)


def by_engine(pid: int) -> str:
    """`` (engine PID)`` when another engine wrote the record, for the log and the note."""
    return f" (engine {pid})" if pid != os.getpid() else ""


def migration_start(info: MigrationInfo, now: float) -> float | None:
    """When the migration in progress began, by QEMU's total-time (None: QEMU does not say)."""
    return now - info.total_time / 1000 if info.total_time else None


async def probe(address: MonitorAddress) -> bool | None:
    """Does anything listen at ``address``? False: nothing (the QEMU is gone); None: cannot tell."""
    try:
        if address.kind == "unix":
            assert address.path is not None
            opening = asyncio.open_unix_connection(address.path)
        else:
            opening = asyncio.open_connection(address.host, address.port)
        _reader, writer = await asyncio.wait_for(opening, PROBE_TIMEOUT_S)
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    except (TimeoutError, OSError):
        return None
    writer.close()
    return True
