"""MonitorSession: one monitor kept connected, its events applied, its numbers polled.

A session owns a :class:`~migtui.transport.Monitor` and a
:class:`~migtui.model.vmstate.VmState`. QMP events are folded into the state the
moment they arrive; ``query-*`` polls run on a timer that re-arms only after the
previous poll finished, so polls never overlap and a hung QEMU (every command has
the monitor's timeout) only ever delays its own session. An idle monitor (no
migration, no block job: see :data:`IDLE_POLL_S`) is asked only what changes without
an event; one with a migration under way, only what moves without one (``_queries``).
Listeners learn *what* changed (a set of :data:`KINDS`) so a UI repaints only the panels
concerned; input listeners (the engine's views) hear only of news.

No textual here: the TUI and ``--auto-resume`` both build on it. Errors become
``poll_error`` (one line) and a log record, never an exception out of the loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ..errors import CommandFailed, MigtuiError, MonitorError, NotSupported
from ..listeners import Listeners
from ..model.blockjobs import parse_block_jobs
from ..model.capabilities import Capabilities
from ..model.coerce import opt_int
from ..model.dirtyrate import DirtyRateInfo
from ..model.events import QmpEvent
from ..model.features import QemuFeatures
from ..model.migration import FINISHED_STATUSES, MigrationInfo
from ..model.qmpinput import EVENT, REPLY, QmpInput
from ..model.runstate import RunState
from ..model.vmstate import VmState
from ..transport import ConnectionStatus, ConnState, Monitor
from ..transport.readonly import is_read_only

log = logging.getLogger("migtui.session")

# What changed, as told to listeners.
CONNECTION = "connection"  # ConnectionStatus, poll_error
MIGRATION = "migration"  # query-migrate, MIGRATION / MIGRATION_PASS events, history
RUN_STATE = "run_state"
BLOCK_JOBS = "block_jobs"
DIRTY_RATE = "dirty_rate"  # calc-dirty-rate measurement
CONFIG = "config"  # migrate capabilities and parameters (armed, downtime-limit), query-kvm
EVENTS = "events"  # a new event in the log
KINDS = frozenset({CONNECTION, MIGRATION, RUN_STATE, BLOCK_JOBS, DIRTY_RATE, CONFIG, EVENTS})

ChangeListener = Callable[["MonitorSession", frozenset[str]], None]
WriteListener = Callable[[str, "dict[str, Any] | None"], None]  # (command, arguments)
ReplyListener = Callable[[str, Any, float], None]  # (command, reply, now)
# Every QMP input folded into the state, in the replay format (``replay()``): the engine
# keeps these to give a view that attaches the state and the recent history.
InputListener = Callable[[QmpInput], None]

KVM_QUERY = "query-kvm"
# Events that make the next poll start at once rather than at the next tick.
# The run-state events without a STOP (a guest's suspend, its wake-up, a panic, a shutdown)
# among them: a migrating source's lean rounds ask query-status only in a full round.
_POLL_NOW_EVENTS = frozenset(
    {"MIGRATION", "STOP", "RESUME", "SUSPEND", "WAKEUP", "GUEST_PANICKED", "SHUTDOWN",
     "BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_ERROR"}
)
_JOB_EVENTS = ("BLOCK_JOB_", "JOB_STATUS_CHANGE")
# QEMU announces completed a moment before it has computed the migration's times: a
# reply with no total-time yet is asked again (at once) this many times.
FINAL_QUERY_TRIES = 20
# Capabilities and parameters rarely change: re-read them this often (and on
# connect, and when a migration starts).
CONFIG_EVERY_S = 5.0
# Never start two polls closer than this, whatever the event rate.
MIN_POLL_GAP_S = 0.05
# An idle monitor -- connected, its last poll answered, no migration under way (or the
# destination of one: ``_IDLE_INCOMING``), no block job, nothing measured -- changes only
# with an event:
# STOP/RESUME and the other run-state events, JOB_STATUS_CHANGE and BLOCK_JOB_* are always
# sent; MIGRATION only with the ``events`` capability on (QEMU 7.2 and 10.0 send nothing
# when a migration starts without it). So it is asked only what changes with no event:
# ``query-migrate`` every IDLE_ASK_INTERVALS intervals, and that only with ``events`` off; and every
# IDLE_POLL_S ``query-migrate`` with the capabilities and parameters (and its answer is
# a sign of life). Any event brings a full round at once.
IDLE_POLL_S = 10.0
# With ``events`` off an idle monitor's query-migrate (whether a migration began) goes out
# every this many intervals: 200 idle monitors asked every second cost a loaded 2-core
# machine 3.4-3.6 % of a core (docs/benchmarks.md), most of it these round trips. A start
# (or a quiet destination's end) is seen one interval later at worst; what must not wait
# does not: a pause comes with STOP, and armed sources, the lab's and libvirt's have
# ``events`` on.
IDLE_ASK_INTERVALS = 2
# Statuses of no migration under way (others, unknown ones included, are polled at the interval).
_IDLE_MIGRATION = frozenset({"none", *FINISHED_STATUSES})
# A destination (run state inmigrate) is as quiet during a pre-copy: QEMU 7.2 and 10.0 answer
# query-migrate, query-status and query-block-jobs the same from "active" until the migration
# ends (the RAM figures are the source's). Only "active": the end comes with RESUME only if
# the destination runs at once; one started with -S (as libvirt starts it) goes from
# inmigrate to paused with no event, and with ``events`` off there is no MIGRATION either:
# then only the idle query-migrate sees the end, and a status out of this set brings the
# full round that reads the new run state. One awaiting its migration ("none", "setup") is
# polled: QEMU 7.2 sends no event when migrate-incoming gives it the address the source
# pairs with.
_IDLE_INCOMING = frozenset({"active"})


_UNTOLD = object()
_EARLY_S = 0.01  # a tick may fire this much before its time (asyncio's clock resolution and float grids)


class _Ticks:
    """The poll loops' timers, shared by every session of one event loop: one timer per
    moment, however many sessions poll then."""

    _of: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Ticks]] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.due: dict[float, set[Callable[[], None]]] = {}

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Ticks:
        ticks = cls._of.get(loop)
        if ticks is None:
            ticks = cls._of[loop] = cls()
        return ticks

    def add(self, when: float, callback: Callable[[], None]) -> None:
        group = self.due.get(when)
        if group is None:
            group = self.due[when] = set()
            asyncio.get_running_loop().call_at(when, self._fire, when)
        group.add(callback)

    def discard(self, when: float, callback: Callable[[], None]) -> None:
        group = self.due.get(when)
        if group is not None:
            group.discard(callback)

    def _fire(self, when: float) -> None:
        for callback in self.due.pop(when, ()):
            try:
                callback()
            except Exception:  # one session's trouble must not keep the others' polls
                log.exception("a poll tick's callback failed")


@dataclass(frozen=True)
class _Round:
    """One round of queries as it was asked: its replies are folded against this."""

    queries: list[str]
    order: int  # of its query-migrate among all asked on this session (``_migrate_asked``)
    generation: int
    sent: float  # clock()
    lean: bool  # without query-status
    status_before: str  # the migration status when it was asked


class Reconnected(MonitorError):
    """A command bound to one connection (generation) when the session has another: the
    QEMU behind the monitor may be another one. Raised before anything is sent."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"{name}: the QEMU behind this monitor changed (reconnected): nothing sent")


