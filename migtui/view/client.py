"""A view's link to the user's engine: find it (or start it), attach, mirror its monitors.

``connect_engine()`` connects to the runtime directory's socket; with ``start=True``
an engine that is not running is started first (detached: its own session, so a
lost terminal never reaches it). The client keeps one :class:`RemoteSession` per
monitor the engine watches, fed by the engine's messages, and sends requests.
No textual here: ``migtui status`` uses it too.

An engine that cannot answer is said in one line with its pid and what to do: one that
exits at once (its stderr's last line, a full runtime directory), one that is stopped
(SIGSTOP) or hung before it welcomes us. Once attached, an engine that says nothing for
``SILENT_AFTER_BEATS`` heartbeats is marked silent (:meth:`EngineClient.silence`), and a
request carries the time the view gives up on it (``expires``): the engine never does
later what the view said was not done.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ..address import MonitorAddress
from ..errors import MigtuiError
from ..listeners import Listeners
from ..protocol import framing as p
from ..protocol import lines
from ..protocol import messages as m
from ..protocol.runtime import Runtime
from . import engine_process
from .remote import RemoteSession

log = logging.getLogger("migtui.view")

# An engine this view started: waited for as long as it runs (a loaded machine can take
# long to start Python), up to this backstop; one that exits early is said at once.
START_WAIT_S = 60.0
WELCOME_WAIT_S = 15.0  # an engine that runs but has not welcomed us by then is hung
CALL_TIMEOUT_S = 30.0
SILENT_AFTER_BEATS = 4  # heartbeats missed before the engine is marked silent
# A watchdog that runs this late was held up with the view (a stopped or starved process):
# the engine's lines may be waiting unread, so it looks again this much later.
WATCHDOG_S = 0.5


class EngineError(MigtuiError):
    """The engine cannot be reached, refused us, or went away."""


class EngineNotRunning(EngineError):
    pass


def spawn_engine(runtime: Runtime, log_file: str | None = None, *, auto: bool = True) -> subprocess.Popen[bytes]:
    """Start ``migtui engine`` for this runtime directory, detached from our terminal.
    ``auto``: a view starts it, and it exits with its last view once it guards nothing."""
    argv = [sys.executable, "-m", "migtui", "engine", "--foreground", *(["--auto"] if auto else []),
            "--runtime-dir", str(runtime.directory)]
    if log_file:
        argv += ["--log-file", os.path.abspath(log_file)]
    err_path = runtime.directory / "engine.err"
    with open(err_path, "ab") as err:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, close_fds=True, cwd="/")


def _tty() -> str | None:
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            return os.ttyname(fd)
    return None


class EngineClient:
    def __init__(self, runtime: Runtime, *, read_only: bool = False, kind: str = "tui",
                 clock: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.read_only = read_only
        self.kind = kind
        self.clock = clock
        self.sessions: dict[str, RemoteSession] = {}
        self.closed: asyncio.Future[str] | None = None  # set with why, when the link ends
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[m.Reply]] = {}
        self._task: asyncio.Task[None] | None = None
        self._notice_listeners: Listeners[[str, str, str | None, bool]] = Listeners("notice listener", log)
        self._monitor_listeners: Listeners[[RemoteSession]] = Listeners("monitor listener", log)
        self._unwatched_listeners: Listeners[[RemoteSession, str]] = Listeners("unwatched listener", log)
        self.notices: list[tuple[str, str]] = []
        self.engine_pid: int | None = None  # from its welcome
        self.goodbye: str | None = None  # the engine said it stops on purpose (by whom)
        self.started = False  # this view started the engine it is connected to
        self.call_timeout = CALL_TIMEOUT_S  # how long a request is waited for (then it expires)
        # The engine's silence: when it was last heard, and since when it is marked silent.
        self.heard_at = time.monotonic()
        self._heard_wall = time.time()
        self.beat_every = 1.0  # the engine's heartbeat interval (its heartbeats say it)
        self.silent_since: float | None = None  # wall clock of the last line heard, while silent
        self._watchdog: asyncio.TimerHandle | None = None
        self._watch_due = 0.0
        # The context messages are applied in: a UI sets its own (Textual's active app),
        # since the link's reader task was started before the UI existed.
        self.context: contextvars.Context | None = None

    # ------------------------------------------------------------------ connecting

    async def connect(self, *, start: bool = False, log_file: str | None = None) -> None:
        self.runtime.ensure()
        deadline = time.monotonic() + START_WAIT_S
        spawned: subprocess.Popen[bytes] | None = None
        while True:
            try:
                reader, writer = await self._open()
                break
            except (FileNotFoundError, ConnectionRefusedError) as err:
                if not start:
                    raise EngineNotRunning(f"no migtui engine runs in {self.runtime.directory}"
                                           " (start one with `migtui MONITOR...` or `migtui engine`)") from err
                if spawned is None:
                    spawned = spawn_engine(self.runtime, log_file)
                elif spawned.poll() not in (None, 0):  # 0: another engine won the race: wait for its socket
                    raise EngineError(f"the migtui engine exited at once: {engine_process.start_failure(self.runtime)}"
                                      ) from None
                if time.monotonic() > deadline:
                    raise EngineError(f"the migtui engine did not start within {START_WAIT_S:g} s:"
                                      f" {engine_process.start_failure(self.runtime)}") from err
                await asyncio.sleep(0.02)
            except OSError as err:
                raise EngineError(f"cannot reach the migtui engine at {self.runtime.socket}:"
                                  f" {err.strerror or err}") from err
        self._reader, self._writer = reader, writer
        try:
            self._send(m.Hello(p.VERSION, m.ViewInfo(self.kind, _tty(), os.getpid()), self.read_only))
            first = await self._welcome(reader, started=spawned is not None)
        except BaseException:
            writer.close()
            raise
        if isinstance(first, m.Error):
            writer.close()
            raise EngineError(first.error)
        if not isinstance(first, m.Welcome):
            writer.close()
            raise EngineError(f"the migtui engine at {self.runtime.socket} spoke something else ({first.OP})")
        self.engine_pid = first.pid
        self.started = spawned is not None
        self._heard()
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        self._task = loop.create_task(self._read_loop(), name="engine-link")
        if first.heartbeat > 0:  # an engine that beats: its silence means something
            self.beat_every = first.heartbeat
            self._watch_at(self.heard_at + self._silent_after)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the engine's socket. A full backlog (the engine busy accepting a
        flood of connections, or stopped) is tried again, not taken for a connection: asyncio
        would wait for the socket to be writable and call it connected, and the first write
        fails with ENOTCONN."""
        deadline = time.monotonic() + WELCOME_WAIT_S
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(str(self.runtime.socket))
            except BlockingIOError:
                sock.close()
                proc = engine_process.find(self.runtime)
                if (proc is not None and proc.stopped) or time.monotonic() > deadline:
                    raise EngineError(f"the migtui engine at {self.runtime.socket} takes no connection: "
                                      + engine_process.why_silent(self.runtime, proc.pid if proc else None)
                                      ) from None
                await asyncio.sleep(0.02)
                continue
            except BaseException:
                sock.close()
                raise
            return await asyncio.open_unix_connection(sock=sock, limit=p.MAX_LINE)

    async def _welcome(self, reader: asyncio.StreamReader, *, started: bool) -> m.Message:
        """The engine's first line. Looked after while it does not come: an engine that is
        stopped, has exited or does not answer within WELCOME_WAIT_S is one line naming its
        pid and what to do."""
        where = self.runtime.socket
        deadline = time.monotonic() + WELCOME_WAIT_S
        read = asyncio.ensure_future(reader.readline())
        try:
            while not read.done():
                await asyncio.wait({read}, timeout=0.25)
                if read.done():
                    break
                proc = engine_process.find(self.runtime)
                if (proc is not None and proc.stopped) or time.monotonic() > deadline:
                    raise EngineError(f"the migtui engine at {where} does not answer: "
                                      + engine_process.why_silent(self.runtime, proc.pid if proc else None))
            line = read.result()
        except (OSError, ValueError) as err:  # ValueError: a line over the limit
            if started and isinstance(err, ConnectionResetError):
                # An engine that exits at once with the hello unread resets the link (a busy
                # machine: the hello came first): it exited, and its log says why.
                raise EngineError(f"the migtui engine exited at once: {engine_process.start_failure(self.runtime)}"
                                  ) from None
            raise EngineError(f"the migtui engine at {where} broke the connection before it answered"
                              f" ({err.strerror if isinstance(err, OSError) and err.strerror else err}):"
                              f" {engine_process.start_failure(self.runtime)}") from None
        finally:
            read.cancel()
        if not line:
            if started:
                raise EngineError(f"the migtui engine exited at once: {engine_process.start_failure(self.runtime)}")
            raise EngineError(f"the migtui engine at {where} closed the connection before it answered:"
                              f" {engine_process.start_failure(self.runtime)}")
        try:
            return lines.decode(line)
        except p.ProtocolError as err:
            raise EngineError(f"the migtui engine at {where} sent something else ({err})") from None

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def _send(self, message: m.Message) -> None:
        if self._writer is None or self._writer.is_closing():
            raise EngineError("the migtui engine link is closed")
        self._writer.write(lines.encode(message))

    async def call(self, request: type[m.Call], *, timeout: float | None = None, **fields: Any) -> m.Reply:
        """Send ``request(id=..., **fields)``; the engine's reply to it. Waited for ``timeout``
        (default ``call_timeout``) s; the request expires then: the engine will not act on it
        later."""
        return await self.send_call(request, timeout=timeout, **fields)

    def send_call(self, request: type[m.Call], *, timeout: float | None = None,
                  **fields: Any) -> Coroutine[Any, Any, m.Reply]:
        """``call``, written to the engine before this returns (not at the next turn of the loop,
        as a task's first step would): await the result for the reply."""
        timeout = self.call_timeout if timeout is None else timeout
        rid = next(self._ids)
        fut: asyncio.Future[m.Reply] = asyncio.get_running_loop().create_future()
        self._calls[rid] = fut
        try:
            self._send(request(id=rid, expires=time.time() + timeout, **fields))
        except BaseException:
            self._calls.pop(rid, None)
            raise
        return self._reply(rid, fut, timeout, request, fields)

    async def _reply(self, rid: int, fut: asyncio.Future[m.Reply], timeout: float, request: type[m.Call],
                     fields: dict[str, Any]) -> m.Reply:
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            what = " ".join(str(fields[k]) for k in ("action", "monitor") if k in fields) or request.OP
            why = self.silence() or f"the migtui engine (pid {self.engine_pid}) is busy or hung"
            raise EngineError(f"the migtui engine did not answer {what} within {timeout:g} s: not done,"
                              f" and it will not be done later; {why}") from None
        finally:
            self._calls.pop(rid, None)

    # ------------------------------------------------------------------ requests

    async def watch(self, addresses: Sequence[MonitorAddress], policy: m.PolicyInfo, *, read_only: bool,
                    interval: float) -> list[str]:
        monitors = [m.AddressInfo(a.name, a.kind, a.path, a.host, a.port) for a in (a.absolute() for a in addresses)]
        reply = await self.call(m.Watch, monitors=monitors, policy=policy, read_only=read_only, interval=interval)
        if not reply.ok:
            raise EngineError(str(reply.error))
        return reply.names

    async def subscribe(self) -> None:
        reply = await self.call(m.Subscribe)
        if not reply.ok:
            raise EngineError(str(reply.error))

    async def stop_engine(self, timeout: float) -> list[str]:
        """Ask the engine to stop, and wait (up to ``timeout`` s) for it to hang up; the
        sources it disarmed on the way out."""
        reply = await self.call(m.Stop)
        assert self.closed is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        return list(reply.names)

    async def guarding(self, *, stopping: bool = False) -> list[str]:
        """What the engine keeps guarding without a view (``stopping``: what stopping it would
        leave unguarded)."""
        reply = await self.call(m.Guarding, stopping=stopping)
        return reply.lines

    # ------------------------------------------------------------------ listeners

    def _silence_changed(self) -> None:
        """The engine fell silent or is heard again: every session is told (what it shows
        is the engine's last word while it lasts)."""
        for session in list(self.sessions.values()):
            session.engine_silence_changed()

    def silence(self) -> str | None:
        """One line while the engine is silent (no heartbeat for SILENT_AFTER_BEATS of them):
        since when, its pid, stopped or hung, and what to do. None while it is heard."""
        if self.silent_since is None:
            return None
        since = time.strftime("%H:%M:%S", time.localtime(self.silent_since))
        why = engine_process.why_silent(self.runtime, self.engine_pid)
        return f"the migtui engine has said nothing since {since}: {why}"

    def _in_context(self, fn: Callable[[], None]) -> None:
        if self.context is not None:
            self.context.run(fn)
        else:
            fn()

    def _heard(self) -> None:
        self.heard_at = time.monotonic()
        self._heard_wall = time.time()
        if self.silent_since is not None:
            self.silent_since = None
            log.info("the engine is heard again")
            if self._watchdog is None and self.closed is not None and not self.closed.done():
                self._watch_at(self.heard_at + self._silent_after)
            self._silence_changed()

    @property
    def _silent_after(self) -> float:
        return SILENT_AFTER_BEATS * self.beat_every

    def _watch_at(self, due: float) -> None:
        """One timer, when the engine would be silent if nothing is heard before (not a look
        every half second: two wake-ups a second of a view that watches, for nothing)."""
        self._watch_due = due
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_at(loop.time() + max(0.0, due - time.monotonic()), self._watch)

    def _watch(self) -> None:
        now = time.monotonic()
        if now - self._watch_due > 2 * WATCHDOG_S:
            # This view itself was held up: the engine's lines may be waiting, unread.
            self._watch_at(now + WATCHDOG_S)
            return
        if now - self.heard_at <= self._silent_after:
            self._watch_at(max(self.heard_at + self._silent_after, now + WATCHDOG_S))
            return
        self._watchdog = None  # silent: the next line heard ends it and watches again (_heard)
        self.silent_since = self._heard_wall
        log.warning("%s", self.silence())
        self._in_context(self._silence_changed)

    def add_monitor_listener(self, cb: Callable[[RemoteSession], None]) -> Callable[[], None]:
        """``cb(session)`` for each monitor the engine starts watching after this view
        began (a libvirt domain that started or arrived by migration); returns a remover."""
        return self._monitor_listeners.add(cb)

    def add_unwatched_listener(self, cb: Callable[[RemoteSession, str], None]) -> Callable[[], None]:
        """``cb(session, why)`` when the engine stops watching a monitor (a libvirt domain
        that stopped, was undefined or left by migration): it is no longer in ``sessions``."""
        return self._unwatched_listeners.add(cb)

    def add_notice_listener(self, cb: Callable[[str, str, str | None, bool], None]) -> None:
        """``cb(level, text, monitor, attempt)``: ``attempt`` marks an action that changed
        nothing (its switchover says so too, as its ``attempt``)."""
        self._notice_listeners.add(cb)

    def notice(self, level: str, text: str, *, monitor: str | None = None, attempt: bool = False) -> None:
        self.notices.append((level, text))
        self._notice_listeners(level, text, monitor, attempt)

    # ------------------------------------------------------------------ engine messages

    async def _read_loop(self) -> None:
        assert self._reader is not None and self.closed is not None
        why = "the migtui engine closed the link"
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    why = f"the migtui engine was {self.goodbye}" if self.goodbye else "the migtui engine exited"
                    break
                message = lines.decode(line)
                self._in_context(self._heard)
                if self.context is not None:
                    self.context.run(self._dispatch, message)
                else:
                    self._dispatch(message)
        except (OSError, asyncio.IncompleteReadError):
            why = "the migtui engine link broke"
        except p.ProtocolError as err:
            why = f"the migtui engine sent garbage ({err})"
        except asyncio.CancelledError:
            why = "closed"
            raise
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            for fut in self._calls.values():
                if not fut.done():
                    fut.set_exception(EngineError(why))
            if not self.closed.done():
                self.closed.set_result(why)

    def _dispatch(self, message: m.Message) -> None:
        if isinstance(message, m.Reply):
            fut = self._calls.get(message.id)
            if fut is not None and not fut.done():
                fut.set_result(message)
            return
        if isinstance(message, m.Monitor):
            self._monitor(message)
            return
        if isinstance(message, m.Unwatched):
            gone = self.sessions.pop(message.name, None)
            log.info("%s: the engine no longer watches it (%s)", message.name, message.why)
            if gone is not None:
                self._unwatched_listeners(gone, message.why)
            return
        if isinstance(message, m.Notice):
            self.notice(message.level, message.text, monitor=message.name, attempt=message.attempt)
            return
        if isinstance(message, m.Error):
            self.notice("error", message.error)
            return
        if isinstance(message, m.Goodbye):
            self.goodbye = message.why
            return
        if isinstance(message, m.Heartbeat):
            self.beat_every = max(0.1, message.interval)
            return
        session = self.sessions.get(str(getattr(message, "name", "")))
        if session is None:
            return
        try:
            if isinstance(message, m.Feed):
                session.apply_feed(message.entries)
            elif isinstance(message, m.Session):
                session.apply_session(message)
            elif isinstance(message, m.Pause):
                session.apply_pause(message)
            elif isinstance(message, m.Controls):
                session.apply_controls(message)
            elif isinstance(message, m.Convergence):
                session.apply_convergence(message)
            elif isinstance(message, m.ConvergePolicy):
                session.apply_converge_policy(message)
            elif isinstance(message, m.StartOffer):
                session.apply_start_offer(message)
            elif isinstance(message, m.Switchover):
                session.switchover.apply(message.state)
        except Exception:  # a message this view cannot fold must not end the link
            log.exception("cannot apply %s for %s", message.OP, session.name)

    def _monitor(self, message: m.Monitor) -> None:
        if message.name in self.sessions:
            return
        a = message.address
        address = MonitorAddress(a.name, a.kind, a.path, a.host, a.port)
        session = RemoteSession(self, message.name, address, interval=message.interval, read_only=message.read_only)
        self.sessions[message.name] = session
        self._monitor_listeners(session)
