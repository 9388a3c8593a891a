"""Monitor: one QMP connection to one QEMU, kept alive, with typed errors.

Built on qemu.qmp's ``QMPClient``; a fresh client per connection so that no state
leaks from a dead session into the next one. Cheap enough to run 50 at once: per
monitor a reader and a writer task (qemu.qmp's), one watcher task while connected,
and the ``run()`` task if the caller uses it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

from qemu.qmp import (
    EventListener,
    ExecInterruptedError,
    ExecuteError,
    Message,
    QMPClient,
    QMPError,
    Runstate,
    StateError,
)

from ..address import MonitorAddress
from ..errors import (
    CommandFailed,
    CommandTimeout,
    MonitorError,
    ReadOnlyRefused,
)
from ..listeners import Listeners
from ..model.events import QmpEvent
from ..model.features import QemuFeatures
from . import diagnose
from .deadlines import Deadlines
from .readonly import is_read_only
from .status import ConnectionStatus, ConnState, nothing_listening

log = logging.getLogger("migtui.transport")

# How often a unix socket that is not there yet (or refuses) is looked at again.
MISSING_SOCKET_POLL_S = 0.1
# Logged (debug) when QEMU writes an event before its greeting (see _Client._recv).
_EVENT_BEFORE_GREETING = "an event before QMP's greeting"

EventCallback = Callable[[QmpEvent], None]
StateCallback = Callable[[ConnectionStatus], None]
CommandCallback = Callable[[str, "dict[str, Any] | None"], None]


class _Client(QMPClient):
    """A QMPClient that reports each command at the moment it is written to the socket.

    qemu.qmp's own hooks log every message with ``debug("<-- %s", str(msg))``: the
    message is pretty-printed (``json.dumps(indent=2)``) whether or not debug logging is
    on -- for every poll reply, and for the ~230 KB schema. Here that happens only when
    its logger would print it."""

    def __init__(self, name: str, on_write: Callable[[str, Any], None]) -> None:
        super().__init__(name)
        self._on_write = on_write
        # Events read before the monitor announced this connection (greeting, negotiation,
        # _learn): told only after its CONNECTED, or a session would fold them into the
        # connection before's state and then reset it (Monitor.connect).
        self.unannounced: list[Message] | None = []
        self._deadlines = Deadlines()

    def _cb_outbound(self, msg: Message) -> Message:
        # qemu.qmp's documented hook for outbound messages; runs in its writer task.
        if self.logger.isEnabledFor(logging.DEBUG):
            msg = super()._cb_outbound(msg)
        command = msg.get("execute", msg.get("exec-oob"))
        if isinstance(command, str):
            self._on_write(command, msg.get("arguments"))
        return msg

    def _cb_inbound(self, msg: Message) -> Message:
        if self.logger.isEnabledFor(logging.DEBUG):
            msg = super()._cb_inbound(msg)
        return msg

    async def _recv(self) -> Message:
        """The next message; before the session runs (greeting, negotiation), the next one
        that is not an event, the events handed on the way to the listeners (which hear
        them once the monitor said CONNECTED: ``Monitor.connect``).

        qemu.qmp takes the first message it reads for the greeting, and the next for the
        reply to ``qmp_capabilities``. QEMU (7.2, 10.0) can write an event first: its
        monitor leaves out events only once the greeting's handler has run, after the new
        connection is up -- a monitor whose last client had negotiated sends the next client
        any event of that moment (~2 % of the connects while events flow), and a QEMU still
        starting can send its RESUME. qemu.qmp then failed the connect with "'Greeting'
        object requires 'QMP' member"."""
        msg = await super()._recv()
        while self.runstate is Runstate.CONNECTING and "event" in msg and "QMP" not in msg:
            if self._greeting is None:
                log.debug("%s: %s: %s", self.name, _EVENT_BEFORE_GREETING, msg.get("event"))
            await self._event_dispatch(msg)
            msg = await super()._recv()
        return msg

    async def call(self, command: str, arguments: Mapping[str, Any] | None, timeout: float) -> Message:
        """``execute()``'s round trip, lighter: the command is written to the socket at once
        (not handed to qemu.qmp's writer task through a queue) and its reply comes back
        through a future (not a queue made per call). Its reply is routed by qemu.qmp's
        reader like any other (``_pending``, by id); on a disconnect it is interrupted the
        same way. Polls make most of migtui's round trips: fifty monitors, several a second.

        Returns the reply message (``return`` or ``error``); raises TimeoutError when none
        came within ``timeout`` seconds."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        exec_id = self._write(command, arguments, timeout, lambda _exec_id: _Reply(reply))
        try:
            received = await reply
        finally:
            self.settle(exec_id)
        if isinstance(received, ExecInterruptedError):
            raise received
        answer: Message = received
        return answer

    def send(self, command: str, timeout: float, deliver: Callable[[Any], None]) -> None:
        """:meth:`call` with no coroutine, for a command with no arguments: ``deliver(item)``
        with the reply message, or the ExecInterruptedError or TimeoutError that stands for
        it. A lone poll of an idle monitor takes no task step before nor after its reply."""
        self._write(command, None, timeout, lambda exec_id: _Handed(self, exec_id, deliver))

    def _write(self, command: str, arguments: Mapping[str, Any] | None, timeout: float,
               entry: Callable[[str], _Reply | _Handed]) -> str:
        """Write one command at once, its reply awaited by ``entry(exec_id)`` in qemu.qmp's
        table of pending executions and in the deadlines; returns its id. Raises StateError
        when not connected, TypeError/ValueError for arguments that are not JSON (nothing sent)."""
        writer = self._writer
        if self.runstate is not Runstate.RUNNING or writer is None:
            raise StateError("not connected", self.runstate, Runstate.RUNNING)
        exec_id = self._get_exec_id()
        data = _encode(command, exec_id, arguments)
        waiting = entry(exec_id)
        self._pending[exec_id] = waiting  # type: ignore[assignment]
        self._deadlines.add(exec_id, waiting, timeout)
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("--> %s", data.decode())
        writer.write(data)
        self._on_write(command, arguments)
        return exec_id

    def settle(self, exec_id: str) -> None:
        """An execution is over: out of the tables."""
        self._pending.pop(exec_id, None)
        self._deadlines.discard(exec_id)


@functools.cache
def _quoted(command: str) -> bytes:
    return json.dumps(command).encode()


def _encode(command: str, exec_id: str, arguments: Mapping[str, Any] | None) -> bytes:
    """The command's line. A poll's (no arguments) is put together from its parts: qemu.qmp's
    ids are ``__qmp#`` and digits, nothing to escape, and the name is encoded once."""
    if arguments is None:
        return b'{"execute":%s,"id":"%s"}' % (_quoted(command), exec_id.encode())
    message = {"execute": command, "id": exec_id, "arguments": arguments}
    return json.dumps(message, separators=(",", ":")).encode()