class MonitorSession:
    """Live state of one monitor. Build with a Monitor, or :meth:`offline` for replays."""

    def __init__(
        self,
        monitor: Monitor | None,
        *,
        name: str | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        state: VmState | None = None,
        features: QemuFeatures | None = None,
    ) -> None:
        if monitor is None and name is None:
            raise ValueError("an offline session needs a name")
        self.monitor = monitor
        self.name: str = name or (monitor.name if monitor else "")
        self.interval = interval
        self.clock = clock
        self.state = state or VmState()
        self.status: ConnectionStatus = monitor.status if monitor else ConnectionStatus(ConnState.CONNECTED)
        self.parameters: dict[str, Any] = {}  # query-migrate-parameters
        self.poll_error: str | None = None  # the last failed poll, cleared by a good one
        self.measuring = False  # a calc-dirty-rate is running
        # Runs under KVM (query-kvm, asked once per connection in its first full round;
        # None: not known yet, or the monitor cannot say). The vCPU dirty limit needs it.
        self.kvm: bool | None = None
        self._kvm_due = True
        self._features = features or QemuFeatures()  # offline sessions: as given (a replay)
        self.polls = 0
        # Bumped by reset() on every reconnection: whatever was bound to the QEMU of an
        # older generation (a switchover, a pause's deadline) must not act on this one.
        self.generation = 0
        self._was_connected = False
        self.event_count = 0  # events applied so far (state.events keeps only the last ones)
        self._listeners: Listeners[[MonitorSession, frozenset[str]]] = Listeners("change listener", log, self.name)
        self._reply_listeners: Listeners[[str, Any, float]] = Listeners("reply listener", log, self.name)
        self._event_listeners: Listeners[[QmpEvent]] = Listeners("event listener", log, self.name)
        self._input_listeners: Listeners[[QmpInput]] = Listeners("input listener", log, self.name)
        self._write_listeners: Listeners[[str, dict[str, Any] | None]] = Listeners("write listener", log, self.name)
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._waiter: asyncio.Future[None] | None = None  # the poll loop's sleep, if it sleeps
        self._tick_at = 0.0  # loop time of the shared tick that ends (or polls during) that sleep
        self._asked_at = float("-inf")  # loop time of the last round (each asks query-migrate)
        self._lone_in_flight = False  # a tick's query-migrate awaits its answer (_tick)
        self._full_due = True  # the next round asks everything (connect, events, poll_soon)
        self._checked_at = float("-inf")  # loop time of the last full round, or idle round with the config
        self._config_due = True
        self._config_at = 0.0
        # The last reply to each query told to input listeners: an identical one that folds
        # to no change is no news (an idle monitor answers the same at every poll).
        self._told: dict[str, Any] = {}
        self._folded_migrate: Any = _UNTOLD  # the query-migrate reply the state holds, as QEMU sent it
        self._folded_caps: Any = _UNTOLD  # and the capabilities reply
        self._measured: asyncio.Future[DirtyRateInfo] | None = None
        # The last query-migrate made at the end of a migration on this connection (reset()
        # forgets it), and the order in which query-migrate replies were asked for: a reply
        # asked before one already folded in is older news and is dropped.
        self._final: asyncio.Task[None] | None = None
        self._migrate_asked = 0
        self._migrate_folded = 0
        if monitor is not None:
            monitor.add_event_listener(self._on_event)
            monitor.add_state_listener(self._on_status)
            monitor.add_command_listener(self._on_write)

    @classmethod
    def offline(
        cls,
        name: str,
        *,
        state: VmState | None = None,
        status: ConnectionStatus | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        features: QemuFeatures | None = None,
    ) -> Self:
        """A session without a socket: fed by :meth:`apply_reply` / :meth:`apply_event`.

        ``features``: what the replayed QEMU's schema says (a live monitor reads it itself).
        """
        session = cls(None, name=name, interval=interval, clock=clock, state=state, features=features)
        if status is not None:
            session.status = status
        return session

    # ------------------------------------------------------------------ listeners

    def add_change_listener(self, cb: ChangeListener) -> Callable[[], None]:
        """``cb(session, kinds)`` after every change; returns a function that removes it."""
        return self._listeners.add(cb)

    def add_event_listener(self, cb: Callable[[QmpEvent], None]) -> Callable[[], None]:
        """``cb(event)`` for every QMP event, right after it was folded into the state and
        before change listeners (the switchover reacts here); returns a remover."""
        return self._event_listeners.add(cb)

    def feed(self, command: str, reply: Any, began_after: float | None = None) -> frozenset[str]:
        """Fold a ``query-*`` reply fetched outside the poll loop and tell listeners. It is
        the newest word: a poll's ``query-migrate`` asked before it and answered after is
        older news, dropped (libvirt's final figures must not be undone by one).
        ``began_after``: a pre-switchover pause this reply tells began after then (libvirt's
        events on a read-only link: ``VmState.pause_began_after``)."""
        if command == "query-migrate":
            self._migrate_asked += 1
            self._migrate_folded = self._migrate_asked
        kinds = frozenset(self.apply_reply(command, reply))
        if began_after is not None and self.state.in_pre_switchover:
            self.state.pause_began_after = began_after
        self._notify(kinds)
        return kinds

    def add_input_listener(self, cb: InputListener) -> Callable[[], None]:
        """``cb(entry)`` for every event and reply folded into the state (replay format)."""
        return self._input_listeners.add(cb)

    def add_write_listener(self, cb: WriteListener) -> Callable[[], None]:
        """``cb(command, arguments)`` for every command that changes something (not in the
        --read-only allow-list) as it is written to the socket; returns a remover."""
        return self._write_listeners.add(cb)

    def _on_write(self, command: str, arguments: dict[str, Any] | None) -> None:
        if is_read_only(command):
            return
        self._write_listeners(command, arguments)

    def add_reply_listener(self, cb: ReplyListener) -> None:
        """``cb(command, reply, now)`` for every poll reply (to record a session)."""
        self._reply_listeners.add(cb)

    def _notify(self, kinds: Iterable[str]) -> None:
        changed = frozenset(kinds)
        if not changed:
            return
        self._listeners(self, changed)

    # ------------------------------------------------------------------ derived

    @property
    def connected(self) -> bool:
        return self.status.state is ConnState.CONNECTED

    @property
    def live(self) -> bool:
        """Backed by a real monitor (here or in the engine), not a replay: it can act."""
        return self.monitor is not None

    @property
    def address_display(self) -> str | None:
        return self.monitor.address.display if self.monitor else None

    @property
    def read_only(self) -> bool:
        return bool(self.monitor and self.monitor.read_only)

    @property
    def downtime_limit_ms(self) -> int | None:
        return opt_int(self.parameters.get("downtime-limit"))

    @property
    def max_bandwidth(self) -> int | None:
        """Bytes/s the migration may use (0 or absent: unlimited)."""
        return opt_int(self.parameters.get("max-bandwidth"))

    @property
    def avail_switchover_bandwidth(self) -> int | None:
        """Bytes/s QEMU assumes for the switchover instead of the measured rate (QEMU 8.2+; 0: unset)."""
        return opt_int(self.parameters.get("avail-switchover-bandwidth"))

    @property
    def vcpu_dirty_limit(self) -> int | None:
        """MB/s each vCPU may dirty while the dirty-limit capability throttles (QEMU 8.1+)."""
        return opt_int(self.parameters.get("vcpu-dirty-limit"))

    @property
    def qemu_version(self) -> str | None:
        return self.monitor.qemu_version if self.monitor else None

    @property
    def features(self) -> QemuFeatures:
        """Facts from this QEMU's schema (read once per connection by the monitor)."""
        return self.monitor.features if self.monitor else self._features

    def supports(self, command: str) -> bool:
        # Offline sessions replay what a real QEMU said: assume it could.
        return self.monitor.supports(command) if self.monitor else True

    # ------------------------------------------------------------------ commands

    async def execute(self, cmd: str, args: Mapping[str, Any] | None = None, *,
                      generation: int | None = None) -> Any:
        """Run one command on this session's monitor. With ``generation``, only on that
        connection: once the session reconnected (maybe to another QEMU at the same
        socket) it raises :class:`Reconnected` and sends nothing."""
        monitor = self.monitor
        if monitor is None:
            raise NotSupported(self.name, f"{self.name}: a replayed session cannot run {cmd}")
        if generation is not None and generation != self.generation:
            raise Reconnected(self.name)
        return await monitor.execute(cmd, args)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start connecting and polling (needs a running loop). Offline: nothing to do."""
        if self.monitor is None or self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self.monitor.run(), name=f"monitor-{self.name}"),
            asyncio.create_task(self._poll_loop(), name=f"poll-{self.name}"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.monitor is not None:
            await self.monitor.close()
        if self._measured is not None and not self._measured.done():
            self._measured.cancel()
        if self._final is not None:
            self._final.cancel()

    def poll_soon(self, *, config: bool = False) -> None:
        """Ask for a poll now instead of at the next tick (still never overlapping)."""
        if config:
            self._config_due = True
        self._full_due = True
        self._wake_up()

    # ------------------------------------------------------------------ input

    def _on_status(self, status: ConnectionStatus) -> None:
        self.status = status
        kinds = {CONNECTION}
        if status.state is ConnState.CONNECTED:
            if self._was_connected:
                self.reset()  # a reconnect is a new QEMU until its own replies say otherwise
                kinds = set(KINDS)
            self._was_connected = True
            self.poll_error = None
            self.poll_soon(config=True)  # parameters are read once per connection
        else:
            self._fail_measurement(status.error or MonitorError(self.name, f"{self.name}: disconnected"))
        self._notify(kinds)

    def _on_event(self, ev: QmpEvent) -> None:
        # A migration that ends (FINISHED_STATUSES) gets one last query-migrate at once, from
        # the event itself: QEMU's final figures (downtime, RAM) before its QEMU may quit
        # (libvirt quits a source 60-250 ms after completed).
        if ev.name == "MIGRATION" and ev.data.get("status") in FINISHED_STATUSES:
            self._final_query()  # first: it goes out before anything else is done here
        was_idle = self.idle
        kinds = self.apply_event(ev)
        # Event listeners first: the switchover reacts to BLOCK_JOB_COMPLETED while the
        # guest is stopped; a repaint can wait a few microseconds.
        self._event_listeners(ev)
        self._notify(kinds)
        if ev.name in _POLL_NOW_EVENTS or was_idle:
            # Each migration status may come with new parameters (downtime-limit): a new
            # migration surely, and at pre-switchover the operator wants today's limit.
            # An idle monitor is polled seldom: whatever it says, ask it everything now.
            self.poll_soon(config=ev.name == "MIGRATION")

    # ------------------------------------------------------------------ the end of a migration

    def _final_query(self) -> asyncio.Task[None] | None:
        if self.monitor is None:
            return None
        generation = self.generation
        self._migrate_asked += 1
        task = asyncio.ensure_future(self._ask_final(generation, self._migrate_asked))
        self._final = task
        return task

    async def _ask_final(self, generation: int, asked: int) -> None:
        """query-migrate until QEMU's final figures are in (its times computed), each
        reply folded in as it comes: kept whatever happens to the connection next."""
        for _ in range(FINAL_QUERY_TRIES):
            try:
                sent = self.clock()
                reply = await self.execute("query-migrate", generation=generation)
                if generation != self.generation:
                    return
                self._fold_migrate(reply, asked, sent)
                info = MigrationInfo.from_qmp(reply)
            except MigtuiError as err:
                log.info("%s: the last query-migrate: %s", self.name, err)
                return
            except Exception:  # a reply the model cannot fold must not go unnoticed
                log.exception("%s: the last query-migrate", self.name)
                return
            if info.status != "completed" or info.total_time:
                return
            self._migrate_asked += 1
            asked = self._migrate_asked

    async def final_migration(self, generation: int | None = None) -> MigrationInfo:
        """QEMU's last word on the migration that just ended: the query made at its end
        event (made now if there was none), or what is known if the monitor is gone.
        With ``generation``: nothing is asked once the session has another connection."""
        if generation is None or generation == self.generation:
            task = self._final if self._final is not None else self._final_query()
            if task is not None:
                await asyncio.shield(task)
        return self.state.migration

    def _fold_migrate(self, reply: Any, asked: int, sent: float | None = None) -> None:
        if asked < self._migrate_folded:
            return  # an answer to an older question than one already folded in
        self._migrate_folded = asked
        now = self.clock()
        self._reply_listeners("query-migrate", reply, now)
        self._notify(self.apply_reply("query-migrate", reply, now, sent))

    def reset(self) -> None:
        """Forget everything known about the QEMU (a new connection: maybe a new QEMU at
        the same socket). ``generation`` tells actions bound to the old one apart."""
        self.generation += 1
        self.state = VmState(self.state.history.capacity)
        self.parameters = {}
        self.measuring = False
        self.kvm = None
        self._kvm_due = True
        self._config_due = True
        self._full_due = True
        self._told = {}
        self._folded_migrate = self._folded_caps = _UNTOLD
        self._final = None
        log.info("%s: new connection (generation %d): state reset, querying afresh", self.name, self.generation)

    def apply_event(self, ev: QmpEvent, now: float | None = None) -> set[str]:
        """Fold one event into the state; returns what changed (listeners not called)."""
        kinds = {EVENTS}
        now = self.clock() if now is None else now
        if self._input_listeners:
            self._input_listeners(QmpInput(now, EVENT, event=ev.raw))
        self.state.apply_event(ev, now)
        self.event_count += 1
        if ev.name in ("MIGRATION", "MIGRATION_PASS"):
            kinds.add(MIGRATION)
        elif ev.name in ("STOP", "RESUME"):
            kinds.add(RUN_STATE)
        elif ev.name.startswith(_JOB_EVENTS):
            kinds.add(BLOCK_JOBS)
        return kinds

    def apply_reply(self, command: str, reply: Any, now: float | None = None,
                    asked: float | None = None) -> set[str]:
        """Fold one ``query-*`` reply into the state; returns what changed. ``asked``: when
        the query was sent, if known (the answer is from a moment between it and ``now``)."""
        at = self.clock() if now is None else now
        if not self._input_listeners:
            return self._fold_reply(command, reply, at, asked)
        # Told after the fold, and only if it is news: a reply unlike the last one told, one
        # that changed the state, or one the state may have used (a query-migrate while a
        # MIGRATION event's guard is up). A view replaying only these ends in the same state.
        guarded = command == "query-migrate" and self.state.event_guard
        kinds: set[str] = set()
        try:
            kinds = self._fold_reply(command, reply, at, asked)
        finally:
            told = self._told.get(command, _UNTOLD)
            if kinds or guarded or told is _UNTOLD or told != reply:
                self._told[command] = reply
                self._input_listeners(QmpInput(at, REPLY, command=command, reply=reply, asked=asked))
        return kinds

    def _fold_reply(self, command: str, reply: Any, at: float, asked: float | None) -> set[str]:
        state = self.state
        if command == "query-migrate":
            if reply == self._folded_migrate and not state.event_guard and not state.migration.is_running:
                # The same answer about no migration under way (an idle monitor's, every
                # interval): all it changes is when it was last known true.
                state.migration_asked = at if asked is None else min(asked, at)
                return set()
            # Kept only when folded for sure: a reply the event guard may drop is not.
            self._folded_migrate = _UNTOLD if state.event_guard else reply
            return {MIGRATION} if state.apply_migration(MigrationInfo.from_qmp(reply), at, asked) else set()
        if command == "query-status":
            return {RUN_STATE} if state.apply_run_state(RunState.from_qmp(reply), at) else set()
        if command == "query-block-jobs":
            return {BLOCK_JOBS} if state.apply_block_jobs(parse_block_jobs(reply), at) else set()
        if command == "query-dirty-rate":
            info = DirtyRateInfo.from_qmp(reply)
            changed = state.apply_dirty_rate(info, at)
            if self.measuring and info.measured:
                self.measuring = False
                changed = True
                if self._measured is not None and not self._measured.done():
                    self._measured.set_result(info)
            return {DIRTY_RATE} if changed else set()
        if command == "query-migrate-capabilities":
            if reply == self._folded_caps:
                return set()  # the same list again (every idle round): nothing to parse
            self._folded_caps = reply
            return {CONFIG} if state.apply_capabilities(Capabilities.from_qmp(reply)) else set()
        if command == KVM_QUERY:
            kvm = bool(reply.get("enabled")) if isinstance(reply, Mapping) else None
            if kvm == self.kvm:
                return set()
            self.kvm = kvm
            return {CONFIG}
        if command == "query-migrate-parameters":
            params = dict(reply) if isinstance(reply, Mapping) else {}
            if params == self.parameters:
                return set()
            self.parameters = params
            return {CONFIG}
        return set()

    def replay(self, entries: Iterable[QmpInput | Mapping[str, Any]], *, until: float | None = None) -> None:
        """Feed inputs (the engine's feed, or recorded entries in tests/fixtures/qmp's timeline
        format) through the live path; each one's ``t`` is used as ``now``. Listeners are
        told once, at the end."""
        kinds: set[str] = set()
        for item in entries:
            entry = item if isinstance(item, QmpInput) else QmpInput.from_record(item)
            if until is not None and entry.t > until:
                break
            if entry.kind == EVENT:
                kinds |= self.apply_event(QmpEvent.from_qmp(entry.event), now=entry.t)
            elif entry.kind == REPLY:
                kinds |= self.apply_reply(str(entry.command), entry.reply, now=entry.t, asked=entry.asked)
        self._notify(kinds)

    # ------------------------------------------------------------------ polling

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.connected:
                await self.poll_once(full=False)
            # Re-armed only now that the poll is over: a slow QEMU slows its own polls.
            await self._sleep_until(self._next_round_at(loop.time()))
            if self._wake.is_set():  # an event or a request: not closer than MIN_POLL_GAP_S
                self._wake.clear()
                await asyncio.sleep(MIN_POLL_GAP_S)

    def _next_round_at(self, now: float) -> float:
        """Loop time of the next round, on the grid of the interval: every session with this
        interval polls at the same moments, so one wake-up serves them all (fifty monitors
        polled at fifty moments a second keep a CPU from ever idling)."""
        earliest = now + MIN_POLL_GAP_S
        if self.idle:
            if self._migration_evented():
                earliest = max(earliest, self._checked_at + IDLE_POLL_S)
            else:
                # Half an interval of slack: a tick runs late (200 sessions' in turn, a task's
                # wake-up), and the next ask must stay on the grid point IDLE_ASK_INTERVALS on.
                earliest = max(earliest, self._asked_at + (IDLE_ASK_INTERVALS - 0.5) * self.interval)
        step = self.interval
        return math.ceil(earliest / step) * step if step > 0 else earliest

    async def _sleep_until(self, when: float) -> None:
        """Until the shared tick at ``when`` (loop time), or until :meth:`_wake_up`. While the
        monitor stays idle with ``events`` off, the ticks meanwhile ask its lone query-migrate
        themselves (:meth:`_tick`)."""
        if self._wake.is_set():
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiter = waiter
        ticks = _Ticks.of(loop)
        self._tick_at = when
        ticks.add(when, self._tick)
        try:
            await waiter
        finally:
            self._waiter = None
            ticks.discard(self._tick_at, self._tick)

    def _tick(self) -> None:
        """The shared tick of this session's next round. The round of an idle monitor with
        ``events`` off is one query-migrate, and 200 of them a second were most of what idle
        monitors cost: it is sent from here and its reply folded as it is read, and the poll
        loop sleeps on. Any other round wakes the loop."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        monitor = self.monitor
        if monitor is None or not self._lone_poll_due(now):
            waiter.set_result(None)
            return
        asked = self._round(["query-migrate"])

        def answered(reply: Any) -> None:
            self._lone_in_flight = False
            if not self._tasks:
                return  # stopped meanwhile (its monitor closed): nobody's news
            self._fold_round(asked, [reply])
            if self._waiter is not waiter or waiter.done():
                return
            if self._wake.is_set():
                waiter.set_result(None)  # a wake-up waited for this poll to end (no two at once)
                return
            # The next tick only now that this poll is over: a slow QEMU slows its own polls.
            self._tick_at = self._next_round_at(asyncio.get_running_loop().time())
            _Ticks.of(loop).add(self._tick_at, self._tick)

        try:
            monitor.execute_soon("query-migrate", answered)
        except Exception:
            # Not sent (disconnected meanwhile, or libvirt's domain, whose calls run in its
            # thread): the loop asks, and knows what to do.
            waiter.set_result(None)
            return
        self._lone_in_flight = True

    def _lone_poll_due(self, loop_now: float) -> bool:
        """The round due now is an idle monitor's lone query-migrate (``_queries`` would ask
        just that: events off, no full round wanted, the config round not due)."""
        return (self.idle and not self._full_due and not self._wake.is_set() and not self._migration_evented()
                and loop_now - self._checked_at < IDLE_POLL_S - _EARLY_S)

    def _wake_up(self) -> None:
        self._wake.set()
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._lone_in_flight:
            waiter.set_result(None)  # (with a lone poll in flight, its answer wakes the loop)

    @property
    def idle(self) -> bool:
        """Nothing on this monitor changes without an event (see ``IDLE_POLL_S``)."""
        state = self.state
        run = state.run_state
        return (self.connected and not self.measuring and self.poll_error is None and run is not None
                and state.migration_status in (_IDLE_INCOMING if run.incoming else _IDLE_MIGRATION)
                and all(job.is_finished for job in state.block_jobs.values()))

    def _migration_evented(self) -> bool:
        """QEMU tells of a migration's start with an event (the ``events`` capability is on, or
        the transport says so: libvirt turns ``events`` on and passes QEMU's events through)."""
        monitor = self.monitor
        return self.state.capabilities.enabled("events") or (monitor is not None and monitor.migration_evented)

    def _queries(self) -> list[str]:
        loop_now = asyncio.get_running_loop().time()
        now = self.clock()
        if self.idle and not self._full_due:
            # Only what changes without an event: a migration's start (unless evented) at the
            # interval; capabilities and parameters, and a sign of life, every IDLE_POLL_S.
            if loop_now - self._checked_at >= IDLE_POLL_S - _EARLY_S:
                self._checked_at = loop_now
                return ["query-migrate", *self._config_queries(now)]
            return [] if self._migration_evented() else ["query-migrate"]
        # A lean round: with run states and jobs evented, only what moves without an event
        # (the migration's figures, a running job's progress); everything at an event, a
        # status change, and every CONFIG_EVERY_S.
        full = (self._full_due or not self._run_state_evented()
                or loop_now - self._checked_at >= CONFIG_EVERY_S - _EARLY_S)
        self._full_due = False
        queries = ["query-migrate"]
        if full:
            self._checked_at = loop_now
            queries.append("query-status")
        if self.supports("query-block-jobs") and (
                full or not all(job.is_finished for job in self.state.block_jobs.values())):
            queries.append("query-block-jobs")
        if self.measuring:
            queries.append("query-dirty-rate")
        if self._config_due or now - self._config_at >= CONFIG_EVERY_S:
            queries += self._config_queries(now)
        if self._kvm_due and self.supports(KVM_QUERY):
            self._kvm_due = False
            queries.append(KVM_QUERY)
        return queries

    def _run_state_evented(self) -> bool:
        monitor = self.monitor
        return monitor is not None and monitor.run_state_evented

    def _config_queries(self, now: float) -> list[str]:
        self._config_due, self._config_at = False, now
        return [q for q in ("query-migrate-capabilities", "query-migrate-parameters") if self.supports(q)]

    async def poll_once(self, *, full: bool = True) -> frozenset[str]:
        """Run one round of queries (pipelined on the one socket) and apply the replies:
        every query, or (``full=False``, the poll loop's) on an idle monitor only what has
        no event."""
        if full:
            self._full_due = True
        monitor = self.monitor
        if monitor is None:
            return frozenset()
        queries = self._queries()
        if not queries:
            return frozenset()
        asked = self._round(queries)
        replies: list[Any]
        if len(queries) == 1:  # the idle round: no task per query
            try:
                replies = [await monitor.execute(queries[0])]
            except asyncio.CancelledError:
                raise
            except Exception as err:
                replies = [err]
        else:
            replies = await asyncio.gather(*(monitor.execute(q) for q in queries), return_exceptions=True)
        return self._fold_round(asked, replies)

    def _round(self, queries: list[str]) -> _Round:
        self._migrate_asked += 1
        self._asked_at = asyncio.get_running_loop().time()
        return _Round(queries, self._migrate_asked, self.generation, self.clock(), "query-status" not in queries,
                      self.state.migration_status)

    def _fold_round(self, asked: _Round, replies: list[Any]) -> frozenset[str]:
        """Apply one round's replies (in the order asked) and tell listeners what changed."""
        if asked.generation != self.generation:
            return frozenset()  # answers of the QEMU before a reconnection: not this one's
        self.polls += 1
        kinds: set[str] = set()
        error: str | None = None
        for command, reply in zip(asked.queries, replies, strict=True):
            if isinstance(reply, BaseException):
                if isinstance(reply, asyncio.CancelledError):
                    raise reply
                if command == KVM_QUERY:  # a fact some controls want, not a failed poll
                    log.info("%s: %s: %s", self.name, command, reply)
                    self._kvm_due = not isinstance(reply, CommandFailed)  # QEMU's own no stands
                    continue
                error = error or self._describe(command, reply)
                if command.startswith("query-migrate-"):
                    self._config_due = True  # try again next time
                continue
            if command == "query-migrate":
                if asked.order < self._migrate_folded:
                    continue  # the last query at a migration's end was asked later, and answered
                self._migrate_folded = asked.order
            now = self.clock()
            self._reply_listeners(command, reply, now)
            try:
                kinds |= self.apply_reply(command, reply, now, asked.sent)
            except Exception as err:  # a reply the model cannot fold must not stop polling
                log.exception("%s: cannot apply %s reply %r", self.name, command, reply)
                error = error or f"{self.name}: {command}: unexpected reply ({err})"
        if error != self.poll_error:
            self.poll_error = error
            kinds.add(CONNECTION)
        if asked.lean and self.state.migration_status != asked.status_before:
            self.poll_soon()  # (events off) what else changed with it: the run state, the jobs
        self._notify(kinds)
        return frozenset(kinds)

    def _describe(self, command: str, err: BaseException) -> str:
        if isinstance(err, MigtuiError):  # expected trouble: already one line
            log.info("%s: %s failed: %s", self.name, command, err)
            return str(err)
        log.error("%s: %s failed", self.name, command, exc_info=err)
        return f"{self.name}: {command}: {err.__class__.__name__}: {err}"

    # ------------------------------------------------------------------ dirty rate

    async def measure_dirty_rate(self, seconds: int = 1) -> DirtyRateInfo:
        """Measure the guest's dirty rate with ``calc-dirty-rate`` (no migration needed).

        Returns the measured :class:`DirtyRateInfo`; the state shows "measuring" until
        then. Raises a MonitorError (e.g. ReadOnlyRefused, NotSupported, CommandFailed).
        """
        monitor = self.monitor
        if monitor is None:
            raise NotSupported(self.name, f"{self.name}: a replayed session cannot measure")
        if not self.supports("calc-dirty-rate"):
            raise NotSupported(self.name, f"{self.name}: this QEMU has no calc-dirty-rate (needs 5.2+)")
        if self.measuring and self._measured is not None:
            return await asyncio.shield(self._measured)
        seconds = max(1, int(seconds))
        await monitor.execute("calc-dirty-rate", {"calc-time": seconds})
        loop = asyncio.get_running_loop()
        self._measured = loop.create_future()
        self.measuring = True
        self._notify({DIRTY_RATE})
        # The regular poll picks up the result; make one land right after QEMU is done.
        loop.call_later(seconds + 0.1, self._wake_up)
        try:
            async with asyncio.timeout(seconds + max(5.0, 3 * self.interval)):
                return await asyncio.shield(self._measured)
        except TimeoutError:
            self._fail_measurement(
                MonitorError(self.name, f"{self.name}: calc-dirty-rate gave no result in time")
            )
            raise MonitorError(self.name, f"{self.name}: calc-dirty-rate gave no result in time") from None

    def _fail_measurement(self, error: MonitorError) -> None:
        if not self.measuring:
            return
        self.measuring = False
        if self._measured is not None and not self._measured.done():
            self._measured.set_exception(error)
            self._measured.exception()  # retrieved: no "never retrieved" warning if nobody waits
        self._notify({DIRTY_RATE})
