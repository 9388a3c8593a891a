"""The engine: owns the QMP connections, the sessions and every workflow; no rendering.

One per user (``runtime.py``). Views attach over a UNIX socket (``server.py``) and get
the state of every monitor and its recent history at once, then every change as it
happens. The engine never waits for a view: messages are queued per view and written
in one go; a view that cannot keep up is dropped (``server.View``).

The gate outlives the terminal: pre-switchover pauses are resolved here, by an
operator's request from any view (the first one acts, once), by ``--auto-resume``, or
by the pause's deadline (``workflow/deadline.py``) -- whether or not a view is
attached. Who owns a pause decides what the engine may do alone (``workflow/policy.py``).

Lifecycle: the engine stays while a view is attached or while it guards something (a
watched source that is paused, armed, or migrating with pause-before-switchover on);
otherwise it exits with its last view, first disarming what it armed itself. One
started with ``migtui engine`` stays until ``migtui engine stop``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from ..address import LIBVIRT as LIBVIRT_KIND
from ..address import MonitorAddress
from ..errors import MigtuiError
from ..format import format_duration
from ..libvirt.connection import LibvirtHost, host_label
from ..libvirt.domain import LIBVIRT, DomainMonitor
from ..model.migration import RUNNING_STATUSES
from ..model.pauseclock import PauseClock
from ..model.qmpinput import QmpInput
from ..model.switchover import Action, SwitchoverResult, libvirt_drives
from ..protocol import messages as m
from ..transport import ConnState, Monitor
from ..workflow import availability
from ..workflow.arm import ArmResult, disarm
from ..workflow.autoresume import AutoResume, AutoResumeReport
from ..workflow.control import action_words
from ..workflow.deadline import PauseDeadline, Phase
from ..workflow.ownership import detect_manager
from ..workflow.pairing import destination_for
from ..workflow.policy import OWNER_LIBVIRT, OWNER_MIGTUI, OWNER_OTHER, Policy, applies
from ..workflow.session import (
    BLOCK_JOBS,
    CONFIG,
    CONNECTION,
    DIRTY_RATE,
    MIGRATION,
    RUN_STATE,
    MonitorSession,
)
from ..workflow.status import snapshot_of
from ..workflow.switchover import Switchover, Switchovers
from .control import ADVICE_KINDS, EngineControl
from .durable import Durable
from .facts import controls_of, pause_json, pause_of
from .guard import Guards
from .progress import ProgressHold, is_progress
from .start import EngineStart
from .wire import address_info, session_message, switchover_message

log = logging.getLogger("migtui.engine")

EVENTS_KEPT = 500  # as many as a VmState shows
MIGRATE_REPLIES_KEPT = 300  # the chart's history (one per poll)
# Held writes and decisions while the engine acts on a stopped guest: looked at again this
# often, and let go after this long whatever happens (a mirror can take seconds to finish:
# the views must not go dark meanwhile).
HOLD_POLL_S = 0.005
MAX_HOLD_S = 0.25
ADVICE_EVERY_S = 0.1  # the advice is decided at most this often per burst (views repaint at 30 Hz anyway)
IDLE_EXIT_S = 1.0  # grace after the last view leaves, so a quick re-attach finds us
# What the PAUSE and CONTROLS facts are made of: a change of any of these re-decides them.
FACT_KINDS = frozenset({MIGRATION, CONNECTION, RUN_STATE, BLOCK_JOBS, CONFIG, DIRTY_RATE})
# A libvirt source that left by migration stays listed, "migrated away" with libvirt's final
# figures (downtime, total time, data), this long and then goes: an operator looks at the
# result when the migration ends, and the destination listed beside it carries the same
# figures on. A domain that stops any other way, or is undefined, goes at once.
MIGRATED_LINGER_S = 60.0
MANAGER_UNCHECKED = "not checked yet"  # Watched.manager_why before detect_manager answered


class ViewLink(Protocol):
    """What the engine needs of an attached view (``server.View``)."""

    label: str
    read_only: bool
    subscribed: bool

    def send(self, message: m.Message) -> None: ...


class Journal:
    """The inputs a new view replays: every recent event, the chart's query-migrate
    replies, and the latest reply of each other query (in arrival order)."""

    def __init__(self) -> None:
        self.events: deque[tuple[int, QmpInput]] = deque(maxlen=EVENTS_KEPT)
        self.migrate: deque[tuple[int, QmpInput]] = deque(maxlen=MIGRATE_REPLIES_KEPT)
        self.latest: dict[str, tuple[int, QmpInput]] = {}
        self._seq = 0

    def add(self, entry: QmpInput) -> None:
        self._seq += 1
        if entry.kind == "event":
            self.events.append((self._seq, entry))
        elif entry.command == "query-migrate":
            self.migrate.append((self._seq, entry))
        else:
            self.latest[str(entry.command)] = (self._seq, entry)

    def clear(self) -> None:
        self.events.clear()
        self.migrate.clear()
        self.latest.clear()

    def entries(self) -> list[QmpInput]:
        merged = [*self.events, *self.migrate, *self.latest.values()]
        merged.sort(key=lambda e: e[0])
        return [entry for _, entry in merged]

    def reply(self, command: str) -> Any:
        """The latest reply to ``command`` (None if there is none)."""
        latest = self.latest.get(command)
        return latest[1].reply if latest is not None else None


class Watched:
    """One monitor the engine watches, with its policy and what the engine did to it."""

    def __init__(self, session: MonitorSession, address: MonitorAddress, policy: Policy,
                 on_progress_timeout: Callable[[], None] = lambda: None) -> None:
        self.session = session
        self.address = address
        self.policy = policy
        self.journal = Journal()
        self.progress = ProgressHold(on_progress_timeout)  # a pass's event, until the next poll's input
        self.armed_by_engine: tuple[str, ...] = ()  # capabilities this engine switched on
        self.manager: str | None = None  # "libvirt" once recognised
        self.manager_why = MANAGER_UNCHECKED
        self.auto: AutoResume | None = None
        self.deadline: PauseDeadline | None = None
        self.notes: dict[str, str] = {}  # "held" / "auto" / "deadline" -> one line
        self.generation = 0  # the session's, when the journal was started
        self.tracked: Switchover | None = None
        self.last_pause: m.Pause | None = None  # the PAUSE message views have
        self.last_controls: m.Controls | None = None  # the CONTROLS message views have
        self.lost_at: float | None = None  # the monitor was lost during the current pause then
        self.episodes = 0  # pauses seen on this monitor (each gets its own switchover)
        self.guard_facts: tuple[Any, ...] = ()  # what decides guarding, when last looked at

    def facts(self) -> tuple[Any, ...]:
        """What decides whether the engine guards this monitor (``Engine.guarding``)."""
        state = self.session.state
        run = state.run_state.status if state.run_state is not None else None
        return (self.session.status.state, state.migration_status, state.in_pre_switchover, state.armed, run)

    @property
    def name(self) -> str:
        return self.session.name

    @property
    def manager_checked(self) -> bool:
        """Whether it is known (on this connection) if libvirt manages this QEMU."""
        return self.manager_why != MANAGER_UNCHECKED

    @property
    def via_libvirt(self) -> bool:
        """A libvirt domain watched through libvirt's API: its controls are libvirt's own calls
        (abortJob, migrateSetMaxDowntime...), not commands behind libvirt's back."""
        monitor = self.session.monitor
        return monitor is not None and monitor.manager == LIBVIRT

    @property
    def owner(self) -> str:
        if self.manager == LIBVIRT:
            return OWNER_LIBVIRT
        return OWNER_MIGTUI if self.armed_by_engine else OWNER_OTHER


