"""A view's link to the user's engine: find it (or start it), attach, mirror its monitors.

``connect_engine()`` connects to the runtime directory's socket; with ``start=True``
an engine that is not running is started first (detached: its own session, so a
lost terminal never reaches it). The client keeps one :class:`RemoteSession` per
monitor the engine watches, fed by the engine's messages, and sends requests.
No textual here: ``migtui status`` uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..address import MonitorAddress
from ..errors import MigtuiError
from ..listeners import Listeners
from ..protocol import framing as p
from ..protocol import lines
from ..protocol import messages as m
from ..protocol.runtime import Runtime
from .remote import RemoteSession

log = logging.getLogger("migtui.view")


START_WAIT_S = 10.0
CALL_TIMEOUT_S = 30.0


class EngineError(MigtuiError):
    """The engine cannot be reached, refused us, or went away."""


class EngineNotRunning(EngineError):
    pass


def spawn_engine(runtime: Runtime, log_file: str | None = None, *, auto: bool = True) -> None:
    """Start ``migtui engine`` for this runtime directory, detached from our terminal.
    ``auto``: a view starts it, and it exits with its last view once it guards nothing."""
    argv = [sys.executable, "-m", "migtui", "engine", "--foreground", *(["--auto"] if auto else []),
            "--runtime-dir", str(runtime.directory)]
    if log_file:
        argv += ["--log-file", os.path.abspath(log_file)]
    err_path = runtime.directory / "engine.err"
    with open(err_path, "ab") as err:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
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
        self.notices: list[tuple[str, str]] = []
        # The context messages are applied in: a UI sets its own (Textual's active app),
        # since the link's reader task was started before the UI existed.
        self.context: contextvars.Context | None = None

    # ------------------------------------------------------------------ connecting

    async def connect(self, *, start: bool = False, log_file: str | None = None) -> None:
        self.runtime.ensure()
        deadline = time.monotonic() + START_WAIT_S
        spawned = False
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.runtime.socket), limit=p.MAX_LINE)
                break
            except (FileNotFoundError, ConnectionRefusedError) as err:
                if not start:
                    raise EngineNotRunning(f"no migtui engine runs in {self.runtime.directory}"
                                           " (start one with `migtui MONITOR...` or `migtui engine`)") from err
                if not spawned:
                    spawn_engine(self.runtime, log_file)
                    spawned = True
                if time.monotonic() > deadline:
                    raise EngineError(f"the migtui engine did not start within {START_WAIT_S:g} s:"
                                      f" see {self.runtime.directory / 'engine.err'}") from err
                await asyncio.sleep(0.02)
            except OSError as err:
                raise EngineError(f"cannot reach the migtui engine at {self.runtime.socket}:"
                                  f" {err.strerror or err}") from err
        self._reader, self._writer = reader, writer
        self._send(m.Hello(p.VERSION, m.ViewInfo(self.kind, _tty(), os.getpid()), self.read_only))
        try:
            first = lines.decode(await asyncio.wait_for(reader.readline(), CALL_TIMEOUT_S))
        except (TimeoutError, p.ProtocolError, ConnectionError) as err:
            writer.close()
            raise EngineError(f"the migtui engine at {self.runtime.socket} did not answer ({err})") from None
        if isinstance(first, m.Error):
            writer.close()
            raise EngineError(first.error)
        if not isinstance(first, m.Welcome):
            writer.close()
            raise EngineError(f"the migtui engine at {self.runtime.socket} spoke something else ({first.OP})")
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        self._task = loop.create_task(self._read_loop(), name="engine-link")

    async def close(self) -> None:
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

    async def call(self, request: type[m.Call], **fields: Any) -> m.Reply:
        """Send ``request(id=..., **fields)``; the engine's reply to it."""
        rid = next(self._ids)
        fut: asyncio.Future[m.Reply] = asyncio.get_running_loop().create_future()
        self._calls[rid] = fut
        try:
            self._send(request(id=rid, **fields))
            return await asyncio.wait_for(fut, CALL_TIMEOUT_S)
        except TimeoutError:
            raise EngineError(f"the migtui engine did not answer {request.OP} within {CALL_TIMEOUT_S:g} s") from None
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

    async def stop_engine(self, timeout: float) -> None:
        """Ask the engine to stop, and wait (up to ``timeout`` s) for it to hang up."""
        await self.call(m.Stop)
        assert self.closed is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)

    async def guarding(self, *, stopping: bool = False) -> list[str]:
        """What the engine keeps guarding without a view (``stopping``: what stopping it would
        leave unguarded)."""
        reply = await self.call(m.Guarding, stopping=stopping)
        return reply.lines

    # ------------------------------------------------------------------ listeners

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
                    why = "the migtui engine exited"
                    break
                message = lines.decode(line)
                if self.context is not None:
                    self.context.run(self._dispatch, message)
                else:
                    self._dispatch(message)
        except (ConnectionError, asyncio.IncompleteReadError):
            why = "the migtui engine link broke"
        except p.ProtocolError as err:
            why = f"the migtui engine sent garbage ({err})"
        except asyncio.CancelledError:
            why = "closed"
            raise
        finally:
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
        if isinstance(message, m.Notice):
            self.notice(message.level, message.text, monitor=message.name, attempt=message.attempt)
            return
        if isinstance(message, m.Error):
            self.notice("error", message.error)
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
            elif isinstance(message, m.Switchover):
                session.switchover.apply(message.state)
        except Exception:  # a message this view cannot fold must not end the link
            log.exception("cannot apply %s for %s", message.OP, session.name)

    def _monitor(self, message: m.Monitor) -> None:
        if message.name in self.sessions:
            return
        a = message.address
        address = MonitorAddress(a.name, a.kind, a.path, a.host, a.port)
        self.sessions[message.name] = RemoteSession(self, message.name, address, interval=message.interval,
                                                    read_only=message.read_only)