class _Reply:
    """Stands in qemu.qmp's table of pending executions (an ``asyncio.Queue`` there) for one
    :meth:`_Client.call`: its reader ``put``s the reply, a disconnect ``put_nowait``s
    an ExecInterruptedError."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def put_nowait(self, item: Any) -> None:
        if not self.future.done():
            self.future.set_result(item)

    def expire(self) -> None:
        if not self.future.done():
            self.future.set_exception(TimeoutError())


class _Handed:
    """Like :class:`_Reply` for one :meth:`_Client.send`: what comes -- the reply, the
    disconnect's ExecInterruptedError, or TimeoutError -- is handed to ``deliver`` at once,
    in the reader's turn (no task waits for it), once."""

    __slots__ = ("client", "deliver", "exec_id")

    def __init__(self, client: _Client, exec_id: str, deliver: Callable[[Any], None]) -> None:
        self.client = client
        self.exec_id = exec_id
        self.deliver: Callable[[Any], None] | None = deliver

    async def put(self, item: Any) -> None:  # the reader, with the reply
        self.client.settle(self.exec_id)
        self._hand(item)

    def put_nowait(self, item: Any) -> None:
        # A disconnect, which walks the table of pending executions: left for after the walk.
        asyncio.get_running_loop().call_soon(self.client.settle, self.exec_id)
        self._hand(item)

    def expire(self) -> None:
        self.client.settle(self.exec_id)
        self._hand(TimeoutError())

    def _hand(self, item: Any) -> None:
        deliver, self.deliver = self.deliver, None
        if deliver is None:
            return
        try:
            deliver(item)
        except Exception:  # the reader (or the loop's timer) must go on
            log.exception("%s: a reply's callback failed", self.client.name)