class Engine:
    def __init__(
        self,
        *,
        persist: bool = False,
        clock: Callable[[], float] = time.time,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        records: Path | None = None,
    ) -> None:
        self.persist = persist
        self.clock = clock
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.watched: dict[str, Watched] = {}
        self.libvirt: dict[str, LibvirtHost] = {}  # -c URI -> its connection
        self.migrated_linger_s = MIGRATED_LINGER_S
        self._lingering: dict[str, asyncio.TimerHandle] = {}  # migrated-away sources still listed
        self._closing: set[asyncio.Task[None]] = set()  # sessions of monitors no longer watched, stopping
        self.switchovers = Switchovers()  # each source's current pause: requests, auto-resume, deadline share it
        self.views: set[ViewLink] = set()
        self.stopped = asyncio.Event()
        self.stopped_by: str | None = None  # who stopped it on purpose: the views' goodbye says so
        self._idle_timer: asyncio.TimerHandle | None = None
        self._pending_switchovers: set[str] = set()
        self._switchover_flush = False
        self._due_facts: set[str] = set()  # monitors whose pause and controls are to be decided again
        self._facts_handle: asyncio.Handle | None = None
        self._facts_held_since: float | None = None
        self._advice_due: set[str] = set()  # monitors whose convergence advice is to be decided again
        self._advice_handle: asyncio.Handle | None = None
        self._advice_at = float("-inf")  # the loop's time of the last decision
        # What it armed, and the pauses it bounds on sources it did not arm, kept in ``records``
        # (the runtime directory) and taken up on start.
        self.durable = Durable(self, records)
        self.guards = Guards(self.durable)
        self.control = EngineControl(self)  # the convergence advice, abort at any stage, the remedies
        self.starts = EngineStart(self)  # starting a migration: the offer, the set-up, its storage

    # ------------------------------------------------------------------ views

    def attach(self, view: ViewLink) -> None:
        self.views.add(view)
        self._cancel_idle()

    def detach(self, view: ViewLink) -> None:
        self.views.discard(view)
        self.maybe_exit_soon()

    def broadcast(self, message: m.Message) -> None:
        for view in list(self.views):
            if view.subscribed:
                view.send(message)

    def subscribe(self, view: ViewLink) -> None:
        """Give ``view`` the whole picture now; it gets every change from here on."""
        view.subscribed = True
        for w in self.watched.values():
            self._send_monitor(view, w)

    def _send_monitor(self, view: ViewLink, w: Watched) -> None:
        view.send(m.Monitor(w.name, address_info(w.address), w.session.interval, w.session.read_only))
        view.send(m.Feed(w.name, w.journal.entries()))
        view.send(session_message(w.session, with_commands=True))
        controller = self.switchovers.current(w.session)
        if controller is not None:
            view.send(switchover_message(w.name, controller))
        view.send(w.last_pause or self._pause_message(w))
        view.send(w.last_controls or self._controls(w))
        view.send(self.control.message(w))
        view.send(self.control.policy_message(w))
        view.send(self.starts.message(w))

    # ------------------------------------------------------------------ watching

    def watch(self, addresses: Iterable[MonitorAddress], policy: Policy, *, read_only: bool,
              interval: float) -> list[str]:
        """Watch these monitors (again): returns the names they have here. An address
        already watched keeps its connection; a name taken by another address gets a suffix."""
        names = []
        for address in addresses:
            self.guards.asked(address.display)
            existing = next((w for w in self.watched.values() if w.address.display == address.display), None)
            if existing is not None:
                if not read_only:
                    self._set_policy(existing, existing.policy.merged(policy))
                names.append(existing.name)
                continue
            name, n = address.name, 2
            while name in self.watched:
                name, n = f"{address.name}-{n}", n + 1
            address = MonitorAddress(name, address.kind, address.path, address.host, address.port)
            monitor = Monitor(address, read_only=read_only, connect_timeout=self.connect_timeout,
                              command_timeout=self.command_timeout)
            self._add(monitor, policy, interval)
            names.append(name)
        return names

    def _add(self, monitor: Monitor, policy: Policy, interval: float) -> Watched:
        """Watch ``monitor`` (a QMP monitor or a libvirt domain) under its address's name."""
        address = monitor.address
        session = MonitorSession(monitor, interval=interval, clock=self.clock)
        w = Watched(session, address, policy, partial(self._progress_timeout, address.name))
        self.watched[address.name] = w
        self._hook(w)
        session.start()
        log.info("watching %s (%s)%s", address.name, address.display, ", read-only" if monitor.read_only else "")
        for view in list(self.views):
            if view.subscribed:
                self._send_monitor(view, w)
        return w

    async def connect(self, uri: str, label: str | None, domains: tuple[str, ...], policy: Policy, *,
                      read_only: bool, interval: float, asker: ViewLink | None = None) -> list[str]:
        """Watch every running domain of the libvirt connection ``uri`` (those matching
        ``domains``, when given), now and as they come; returns the names of those found
        at the first attempt (an unreachable host is retried; its one line is its status,
        said to every view, and to ``asker``, the view that asked, not subscribed yet)."""
        host = self.libvirt.get(uri)
        if host is None:
            taken = {h.name for h in self.libvirt.values()}
            name, n = label or host_label(uri), 2
            base = name
            while name in taken:
                name, n = f"{base}-{n}", n + 1
            host = LibvirtHost(uri, name, read_only=read_only, domains=domains,
                               on_domain=partial(self._domain_found, policy, interval), on_gone=self._domain_gone,
                               connect_timeout=max(self.connect_timeout, 10.0), command_timeout=self.command_timeout)
            self.libvirt[uri] = host
            host.start()
        await host.first_attempt.wait()
        # A host connected: a destination for the other hosts' domains (their offer and `m`).
        self.starts.refresh(*self.watched.values())
        for other in self.watched.values():
            if other.via_libvirt:
                self.refresh_controls(other)
        if host.status.error is not None and not host.monitors:
            notice = m.Notice("error", str(host.status.error), None)
            self.broadcast(notice)
            if asker is not None and not asker.subscribed:
                asker.send(notice)
            log.warning("%s", host.status.error)
        return [monitor.name for monitor in host.monitors.values() if monitor.name in self.watched]

    def _domain_found(self, policy: Policy, interval: float, host: LibvirtHost, monitor: DomainMonitor) -> None:
        if monitor.name in self.watched:
            return
        w = self._add(monitor, policy, interval)
        monitor.add_reply_listener(w.session.feed)  # JOB_COMPLETED's final figures

    def _domain_gone(self, host: LibvirtHost, monitor: DomainMonitor, why: str, *, migrated: bool) -> None:
        """A domain stopped, was undefined or left by migration: no longer watched (a
        migrated-away source after ``migrated_linger_s``, unless it comes back meanwhile)."""
        w = self.watched.get(monitor.name)
        if w is None or w.session.monitor is not monitor:
            host.forget(monitor)
            return
        if not migrated:
            state = w.session.state  # (a destination still receiving: incoming, whatever its polls said)
            migrating = monitor.incoming or state.migration.is_running or state.in_pre_switchover
            self.unwatch(w.name, f"{why} during its migration" if migrating else why, warn=migrating)
            return
        previous = self._lingering.pop(w.name, None)
        if previous is not None:
            previous.cancel()
        self._lingering[w.name] = asyncio.get_running_loop().call_later(
            self.migrated_linger_s, self._linger_over, monitor, why)

    def _linger_over(self, monitor: DomainMonitor, why: str) -> None:
        w = self.watched.get(monitor.name)
        self._lingering.pop(monitor.name, None)
        if w is not None and w.session.monitor is monitor and monitor.dom is None:  # (it may have come back)
            self.unwatch(w.name, why)

    def unwatch(self, name: str, why: str, *, warn: bool = False) -> None:
        """Stop watching ``name`` and tell every view to drop it (one line in the log, and
        for every view when it is news an operator must not miss: ``warn``)."""
        w = self.watched.pop(name, None)
        if w is None:
            return
        timer = self._lingering.pop(name, None)
        if timer is not None:
            timer.cancel()
        for job in (w.deadline, w.auto):
            if job is not None:
                job.stop()
        w.auto = None
        w.progress.drop()
        self.guards.unwatched(w)
        monitor = w.session.monitor
        if isinstance(monitor, DomainMonitor):  # the same domain starting again is a new entry
            monitor.host.forget(monitor)
        (log.warning if warn else log.info)("%s: no longer watched", why)
        if warn:
            self.broadcast(m.Notice("warning", why, None))
        self.broadcast(m.Unwatched(name, why))
        task = asyncio.get_running_loop().create_task(w.session.stop(), name=f"unwatch-{name}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        if not self.views:
            self.maybe_exit_soon()

    def _hook(self, w: Watched) -> None:
        session = w.session
        session.add_input_listener(partial(self._on_input, w))
        self.durable.hook(w)
        self.guards.hook(w)
        # The deadline first: the PAUSE message built in _on_change carries it.
        w.deadline = PauseDeadline(
            session, policy=lambda: w.policy, owner=lambda: w.owner,
            destination=lambda: destination_for(session, self.sessions()), switchovers=self.switchovers,
            on_report=partial(self._note, w, "deadline"), clock=self.clock,
            origin=partial(self.durable.origin, w))
        w.deadline.start()
        session.add_change_listener(partial(self._on_change, w))
        self._set_auto(w)

    def sessions(self) -> list[MonitorSession]:
        return [w.session for w in self.watched.values()]

    def _set_policy(self, w: Watched, policy: Policy) -> None:
        if policy == w.policy:
            return
        w.policy = policy
        self.durable.policy_changed(w)
        self.guards.check(w)
        self._set_auto(w)
        if w.deadline is not None:
            w.deadline.rearm()
        self._facts_due(w)

    def _set_auto(self, w: Watched) -> None:
        want = w.policy.auto_resume and not w.session.read_only
        if want and w.auto is None:
            w.auto = AutoResume(w.session, None, switchovers=self.switchovers,
                                on_report=partial(self._auto_report, w), clock=self.clock,
                                allowed=lambda: applies(w.policy, w.owner, "auto_resume"))
            w.auto.start()
        elif not want and w.auto is not None:
            w.auto.stop()
            w.auto = None

    # ------------------------------------------------------------------ session input

    def _on_input(self, w: Watched, entry: QmpInput) -> None:
        if is_progress(entry) and w.session.interval > 0:  # with the next poll's input (progress.py)
            w.progress.hold(entry, w.session.interval)
            return
        self._tell_input(w, [*w.progress.release(), entry])

    def _tell_input(self, w: Watched, entries: list[QmpInput]) -> None:
        for entry in entries:
            w.journal.add(entry)
        self.broadcast(m.Feed(w.name, entries))
        if w.progress.advice_due:
            w.progress.advice_due = False
            self._advice_soon(w)

    def _progress_timeout(self, name: str) -> None:
        w = self.watched.get(name)
        if w is not None and w.progress.entries:
            self._tell_input(w, w.progress.release())

    def _on_change(self, w: Watched, session: MonitorSession, kinds: frozenset[str]) -> None:
        if session.generation != w.generation:  # reconnected: maybe another QEMU at that socket
            w.generation = session.generation
            w.journal.clear()
            w.progress.drop()  # the QEMU before's, as the journal
            w.tracked = None
            w.notes.clear()
            w.manager, w.manager_why = None, MANAGER_UNCHECKED
            if w.armed_by_engine:  # the QEMU before's; this one's only if it has the marker (durable.py)
                log.info("%s: reconnected: %s was armed on the QEMU before; this one is not this engine's"
                         " unless it carries migtui's marker", w.name, ", ".join(w.armed_by_engine))
                w.armed_by_engine = ()
        if CONNECTION in kinds or DIRTY_RATE in kinds:
            self.broadcast(session_message(session, with_commands=CONNECTION in kinds))
            if CONNECTION in kinds and session.connected:
                asyncio.get_running_loop().create_task(self._check_manager(w))
        if kinds & {MIGRATION, CONNECTION, RUN_STATE}:
            self._track_lost(w)
            if session.state.in_pre_switchover:
                self._track_pause(w)
        if w.progress.took_change():  # a held pass: its advice goes with it
            w.progress.advice_due = w.progress.advice_due or bool(kinds & ADVICE_KINDS)
        elif kinds & ADVICE_KINDS:
            self._advice_soon(w)
        self.starts.on_change(w, kinds)
        if kinds & FACT_KINDS:
            was_paused = w.last_pause is not None and w.last_pause.paused
            if was_paused != session.state.in_pre_switchover:  # measuring elsewhere depends on it
                self._facts_due(*self.watched.values())
            else:
                self._facts_due(w)
        facts = w.facts()
        if facts != w.guard_facts:  # not every poll: the idle check itself asks QEMU
            w.guard_facts = facts
            if not self.views:
                self.maybe_exit_soon()

    def _track_lost(self, w: Watched) -> None:
        """When the source's monitor was lost during its pause: its clock stops there."""
        session = w.session
        if session.state.in_pre_switchover and session.status.state in (ConnState.RETRYING, ConnState.LOST):
            if w.lost_at is None:
                w.lost_at = self.clock()
        else:
            w.lost_at = None

    def _track_pause(self, w: Watched) -> None:
        destination = destination_for(w.session, self.sessions())
        if w.auto is not None:
            w.auto.destination = destination
        controller = self.switchovers.for_pause(w.session, destination)
        if controller is not w.tracked:
            w.tracked = controller
            w.episodes += 1
            w.notes.pop("held", None)
            w.notes.pop("auto", None)
            name = w.name
            controller.add_progress_listener(lambda _c: self._switchover_changed(name))
            self._switchover_changed(w.name)

    def _switchover_changed(self, name: str) -> None:
        # Called in the downtime path (a mirror just completed): only note it; the state
        # is serialised once per loop iteration, after the critical step went out.
        self._pending_switchovers.add(name)
        if not self._switchover_flush:
            self._switchover_flush = True
            asyncio.get_running_loop().call_soon(self._flush_switchovers)

    def _flush_switchovers(self) -> None:
        self._switchover_flush = False
        names, self._pending_switchovers = self._pending_switchovers, set()
        for name in names:
            w = self.watched.get(name)
            if w is not None and w.tracked is not None:
                self.broadcast(switchover_message(name, w.tracked))
                self._facts_due(w)

    async def _check_manager(self, w: Watched) -> None:
        monitor = w.session.monitor
        if monitor is None:
            return
        manager, why = await detect_manager(monitor)
        if (manager, why) != (w.manager, w.manager_why):
            w.manager, w.manager_why = manager, why
            log.info("%s: %s", w.name, why)
            self._facts_due(w)

    # ------------------------------------------------------------------ pauses

    def _note(self, w: Watched, key: str, level: str, text: str) -> None:
        w.notes[key] = text
        self.broadcast(m.Notice(level, text, w.name))
        self._facts_due(w)

    def _auto_report(self, w: Watched, report: AutoResumeReport) -> None:
        if report.level == "error":
            w.notes.pop("auto", None)
            self._note(w, "held", "error", report.message)
        else:
            w.notes.pop("held", None)
            self._note(w, "auto", "info", report.message)

    def _facts_due(self, *watched: Watched) -> None:
        """Decide these monitors' pause and controls again soon: once per loop iteration, and
        not while the engine acts on a stopped guest (every ms of CPU is downtime then, and
        the views' writes are held anyway -- at most ``MAX_HOLD_S``)."""
        self._due_facts.update(w.name for w in watched)
        if self._facts_handle is None:
            self._facts_handle = asyncio.get_running_loop().call_soon(self._flush_facts)

    def _advice_soon(self, w: Watched) -> None:
        """Decide ``w``'s convergence advice again, at most once per ``ADVICE_EVERY_S``: a burst
        of passes (or polls) is one message, not one per event. The first of a burst is decided
        in this loop turn (not during a pause), so its message reaches views with the input that
        caused it and they repaint once a poll, not twice (the view's cost is its repaints)."""
        self._advice_due.add(w.name)
        if self._advice_handle is None:
            loop = asyncio.get_running_loop()
            wait = self._advice_at + ADVICE_EVERY_S - loop.time()
            if w.session.state.in_pre_switchover or self.critical():
                wait = ADVICE_EVERY_S  # a stopped guest: nothing in the way of its resume
            self._advice_handle = (loop.call_later(wait, self._flush_advice) if wait > 0
                                   else loop.call_soon(self._flush_advice))

    def refresh_advice(self, w: Watched) -> None:
        """Re-decide ``w``'s advice (what it may propose changed)."""
        self._advice_soon(w)

    def _flush_advice(self) -> None:
        self._advice_handle = None
        self._advice_at = asyncio.get_running_loop().time()
        names, self._advice_due = self._advice_due, set()
        for name in names:
            w = self.watched.get(name)
            if w is not None:
                self.control.on_change(w, ADVICE_KINDS)

    def _flush_facts(self) -> None:
        self._facts_handle = None
        loop = asyncio.get_running_loop()
        if self.critical():
            now = loop.time()
            self._facts_held_since = self._facts_held_since if self._facts_held_since is not None else now
            if now - self._facts_held_since < MAX_HOLD_S:
                self._facts_handle = loop.call_later(HOLD_POLL_S, self._flush_facts)
                return
        self._facts_held_since = None
        names, self._due_facts = self._due_facts, set()
        for name in names:
            w = self.watched.get(name)
            if w is not None:
                self._broadcast_facts(w)

    def _broadcast_facts(self, w: Watched) -> None:
        """Tell every view of ``w``'s pause and controls -- each only if something in it
        changed (most polls change nothing there, and each message repaints every view)."""
        message = self._pause_message(w)
        if message != w.last_pause:
            w.last_pause = message
            self.broadcast(message)
        controls = self._controls(w)
        if controls != w.last_controls:
            w.last_controls = controls
            self.broadcast(controls)

    def _controls(self, w: Watched) -> m.Controls:
        return controls_of(w, self.sessions(), self.switchovers, self.control, self.starts)

    def _pause_message(self, w: Watched) -> m.Pause:
        since, exact = self._pause_since(w)
        return pause_of(w, self.sessions(), recorded=since, recorded_exact=exact)

    def _pause_since(self, w: Watched) -> tuple[float | None, bool]:
        """When ``w``'s pause began: QEMU's stamp, or the engine's first sight of it (a pause
        taken up from a record counts from the start recorded there); and whether that start
        is QEMU's own stamp, recorded by the engine before."""
        state = w.session.state
        clock = PauseClock.of(state) if state.in_pre_switchover else None
        if clock is None:
            return None, False
        return self.durable.origin(w, clock.start), self.durable.origin_exact(w, clock.start)

    def refresh_controls(self, w: Watched) -> None:
        """Re-decide ``w``'s controls (the advice changed what they offer) and send them if changed."""
        self._facts_due(w)

    # ------------------------------------------------------------------ requests

    async def request(self, view: ViewLink, action: str, name: str, *, force: bool = False,
                      value: str = "") -> m.Reply:
        """Run one view's action; the reply is one line for its screen. ``force``: resume or
        abort a pause libvirt drives (the view confirmed it, naming libvirt). ``value``: a
        remedy's value as typed ("" takes the advisor's proposal)."""
        w = self.watched.get(name)
        if w is None:
            return m.Reply(0, False, error=f"{name}: not watched by the engine")
        if action not in m.ACTIONS:
            return m.Reply(0, False, error=f"unknown action {action!r}")
        if view.read_only:  # every action changes a VM
            log.warning("%s: %s refused: the view %s is read-only", name, action, view.label)
            return m.Reply(0, False, error=f"read-only view: the engine refuses to {action_words(action)} {name}")
        session = w.session
        if self.starts.handles(w, action):  # write-blocking, or stopping a start while it sets up
            return await self.starts.act(w, view, action)
        if self.control.handles(w, action):  # a remedy, or the abort of a migration not paused
            return await self.control.request(w, view, action, value=value, force=force)
        try:
            if action in ("resume", "abort"):
                return self._switchover_action(w, view, Action(action), force=force)
            if action == "arm":
                result = await self._arm(w)
                return m.Reply(0, True, message=result.summary())
            if action == "disarm":
                message = await self._disarm(w)
                return m.Reply(0, True, message=message)
            await session.measure_dirty_rate(1)  # "measure"
            return m.Reply(0, True)
        except MigtuiError as err:
            return m.Reply(0, False, error=str(err))

    def _switchover_action(self, w: Watched, view: ViewLink, action: Action, *, force: bool) -> m.Reply:
        session = w.session
        # This pause's controller (a fresh one for a new connection), or the last one's.
        controller: Switchover | None
        if session.state.in_pre_switchover:
            self._track_pause(w)
            controller = w.tracked
        else:
            controller = self.switchovers.current(session)
        if controller is not None and controller.running and controller.action == action:
            # One pause, one action: the first confirmed request acts; later ones learn who did.
            who = controller.actor or "another client"
            return m.Reply(0, True, message=f"{w.name}: {action} already started by {who}", actor=controller.actor)
        # The same answer a view's keys give (workflow/availability.py).
        allowed, why = (availability.resume if action is Action.RESUME else availability.abort)(session, controller)
        if allowed is not True or controller is None:
            return m.Reply(0, False, error=why or f"{w.name}: nothing to {action}")
        if w.owner == OWNER_LIBVIRT:
            if not force:
                log.info("%s: %s refused (libvirt drives this migration; not forced) for %s", w.name, action,
                         view.label)
                return m.Reply(0, False, error=libvirt_drives(w.name))
            log.warning("%s: %s forced by %s although libvirt drives this migration", w.name, action, view.label)
        else:
            log.info("%s: %s requested by %s", w.name, action, view.label)
        controller.actor = view.label
        task = controller.start_resume() if action is Action.RESUME else controller.start_abort()
        task.add_done_callback(partial(self._request_done, w))
        return m.Reply(0, True, message=f"{w.name}: {action} started", actor=controller.actor)

    def _request_done(self, w: Watched, task: asyncio.Task[SwitchoverResult]) -> None:
        """A view's request that changed nothing: every view hears what happened (the
        switchover is back where it was; the same request may be made again)."""
        if task.cancelled() or task.exception() is not None:
            return
        result = task.result()
        if result.retry:
            self.broadcast(m.Notice("warning", result.reason, w.name, attempt=True))

    async def _arm(self, w: Watched) -> ArmResult:
        result = await self.durable.arm(w)  # recorded, durably, before QEMU is armed
        if result.changed:
            w.armed_by_engine = tuple(dict.fromkeys(w.armed_by_engine + result.enabled))
            self._facts_due(w)
        return result

    async def arm(self, w: Watched) -> bool:
        """Arm ``w`` for a start (recorded first); whether this switched anything on."""
        return (await self._arm(w)).changed

    async def disarm_engine(self, w: Watched) -> None:
        """Set back what this engine armed on ``w`` (a start that failed midway)."""
        await self._disarm(w)

    async def _disarm(self, w: Watched) -> str:
        caps = w.armed_by_engine
        if not caps:
            return f"{w.name}: nothing armed by this engine"
        monitor = w.session.monitor
        assert monitor is not None
        await disarm(monitor, caps)
        w.armed_by_engine = ()
        await self.durable.forget(w)
        try:  # views hear it now: an engine that stops says goodbye next, before any poll
            w.session.feed("query-migrate-capabilities", await w.session.execute("query-migrate-capabilities"))
        except MigtuiError:
            w.session.poll_soon(config=True)
        self._facts_due(w)
        return f"{w.name}: disarmed ({', '.join(caps)} off)"

    def status_json(self, displays: list[str]) -> list[dict[str, Any] | None]:
        """`migtui status` from the sessions: a snapshot per watched address, None elsewhere."""
        out: list[dict[str, Any] | None] = []
        for display in displays:
            if display in self.libvirt:  # -c URI: every domain of that connection, gone ones too
                out.append({"uri": display, "domains": [
                    self._snapshot(w) for w in self.watched.values()
                    if w.address.kind == LIBVIRT_KIND and w.address.path == display]})
                continue
            w = next((w for w in self.watched.values() if w.address.display == display), None)
            if w is None:
                out.append(None)
                continue
            out.append(self._snapshot(w))
        return out

    def _snapshot(self, w: Watched) -> dict[str, Any]:
        jobs = w.journal.reply("query-block-jobs")
        snap = snapshot_of(w.session, w.address, jobs, self.control.status(w))
        snap.pause = pause_json(w.last_pause or self._pause_message(w), self.clock())
        snap.converge_policy = self.control.policy_status(w)
        return snap.to_json()

    # ------------------------------------------------------------------ lifecycle

    def guarding(self, *, stopping: bool = False) -> list[str]:
        """One line per watched source the engine keeps guarding without a view.
        ``stopping``: only what stopping would leave unguarded (a source this engine armed
        itself and that is not migrating is disarmed on the way out instead)."""
        lines = []
        now = self.clock()
        for w in self.watched.values():
            if stopping and self._disarms_on_stop(w):
                continue
            why = self._guard_reason(w, now)
            if why:
                lines.append(f"{w.name}: {why}")
        return lines

    def disarms_on_stop(self) -> list[str]:
        """The sources ``disarm_own`` will set back when the engine stops."""
        return [w.name for w in self.watched.values() if self._disarms_on_stop(w)]

    def _disarms_on_stop(self, w: Watched) -> bool:
        """What this engine armed itself, where QEMU lets it set it back (no migration)."""
        state = w.session.state
        return (bool(w.armed_by_engine) and w.session.connected and not state.in_pre_switchover
                and state.migration_status not in RUNNING_STATUSES)

    async def disarm_own(self) -> None:
        """On the way out: set back what this engine armed itself, where QEMU lets it (a
        source it armed must not be left armed with nobody to bound its pause)."""
        for w in self.watched.values():
            if not self._disarms_on_stop(w):
                continue
            try:
                log.info("%s", await asyncio.wait_for(self._disarm(w), 5))
            except (TimeoutError, MigtuiError) as err:
                log.warning("%s: cannot disarm: %s", w.name, err or "no answer")

    def _guard_reason(self, w: Watched, now: float) -> str | None:
        session = w.session
        if session.status.state in (ConnState.LOST,):
            return None
        if self.durable.pending(w) or self.guards.pending(w):
            return "taken up from migtui's record: its QEMU not looked at yet"
        state = session.state
        deadline = w.deadline
        started = self.starts.under_way(w)  # its set-up, the mirrors' wait, the migration it follows
        if started is not None and not state.in_pre_switchover:
            return started
        if state.in_pre_switchover:
            since, _exact = self._pause_since(w)
            paused = f"paused {format_duration(max(0.0, now - since))}" if since else "paused"
            if deadline is not None and deadline.phase is Phase.COUNTING and deadline.deadline is not None:
                allowed, why = deadline.allowed
                if allowed:
                    left = max(0.0, deadline.deadline - now)
                    return f"{paused} before switchover; {w.policy.on_max_pause} in {format_duration(left)}"
                return f"{paused} before switchover; no deadline: {why}"
            return f"{paused} before switchover"
        converging = self.control.guards(w)
        if converging is not None and state.migration_status in RUNNING_STATUSES:
            return converging
        caps = state.capabilities
        pbs = caps.enabled("pause-before-switchover")
        if state.migration_status in RUNNING_STATUSES and pbs:
            d_allowed, d_why = applies(w.policy, w.owner, "deadline")
            then = (f"deadline {w.policy.max_pause_s:g} s then {w.policy.on_max_pause}" if d_allowed else d_why)
            return f"migrating with pause-before-switchover ({then})"
        if state.armed and state.run_state is not None and state.run_state.status != "postmigrate":
            # Its next pause gets a deadline (or auto-resume) from this engine only: it stays.
            # (A source it armed itself is disarmed when the engine is stopped.)
            who = "armed by migtui" if w.armed_by_engine else "armed"
            if applies(w.policy, w.owner, "deadline")[0]:
                policy = w.policy
                return f"{who}; its next pause gets the deadline ({policy.max_pause_s:g} s then {policy.on_max_pause})"
            if applies(w.policy, w.owner, "auto_resume")[0]:
                return f"{who}; its next pause gets auto-resume"
        return None

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def maybe_exit_soon(self) -> None:
        if self.persist or self.views or self._idle_timer is not None or self.stopped.is_set():
            return
        self._idle_timer = asyncio.get_running_loop().call_later(IDLE_EXIT_S, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self.views or self.persist:
            return
        asyncio.get_running_loop().create_task(self._exit_if_idle())

    async def _exit_if_idle(self) -> None:
        # Decide on QEMU's word of now, not the last poll: a migration may just have begun.
        await asyncio.gather(*(self._refresh(w.session) for w in self.watched.values()))
        if self.views:
            return
        lines = self.guarding()
        if lines:
            log.info("no view attached; still guarding: %s", "; ".join(lines))
            return
        log.info("no view attached and nothing to guard: exiting")
        self.stopped.set()

    @staticmethod
    async def _refresh(session: MonitorSession) -> None:
        monitor = session.monitor
        if monitor is None or not session.connected:
            return
        for command in ("query-migrate", "query-migrate-capabilities"):
            try:
                session.feed(command, await monitor.execute(command))
            except MigtuiError as err:
                log.info("%s: %s before exiting: %s", session.name, command, err)

    def critical(self) -> bool:
        """A guest is stopped and this engine acts on it (a resume or an abort under way,
        or auto-resume deciding): every ms is downtime and the machine may have two cores,
        so views are not woken now (server.View holds its writes until this is over)."""
        for w in self.watched.values():
            if w.tracked is not None and w.tracked.running:
                return True
            auto = w.auto
            if auto is not None and auto.task is not None and not auto.task.done():
                return True
        return False

    def stop_soon(self, why: str) -> None:
        """Stop on purpose (``why``: by whom): every view is told before its link closes."""
        if self.stopped_by is None:
            self.stopped_by = why
        self.stopped.set()

    async def stop(self) -> None:
        """Stop watching (nothing is sent to the VMs: a pause stays as it is)."""
        self.stopped.set()
        for timer in self._lingering.values():
            timer.cancel()
        self._lingering.clear()
        for w in self.watched.values():
            if w.deadline is not None:
                w.deadline.stop()
            if w.auto is not None:
                w.auto.stop()
        await asyncio.gather(*(w.session.stop() for w in self.watched.values()), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        await asyncio.gather(*(host.close() for host in self.libvirt.values()), return_exceptions=True)
