"""A view's mirrors of the engine's monitors and switchovers.

:class:`RemoteSession` is a :class:`MonitorSession` without a socket: the engine's
FEED messages replay the same QMP events and replies into its ``VmState`` (so the
dashboard reads exactly what it read when it polled QEMU itself), SESSION messages
set the connection state, PAUSE messages carry the engine's policy and deadline.
Actions (resume, abort, arm, measure) become requests to the engine, which runs them.

:class:`RemoteSwitchover` shows the engine's :class:`Switchover` of a pause: the same
attributes the dialog reads, set from SWITCHOVER messages. No textual here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..address import MonitorAddress
from ..errors import MonitorError, ReadOnlyRefused, monitor_error
from ..listeners import Listeners
from ..transport import ConnectionStatus, ConnState
from ..workflow.session import CONFIG, CONNECTION, DIRTY_RATE, KINDS, MIGRATION, MonitorSession
from ..workflow.switchover_state import ACTIVE, Phase, PhaseFacts, Step, SwitchoverResult
from ..engine.wire import features_from_json, phase_from_json, result_from_json, step_from_json

if TYPE_CHECKING:
    from .client import EngineClient

ProgressListener = Callable[["RemoteSwitchover"], None]

log = logging.getLogger("migtui.view")


class RemoteSession(MonitorSession):
    def __init__(self, client: "EngineClient", name: str, address: MonitorAddress, *, interval: float = 1.0,
                 read_only: bool = False) -> None:
        super().__init__(None, name=name, interval=interval, clock=client.clock)
        self.client = client
        self.address = address
        self._read_only = read_only
        self._qemu: str | None = None
        self._commands: frozenset[str] | None = None
        self.status = ConnectionStatus(ConnState.CONNECTING)
        self.pause: dict[str, Any] = {}  # the engine's PAUSE message: owner, policy, deadline, notes
        self.switchover = RemoteSwitchover(self)

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
    def qemu_version(self) -> str | None:
        return self._qemu

    def supports(self, command: str) -> bool:
        return True if self._commands is None else command in self._commands

    @property
    def deadline(self) -> float | None:
        """Wall clock at which the engine applies --on-max-pause (None: no deadline applies)."""
        d = self.pause.get("deadline")
        return float(d) if isinstance(d, (int, float)) and self.pause.get("deadline_allowed") else None

    def remote_switchover(self, destination: MonitorSession | None = None) -> "RemoteSwitchover":
        if destination is not None:
            self.switchover.paired = destination  # the view's own pairing, until the engine's arrives
        return self.switchover

    # --------------------------------------------------------------- the engine runs them

    async def engine_request(self, action: str, *, force: bool = False) -> str:
        """Run ``action`` in the engine; its one-line answer, or MonitorError. ``force``: a
        resume or abort of a pause libvirt drives (after a confirmation naming libvirt)."""
        if self.read_only:  # every request changes a VM (the engine refuses it too)
            raise ReadOnlyRefused(self.name, f"read-only view: not allowed to {action} {self.name}")
        fields: dict[str, Any] = {"action": action, "monitor": self.name}
        if force:
            fields["force"] = True
        reply = await self.client.call("request", **fields)
        if not reply.get("ok"):
            raise MonitorError(self.name, str(reply.get("error") or f"{self.name}: {action} failed"))
        return str(reply.get("message") or "")

    async def measure_dirty_rate(self, seconds: int = 1) -> Any:
        await self.engine_request("measure")
        return self.state.dirty_rate

    # --------------------------------------------------------------- engine messages

    def apply_session(self, data: dict[str, Any]) -> None:
        generation = int(data.get("generation") or 0)
        changed = {CONNECTION, DIRTY_RATE}
        if generation != self.generation:  # the engine reconnected: what we knew is void
            changed = set(KINDS)
            self.reset()
            self.generation = generation
            self.pause = {}
            self.switchover = RemoteSwitchover(self)
        try:
            state = ConnState(data.get("state"))
        except ValueError:
            state = ConnState.LOST
        error = data.get("error")
        self.status = ConnectionStatus(state, int(data.get("attempt") or 0),
                                       monitor_error(data.get("error_kind"), self.name, str(error)) if error else None)
        self.poll_error = data.get("poll_error")
        self.measuring = bool(data.get("measuring"))
        self.polls = max(self.polls, int(data.get("polls") or 0))
        self._qemu = data.get("qemu") or self._qemu
        if isinstance(data.get("commands"), list):
            self._commands = frozenset(str(c) for c in data["commands"])
        self._features = features_from_json(data.get("features"))
        self._read_only = self._read_only or bool(data.get("read_only"))
        self._notify(changed)

    def apply_feed(self, entries: Iterable[dict[str, Any]]) -> None:
        entries = list(entries)
        # One query-status per poll round: count rounds as the engine's session does.
        self.polls += sum(1 for e in entries if e.get("command") == "query-status")
        self.replay(entries)

    def apply_pause(self, data: dict[str, Any]) -> None:
        self.pause = data
        self._notify({CONFIG, MIGRATION})


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
        return super().running or (self._requested is not None and self.result is None)

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

    def start_resume(self, jobs: Any = None, *, force: bool = False) -> "asyncio.Task[str]":
        return self._start("resume", force)

    def start_abort(self, *, force: bool = False) -> "asyncio.Task[str]":
        return self._start("abort", force)

    def _start(self, action: str, force: bool = False) -> "asyncio.Task[str]":
        if self.source.read_only:
            raise ReadOnlyRefused(self.name, f"read-only view: not allowed to {action} the switchover")
        self._requested = action
        self._requested_at = self.attempts
        self.action = self.action or action
        self._progress()
        return asyncio.get_running_loop().create_task(self._request(action, force),
                                                      name=f"request-{action}-{self.name}")

    async def _request(self, action: str, force: bool = False) -> str:
        try:
            return await self.source.engine_request(action, force=force)
        except MonitorError as err:
            self._requested = None
            if self.result is None and self.phase not in ACTIVE:
                self.action = None
            self.source.client.notice("error", str(err))
            self._progress()
            return str(err)

    # ------------------------------------------------------------------ engine messages

    def apply(self, data: dict[str, Any]) -> None:
        since = data.get("pause_since")
        attempts = data.get("attempts")
        self.attempts = attempts if isinstance(attempts, int) else 0
        if since != self.pause_since and data.get("action") is None:
            self._requested = None  # a new pause: a fresh switchover
        if self.attempts > self._requested_at:
            self._requested = None  # the engine took it up (it may be over already)
        self.attempt = result_from_json(data.get("attempt"))
        self.action = data.get("action") or (self._requested if self.result is None else None)
        self.actor = data.get("actor")
        self.phase = phase_from_json(data.get("phase"))
        self.steps = [step_from_json(s) for s in data.get("steps") or [] if isinstance(s, dict)]
        self.result = result_from_json(data.get("result"))
        if self.result is not None or self.phase in ACTIVE:
            self._requested = None
        self.pause_since = since
        self.device_at = data.get("device_at")
        self._pause_ms = data.get("pause_ms")
        self._destination = data.get("destination")
        self._progress()

    def _progress(self) -> None:
        self._listeners(self)