class _EventTap(EventListener):
    """Hands every event to the monitor as it is read: no queue to drain, no history kept."""

    def __init__(self, deliver: Callable[[Message], None]) -> None:
        super().__init__()
        self._deliver = deliver

    async def put(self, event: Message) -> None:
        self._deliver(event)


def _reject(_event: Message) -> bool:
    return False


class Monitor:
    """One QMP monitor: connect, execute, events, and reconnection with backoff."""

    #: Failed reconnect attempts in a row reported as RETRYING before the state turns LOST.
    retries_before_lost = 4
    #: Who manages this QEMU when the transport itself says so ("libvirt": a libvirt domain).
    manager: str | None = None

    @property
    def migration_evented(self) -> bool:
        """The transport itself tells of a migration's start with an event, whatever QEMU's
        capabilities say (a libvirt domain: QEMU's events through libvirt). A QMP monitor:
        only with QEMU's ``events`` capability, which the session reads."""
        return False

    @property
    def run_state_evented(self) -> bool:
        """A change of run state (STOP, RESUME...) and a new or ended block job
        (JOB_STATUS_CHANGE, BLOCK_JOB_*) always come as events: QEMU sends them whatever its
        capabilities. Not so through libvirt's API (its lifecycle events are not QEMU's)."""
        return True

    def __init__(
        self,
        address: MonitorAddress,
        *,
        read_only: bool = False,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self.address = address
        self.name = address.name
        self.read_only = read_only
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.backoff = backoff
        self.qemu_version: str | None = None
        self.commands: frozenset[str] = frozenset()
        self.capabilities: dict[str, bool] = {}
        self.features = QemuFeatures()  # facts from query-qmp-schema, read once per connection
        self.status = ConnectionStatus(ConnState.CONNECTING)
        self._client: _Client | None = None
        self._watcher: asyncio.Task[MonitorError | None] | None = None
        self._event_listeners: Listeners[[QmpEvent]] = Listeners("event listener", log, self.name)
        self._state_listeners: Listeners[[ConnectionStatus]] = Listeners("state listener", log, self.name)
        self._command_listeners: Listeners[[str, dict[str, Any] | None]] = Listeners(
            "command listener", log, self.name)
        self._closed = False
        self._closing = asyncio.Event()
        self._connect_lock = asyncio.Lock()  # run() and a caller's connect() must not race
        self._in_run = False

    def __repr__(self) -> str:
        return f"<Monitor {self.name} {self.address.display} {self.status.label()}>"

    # ------------------------------------------------------------------ listeners

    def add_event_listener(self, cb: EventCallback) -> None:
        """``cb(QmpEvent)`` for every QMP event, in order, as soon as it is read."""
        self._event_listeners.add(cb)

    def add_state_listener(self, cb: StateCallback) -> None:
        """``cb(ConnectionStatus)`` whenever the connection status changes."""
        self._state_listeners.add(cb)

    def add_command_listener(self, cb: CommandCallback) -> None:
        """``cb(name, arguments)`` for every command actually written to the socket."""
        self._command_listeners.add(cb)

    def supports(self, cmd: str) -> bool:
        return cmd in self.commands

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.runstate is Runstate.RUNNING

    # ------------------------------------------------------------------ connect

    async def connect(self) -> None:
        """Make one connection attempt; raise a MonitorError subclass if it fails."""
        async with self._connect_lock:
            if self._closed:
                raise diagnose.closed(self.address)
            if self._client is not None:
                return
            try:
                client = await self._open()
            except MonitorError as err:
                if not self._in_run:
                    self._set_status(ConnectionStatus(ConnState.LOST, 1, err))
                raise
            if self._closed:  # close() ran while we were connecting
                await _disconnect_quietly(client)
                raise diagnose.closed(self.address)
            self._client = client
            self._watcher = asyncio.create_task(self._watch(client), name=f"qmp-watch-{self.name}")
        log.info("%s: connected to %s (QEMU %s)", self.name, self.address.display, self.qemu_version)
        self._set_status(ConnectionStatus(ConnState.CONNECTED))
        # Then the events that came while it connected, before any later one (no await between).
        unannounced, client.unannounced = client.unannounced, None
        for msg in unannounced or ():
            self._on_event(msg)

    async def _open(self) -> _Client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        sock = await self._dial(deadline)
        client = _Client(self.name, self._on_write)
        client.events.event_filter = _reject  # the default listener would queue every event forever
        client.register_listener(_EventTap(functools.partial(self._on_client_event, client)))
        try:
            try:
                await self._greeting(client, sock, deadline)
            except Exception as err:  # qemu.qmp wraps everything in ConnectError
                if isinstance(err, MonitorError):
                    raise
                raise diagnose.from_session_error(self.address, err) from None
        except BaseException:
            sock.close()
            raise
        try:
            await self._learn(client)
        except BaseException:
            await _disconnect_quietly(client)
            raise
        return client

    async def _greeting(self, client: _Client, sock: socket.socket, deadline: float) -> None:
        """QMP's greeting on ``sock``. No greeting in time means another client holds the
        monitor and ours waits in QEMU's listen queue. A one-shot connect gives up; ``run()``
        keeps that one place in the queue (QEMU greets us when the other client leaves)
        rather than abandon it: abandoned attempts fill the queue, and QEMU's later
        connects fail with EINVAL/EAGAIN instead of saying why."""
        handshake = asyncio.ensure_future(client.connect(sock))
        try:
            loop = asyncio.get_running_loop()
            await asyncio.wait({handshake}, timeout=max(0.0, deadline - loop.time()))
            if handshake.done():
                handshake.result()
                return
            held = diagnose.greeting_timeout(self.address, self.connect_timeout)
            if not self._in_run or self._closed:
                raise held
            log.info("%s [waiting in QEMU's queue]", held)
            self._set_status(ConnectionStatus(ConnState.RETRYING, 1, held))
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait({handshake, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
            if not handshake.done():
                raise diagnose.closed(self.address)
            handshake.result()
        finally:
            if not handshake.done():
                handshake.cancel()
                await asyncio.gather(handshake, return_exceptions=True)

    async def _dial(self, deadline: float) -> socket.socket:
        """Open the stream socket ourselves, so connect errors keep their errno."""
        address = self.address
        loop = asyncio.get_running_loop()
        if address.kind == "unix":
            diagnose.check_unix_path(address)
        try:
            async with asyncio.timeout_at(deadline):
                if address.kind == "unix":
                    return await _sock_connect(loop, socket.AF_UNIX, 0, address.path)
                infos = await loop.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
                last: OSError = OSError(f"no addresses for {address.host}")
                for family, _type, proto, _name, sockaddr in infos:
                    try:
                        return await _sock_connect(loop, family, proto, sockaddr)
                    except OSError as err:
                        last = err
                raise last
        except TimeoutError:  # before OSError: TimeoutError is one
            raise diagnose.connect_timeout(address, self.connect_timeout) from None
        except OSError as err:
            raise diagnose.from_os_error(address, err) from None

    async def _learn(self, client: _Client) -> None:
        """Read what this QEMU is and can do; all or nothing.

        The schema is big (~230 KB on QEMU 10.0): only the facts of QemuFeatures are kept.
        """
        version = _version(client)
        reply = await self._call(client, "query-commands")
        commands = frozenset(
            str(c["name"]) for c in reply if isinstance(c, Mapping) and "name" in c
        )
        caps: dict[str, bool] = {}
        if "query-migrate-capabilities" in commands:
            caps = _capabilities(await self._call(client, "query-migrate-capabilities"))
        features = QemuFeatures()
        if "query-qmp-schema" in commands:
            features = await _FEATURES.get(client, lambda: self._call(client, "query-qmp-schema"))
        self.qemu_version, self.commands, self.capabilities = version, commands, caps
        self.features = features

    # ------------------------------------------------------------------ execute

    async def execute(
        self, cmd: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Run one QMP command and return QEMU's ``return`` value."""
        client = self._client_for(cmd)
        try:
            result = await self._call(client, cmd, args, timeout)
        except (TypeError, ValueError) as err:  # encoded before anything is written
            raise MonitorError(self.name, f"{self.name}: {cmd}: arguments are not JSON: {err}") from None
        self._track_capabilities(cmd, args, result)
        return result

    def _track_capabilities(self, cmd: str, args: Mapping[str, Any] | None, result: Any) -> None:
        # Keep ``capabilities`` current without an extra round trip.
        if cmd == "query-migrate-capabilities":
            self.capabilities = _capabilities(result)
        elif cmd == "migrate-set-capabilities" and args is not None:
            changed = _capabilities(args.get("capabilities"))
            self.capabilities = {**self.capabilities, **changed}

    async def _call(
        self,
        client: _Client,
        cmd: str,
        args: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        seconds = self.command_timeout if timeout is None else timeout
        try:
            reply = await client.call(cmd, args, seconds)
        except (TimeoutError, QMPError) as err:
            raise self._failure(cmd, err, seconds) from None
        return self._returned(cmd, reply)

    def execute_soon(self, cmd: str, done: Callable[[Any], object]) -> None:
        """:meth:`execute` for an argument-less query, with no coroutine: ``done(result)``
        with QEMU's ``return`` value, or the MonitorError execute() would raise, called in
        the turn that reads the reply (or finds none in time). Raises those errors itself
        when nothing can be sent."""
        client = self._client_for(cmd)
        seconds = self.command_timeout

        def deliver(item: Any) -> None:
            if isinstance(item, (TimeoutError, QMPError)):
                done(self._failure(cmd, item, seconds))
                return
            try:
                result = self._returned(cmd, item)
            except MonitorError as err:
                done(err)
                return
            done(result)

        try:
            client.send(cmd, seconds, deliver)
        except StateError as err:
            raise self._failure(cmd, err, seconds) from None

    def _client_for(self, cmd: str) -> _Client:
        """The connection to send ``cmd`` on; raises if --read-only forbids it or there is none."""
        if self.read_only and not is_read_only(cmd):
            raise ReadOnlyRefused(self.name, f"--read-only: not sending {cmd!r} to {self.name}")
        client = self._client
        if client is None or client.runstate is not Runstate.RUNNING:
            raise diagnose.closed(self.address) if self._closed else diagnose.not_connected(self.address)
        return client

    def _failure(self, cmd: str, err: Exception, seconds: float) -> MonitorError:
        """The one-line error for what came instead of ``cmd``'s reply."""
        if isinstance(err, TimeoutError):
            return CommandTimeout(
                self.name,
                f"{self.name}: {self.address.display}: no reply to {cmd!r} within {seconds:g} s:"
                " QEMU may be hung or very busy",
            )
        if isinstance(err, ExecuteError):
            return CommandFailed(self.name, cmd, err.error_class, err.error.error.desc)
        if isinstance(err, (ExecInterruptedError, StateError)):
            return diagnose.interrupted(self.address, cmd)
        # a malformed reply: not what QEMU sends
        return MonitorError(self.name, f"{self.name}: {self.address.display}: bad reply to {cmd!r}: {err}")

    def _returned(self, cmd: str, reply: Message) -> Any:
        """QEMU's ``return`` value of ``cmd``'s reply; raises CommandFailed for its error."""
        if "return" in reply:
            return reply["return"]
        error = reply.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("class"), str) and isinstance(error.get("desc"), str):
            raise CommandFailed(self.name, cmd, error["class"], error["desc"])
        raise MonitorError(self.name, f"{self.name}: {self.address.display}: bad reply to {cmd!r}: {reply}")

    # ------------------------------------------------------------------ run / close

    async def run(self) -> None:
        """Stay connected until cancelled or closed: retry with exponential backoff. Never raises."""
        if self._closed or self._in_run:
            return
        self._in_run = True
        attempt = 0
        ever_connected = False
        try:
            while not self._closed:
                error: MonitorError | None
                try:
                    await self.connect()
                    ever_connected, attempt = True, 0
                    self._set_status(ConnectionStatus(ConnState.CONNECTED))
                    assert self._watcher is not None
                    # shield: cancelling run() must not cancel the watcher mid-disconnect.
                    error = await asyncio.shield(self._watcher)
                except MonitorError as err:
                    error = err
                except Exception as err:  # never let run() die: a bug here must not kill the dashboard
                    log.exception("%s: unexpected error", self.name)
                    error = MonitorError(self.name, f"{self.name}: unexpected error: {err}")
                if self._closed:
                    break
                attempt += 1
                lost = not ever_connected or attempt > self.retries_before_lost
                state = ConnState.LOST if lost else ConnState.RETRYING
                if state is not self.status.state:
                    log.info("%s [%s]", error, state.value)
                log.debug("%s [attempt %d]", error, attempt)
                # A lost monitor re-tried for the same reason is no news: listeners (every
                # view of the engine) hear of it once, not at every attempt.
                delay = self._delay(attempt, error)
                same = (state is ConnState.LOST and self.status.state is ConnState.LOST
                        and str(self.status.error) == str(error) and self.status.retry_s == delay)
                if not same:
                    self._set_status(ConnectionStatus(state, attempt, error, delay))
                await self._sleep(delay)
        finally:
            self._in_run = False

    def _delay(self, attempt: int, error: MonitorError | None = None) -> float:
        if nothing_listening(error) and self.address.kind == "unix":
            # Nothing there yet (a destination QEMU libvirt starts with the migration): a
            # stat or a refused connect costs nothing, and a grown back-off would miss the
            # whole migration. Look again promptly, forever.
            return min(self.backoff[0], MISSING_SOCKET_POLL_S)
        first, cap = self.backoff
        return min(cap, first * 2.0 ** min(attempt - 1, 30))

    async def _sleep(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            pass

    async def close(self) -> None:
        """Disconnect and stop ``run()``; the status becomes CLOSED."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        client, self._client = self._client, None
        if client is not None:
            await _disconnect_quietly(client)
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await asyncio.gather(watcher, return_exceptions=True)
        self._set_status(ConnectionStatus(ConnState.CLOSED))

    async def _watch(self, client: _Client) -> MonitorError | None:
        """Wait for the session to end; return why, or None if we ended it."""
        while client.runstate is Runstate.RUNNING:
            await client.runstate_changed()
        if self._client is not client:
            return None  # close() took it and disconnects it
        self._client = None
        cause: BaseException | None = None
        try:
            await client.disconnect()  # re-raises what stopped the reader, e.g. EOFError
        except Exception as err:
            cause = err
        error = diagnose.connection_lost(self.address, cause)
        log.warning("%s", error)
        if not self._in_run and not self._closed:
            self._set_status(ConnectionStatus(ConnState.LOST, 1, error))
        return error

    # ------------------------------------------------------------------ dispatch

    def _set_status(self, status: ConnectionStatus) -> None:
        if status == self.status or self.status.state is ConnState.CLOSED:
            return  # CLOSED is final: a connect() still in flight must not revive the status
        self.status = status
        self._state_listeners(status)

    def _on_client_event(self, client: _Client, msg: Message) -> None:
        if client.unannounced is not None:
            client.unannounced.append(msg)  # (connect tells them once it said CONNECTED)
            return
        self._on_event(msg)

    def _on_event(self, msg: Message) -> None:
        try:
            event = QmpEvent.from_qmp(msg)
        except Exception:
            log.exception("%s: cannot parse event %s", self.name, msg)
            return
        self._event_listeners(event)

    def _on_write(self, command: str, arguments: Any) -> None:
        args = dict(arguments) if isinstance(arguments, Mapping) else None
        self._command_listeners(command, args)


async def _sock_connect(
    loop: asyncio.AbstractEventLoop, family: int, proto: int, sockaddr: Any
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class _FeatureCache:
    """QemuFeatures per QEMU build (the greeting's version and package): the schema is
    ~230 KB, and fifty monitors of one QEMU (or a QEMU reconnected) need it read once.
    Concurrent first connections wait for the one read under way."""

    def __init__(self) -> None:
        self.known: dict[str, QemuFeatures] = {}
        self.pending: dict[tuple[int, str], asyncio.Future[QemuFeatures]] = {}

    async def get(self, client: QMPClient, fetch: Callable[[], Any]) -> QemuFeatures:
        key = _build(client)
        if key is None:  # no greeting to tell builds apart: read it
            return QemuFeatures.from_schema(await fetch())
        if key in self.known:
            return self.known[key]
        loop = asyncio.get_running_loop()
        pending = self.pending.get((id(loop), key))
        if pending is not None and not pending.done():
            return await asyncio.shield(pending)
        future: asyncio.Future[QemuFeatures] = loop.create_future()
        self.pending[(id(loop), key)] = future
        try:
            features = QemuFeatures.from_schema(await fetch())
        except Exception as err:
            future.set_exception(err)
            future.exception()  # retrieved: waiters (if any) get it, nobody else is told
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self.pending.pop((id(loop), key), None)
        self.known[key] = features
        future.set_result(features)
        return features


_FEATURES = _FeatureCache()


def _build(client: QMPClient) -> str | None:
    try:
        assert client.greeting is not None
        return json.dumps(client.greeting.QMP.version, sort_keys=True, default=str)
    except (AssertionError, AttributeError, TypeError):
        return None


def _version(client: QMPClient) -> str | None:
    """"7.2.22" from the greeting (saves a query-version round trip)."""
    try:
        assert client.greeting is not None
        qemu: Any = client.greeting.QMP.version["qemu"]  # JSON: not an object is a TypeError below
        return f"{qemu['major']}.{qemu['minor']}.{qemu['micro']}"
    except (AssertionError, KeyError, TypeError):
        return None


def _capabilities(items: Any) -> dict[str, bool]:
    """``[{"capability": name, "state": bool}, ...]`` -> ``{name: bool}``."""
    if not isinstance(items, list):
        return {}
    return {
        str(c["capability"]): bool(c.get("state"))
        for c in items
        if isinstance(c, Mapping) and "capability" in c
    }


async def _disconnect_quietly(client: QMPClient) -> None:
    try:
        await client.disconnect()
    except Exception as err:  # the session is going away either way
        log.debug("disconnect: %s", err)
