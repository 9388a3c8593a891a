"""A view's mirrors of the engine's monitors and switchovers.

:class:`RemoteSession` is a :class:`MonitorSession` without a socket: the engine's
FEED messages replay the same QMP events and replies into its ``VmState`` (so the
dashboard reads exactly what it read when it polled QEMU itself), SESSION messages
set the connection state, PAUSE messages carry the engine's policy and deadline.
Actions (resume, abort, arm, measure) become requests to the engine, which runs them.

:class:`RemoteSwitchover` shows the engine's :class:`Switchover` of a pause: the same
attributes the dialog reads, set from SWITCHOVER messages. PAUSE and CONTROLS messages carry
what the engine decided about the pause and the actions (``protocol/messages.py``): kept as they came. No textual here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..address import MonitorAddress
from ..errors import MigtuiError, MonitorError, ReadOnlyRefused, monitor_error
from ..listeners import Listeners
from ..model.advisor import WORDS
from ..model.events import QmpEvent
from ..model.qmpinput import QmpInput
from ..model.switchover import (
    ACTIVE,
    Phase,
    PhaseFacts,
    Step,
    SwitchoverResult,
    under_way,
)
from ..protocol import messages as m
from ..transport import ConnectionStatus, ConnState
from ..workflow.session import (
    CONFIG,
    CONNECTION,
    DIRTY_RATE,
    EVENTS,
    KINDS,
    MIGRATION,
    MonitorSession,
)
from ..workflow.start import Choices

if TYPE_CHECKING:
    from .client import EngineClient

ProgressListener = Callable[["RemoteSwitchover"], None]

log = logging.getLogger("migtui.view")


class RemoteSession(MonitorSession):
    def __init__(self, client: EngineClient, name: str, address: MonitorAddress, *, interval: float = 1.0,
                 read_only: bool = False) -> None:
        super().__init__(None, name=name, interval=interval, clock=client.clock)
        self.client = client
        self.address = address
        self._read_only = read_only
        self._qemu: str | None = None
        self._commands: frozenset[str] | None = None
        self.status = ConnectionStatus(ConnState.CONNECTING)
        self.pause = m.Pause(name)  # the engine's word on this source's pause
        self.controls = m.Controls(name)  # the engine's word on each action
        self.convergence = m.Convergence(name)  # the engine's advisor on its migration
        self.converge_policy = m.ConvergePolicy(name)  # the engine's convergence policy on its migrations
        self.start_offer = m.StartOffer(name)  # what a start of a migration of it may set
        self.switchover = RemoteSwitchover(self)
        self._heard_session = False  # a first SESSION message sets the generation, resets nothing
        # The events of the connection before the last new one (maybe another QEMU at that
        # socket), kept for the event log, which marks where they end.
        self.earlier_events: list[QmpEvent] = []

    # --------------------------------------------------------------- what the TUI reads

    @property
    def live(self) -> bool:
        return True

    @property
    def address_display(self) -> str | None:
        return self.address.display

    @property
    def read_only(self) -> bool:
        return self._read_only or self.client.read_only

    @property
    def engine_silent_since(self) -> float | None:
        """When the engine was last heard, while it is silent (wall clock); None while it is heard."""
        since: float | None = getattr(self.client, "silent_since", None)  # (a stand-in client in tests has none)
        return since

    @property
    def engine_silent(self) -> bool:
        return self.engine_silent_since is not None

    @property
    def engine_silence(self) -> str | None:
        """One line while the engine says nothing (stopped, hung): everything shown is its last word."""
        return self.client.silence() if self.engine_silent else None

    def engine_silence_changed(self) -> None:
        """The engine fell silent, or is heard again: everything on show changes meaning."""
        self._notify(KINDS - {EVENTS})

    @property
    def qemu_version(self) -> str | None:
        return self._qemu

    def supports(self, command: str) -> bool:
        return True if self._commands is None else command in self._commands

    def control(self, action: str) -> m.Control:
        """May this view ``action`` now, and if not why (the engine's word; a read-only view,
        and a request of this view the engine has not taken up yet, say no here)."""
        engine = self.controls.actions.get(action) or m.Control(False, f"{self.name}: not known yet")
        if self.read_only:  # never in this view: not offered (a key pressed anyway says why)
            what = WORDS.get(action) or ("start a migration of" if action == "start" else action)
            return m.Control(False, f"read-only: migtui will not {what} {self.name} (a read-only view)",
                             engine.does)
        if action in ("resume", "abort") and self.switchover.requested:
            return m.Control(False, under_way(self.name, self.switchover.requested), engine.does)
        return engine

    # --------------------------------------------------------------- the engine runs them

    async def engine_request(self, action: str, *, force: bool = False, value: str = "") -> str:
        """Run ``action`` in the engine; its one-line answer, or MonitorError. ``force``: a
        resume or abort of a pause libvirt drives (after a confirmation naming libvirt);
        ``value``: a remedy's value as typed ("" takes the engine's proposal)."""
        return await self.send_request(action, force=force, value=value)

    def send_request(self, action: str, *, force: bool = False, value: str = "") -> Coroutine[Any, Any, str]:
        """``engine_request``, on its way to the engine when this returns: await the result
        for the answer. A confirmed resume goes out before anything else the key causes."""
        if self.read_only:  # every request changes a VM (the engine refuses it too)
            raise ReadOnlyRefused(self.name, f"read-only view: not allowed to {action} {self.name}")
        fields: dict[str, Any] = {"action": action, "monitor": self.name}
        if force:
            fields["force"] = True
        if value:
            fields["value"] = value
        return self._answer(action, self.client.send_call(m.Request, **fields))

    async def _answer(self, action: str, call: Coroutine[Any, Any, m.Reply]) -> str:
        reply = await call
        if not reply.ok:
            raise MonitorError(self.name, reply.error or f"{self.name}: {action} failed")
        return reply.message or ""

    async def start_request(self, choices: Choices) -> str:
        """Start a migration of this source with ``choices`` (the engine validates them again);
        its one-line answer, or MonitorError."""
        if self.read_only:
            raise ReadOnlyRefused(self.name, f"read-only view: not allowed to start a migration of {self.name}")
        reply = await self.client.call(m.Start, monitor=self.name, destination=choices.destination,
                                       address=choices.address, capabilities=list(choices.capabilities),
                                       parameters=dict(choices.parameters), disks=list(choices.disks))
        if not reply.ok:
            raise MonitorError(self.name, reply.error or f"{self.name}: start failed")
        return reply.message or ""

    async def measure_dirty_rate(self, seconds: int = 1) -> Any:
        await self.engine_request("measure")
        return self.state.dirty_rate

    # --------------------------------------------------------------- engine messages

    def apply_session(self, data: m.Session) -> None:
        changed = {CONNECTION, DIRTY_RATE}
        if data.generation != self.generation and self._heard_session:  # reconnected: what we knew is void
            changed = set(KINDS)
            self.earlier_events = list(self.state.events)
            self.reset()
            self.generation = data.generation
            self.pause = m.Pause(self.name)
            self.convergence = m.Convergence(self.name)
            self.switchover = RemoteSwitchover(self)
        # The first one: the feed replayed just before it is this connection's already.
        self.generation = data.generation
        self._heard_session = True
        try:
            state = ConnState(data.state)
        except ValueError:
            state = ConnState.LOST
        error = monitor_error(data.error_kind, self.name, data.error) if data.error else None
        self.status = ConnectionStatus(state, data.attempt, error, data.retry_s)
        self.poll_error = data.poll_error
        self.measuring = data.measuring
        self.polls = max(self.polls, data.polls)
        self._qemu = data.qemu or self._qemu
        if data.commands is not None:
            self._commands = frozenset(data.commands)
        self._features = data.features
        self._read_only = self._read_only or data.read_only
        self._notify(changed)

    def apply_feed(self, entries: list[QmpInput]) -> None:
        # A lower bound of the engine's count of poll rounds (SESSION messages carry it): a
        # quiet poll is not sent, so a query-status here is a round that changed something.
        self.polls += sum(1 for e in entries if e.command == "query-status")
        self.replay(entries)

    def apply_pause(self, data: m.Pause) -> None:
        self.pause = data
        self._notify({CONFIG, MIGRATION})

    def apply_controls(self, data: m.Controls) -> None:
        self.controls = data
        self._notify({CONFIG})

    def apply_convergence(self, data: m.Convergence) -> None:
        self.convergence = data
        self._notify({MIGRATION})

    def apply_converge_policy(self, data: m.ConvergePolicy) -> None:
        self.converge_policy = data
        self._notify({MIGRATION})

    def apply_start_offer(self, data: m.StartOffer) -> None:
        self.start_offer = data
        self._notify({CONFIG})


class RemoteSwitchover(PhaseFacts):
    """The engine's switchover of ``source``'s current pause, as this view last heard it."""

    def __init__(self, source: RemoteSession) -> None:
        self.source = source
        self.name = source.name
        self._destination: str | None = None
        self.paired: MonitorSession | None = None
        self.phase = Phase.WAITING  # the engine's, from its last SWITCHOVER message
        self.steps: list[Step] = []
        self.action: str | None = None
        self.actor: str | None = None
        self.result: SwitchoverResult | None = None
        self.attempt: SwitchoverResult | None = None  # the engine's last attempt that changed nothing
        self.attempts = 0  # actions the engine started on this pause
        self.pause_since: float | None = None
        self.device_at: float | None = None
        self._pause_ms: float | None = None
        self._listeners: Listeners[[RemoteSwitchover]] = Listeners("progress listener", log, source.name)
        self._requested: str | None = None  # sent, not yet confirmed by the engine
        self._requested_at = 0  # ``attempts`` when it was sent: a higher count confirms it

    # ------------------------------------------------------------------ as Switchover

    @property
    def running(self) -> bool:  # asked for, and not yet answered by the engine: as good as running
        return super().running or self.requested is not None

    @property
    def requested(self) -> str | None:
        """The action this view asked for that the engine has not taken up yet."""
        return self._requested if self.result is None else None

    @property
    def pause_ms(self) -> float | None:
        return self._pause_ms

    @property
    def destination(self) -> MonitorSession | None:
        """The engine's pairing; looked up late: its MONITOR message may come after ours."""
        # Else the view's own pairing: a dialog can open before the engine's SWITCHOVER message.
        if self._destination:
            return self.source.client.sessions.get(self._destination, self.paired)
        return self.paired

    def add_progress_listener(self, cb: ProgressListener) -> Callable[[], None]:
        return self._listeners.add(cb)

    def close(self) -> None:
        return None

    def start_resume(self, jobs: Any = None, *, force: bool = False) -> asyncio.Task[str]:
        return self._start("resume", force)

    def start_abort(self, *, force: bool = False) -> asyncio.Task[str]:
        return self._start("abort", force)

    def _start(self, action: str, force: bool = False) -> asyncio.Task[str]:
        if self.source.read_only:
            raise ReadOnlyRefused(self.name, f"read-only view: not allowed to {action} the switchover")
        try:  # on the socket before the dialog hears of it: the guest is stopped
            answer = self.source.send_request(action, force=force)
        except MigtuiError as err:  # the link is closed: said as a refusal is
            answer = _raising(err)
        self._requested = action
        self._requested_at = self.attempts
        self.action = self.action or action
        self._progress()
        return asyncio.get_running_loop().create_task(self._request(answer), name=f"request-{action}-{self.name}")

    async def _request(self, answer: Coroutine[Any, Any, str]) -> str:
        try:
            return await answer
        except MigtuiError as err:  # refused, or the engine did not answer (then it expired)
            self._requested = None
            if self.result is None and self.phase not in ACTIVE:
                self.action = None
            self.source.client.notice("error", str(err))
            self._progress()
            return str(err)

    # ------------------------------------------------------------------ engine messages

    def apply(self, data: m.SwitchoverState) -> None:
        since = data.pause_since
        self.attempts = data.attempts
        if since != self.pause_since and data.action is None:
            self._requested = None  # a new pause: a fresh switchover
        if self.attempts > self._requested_at:
            self._requested = None  # the engine took it up (it may be over already)
        self.attempt = data.attempt
        self.result = data.result
        self.action = data.action or (self._requested if self.result is None else None)
        self.actor = data.actor
        self.phase = data.phase
        self.steps = data.steps
        if self.result is not None or self.phase in ACTIVE:
            self._requested = None
        self.pause_since = since
        self.device_at = data.device_at
        self._pause_ms = data.pause_ms
        self._destination = data.destination
        self._progress()

    def _progress(self) -> None:
        self._listeners(self)


async def _raising(err: MigtuiError) -> str:
    raise err
