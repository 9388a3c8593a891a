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
from dataclasses import asdict
from typing import Any

from ..address import MonitorAddress
from ..errors import MigtuiError
from ..listeners import Listeners
from ..engine import protocol as p
from ..engine.runtime import Runtime
from ..workflow.policy import Policy
from .remote import RemoteSession

log = logging.getLogger("migtui.view")

# An engine this view started: waited for as long as it runs (a loaded machine can take
# long to start Python), up to this backstop; one that exits early is said at once.
START_WAIT_S = 60.0
CALL_TIMEOUT_S = 30.0


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
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
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
        spawned: subprocess.Popen[bytes] | None = None
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.runtime.socket), limit=p.MAX_LINE)
                break
            except (FileNotFoundError, ConnectionRefusedError) as err:
                if not start:
                    raise EngineNotRunning(f"no migtui engine runs in {self.runtime.directory}"
                                           " (start one with `migtui MONITOR...` or `migtui engine`)") from err
                if spawned is None:
                    spawned = spawn_engine(self.runtime, log_file)
                elif spawned.poll() not in (None, 0):  # 0: another engine took the lock; it listens soon
                    raise EngineError(f"the migtui engine exited as it started (status {spawned.returncode}):"
                                      f" see {self.runtime.directory / 'engine.err'}") from err
                if time.monotonic() > deadline:
                    raise EngineError(f"the migtui engine did not start within {START_WAIT_S:g} s:"
                                      f" see {self.runtime.directory / 'engine.err'}") from err
                await asyncio.sleep(0.02)
            except OSError as err:
                raise EngineError(f"cannot reach the migtui engine at {self.runtime.socket}:"
                                  f" {err.strerror or err}") from err
        self._reader, self._writer = reader, writer
        self._send({"op": p.HELLO, "version": p.VERSION, "read_only": self.read_only,
                    "view": {"kind": self.kind, "tty": _tty(), "pid": os.getpid()}})
        try:
            first = p.decode(await asyncio.wait_for(reader.readline(), CALL_TIMEOUT_S))
        except (asyncio.TimeoutError, p.ProtocolError, ConnectionError) as err:
            writer.close()
            raise EngineError(f"the migtui engine at {self.runtime.socket} did not answer ({err})") from None
        if first.get("op") == p.ERROR:
            writer.close()
            raise EngineError(str(first.get("error")))
        if first.get("op") != p.WELCOME:
            writer.close()
            raise EngineError(f"the migtui engine at {self.runtime.socket} spoke something else ({first.get('op')})")
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

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise EngineError("the migtui engine link is closed")
        self._writer.write(p.encode(message))

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[rid] = fut
        try:
            self._send({"op": op, "id": rid, **fields})
            return await asyncio.wait_for(fut, CALL_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise EngineError(f"the migtui engine did not answer {op} within {CALL_TIMEOUT_S:g} s") from None
        finally:
            self._calls.pop(rid, None)

    # ------------------------------------------------------------------ requests

    async def watch(self, addresses: Sequence[MonitorAddress], policy: Policy, *, read_only: bool,
                    interval: float) -> list[str]:
        monitors = [asdict(a.absolute()) for a in addresses]
        reply = await self.call(p.WATCH, monitors=monitors, policy=policy.to_json(), read_only=read_only,
                                interval=interval)
        if not reply.get("ok"):
            raise EngineError(str(reply.get("error")))
        return [str(n) for n in reply.get("names", [])]

    async def subscribe(self) -> None:
        reply = await self.call(p.SUBSCRIBE)
        if not reply.get("ok"):
            raise EngineError(str(reply.get("error")))

    async def stop_engine(self, timeout: float) -> None:
        """Ask the engine to stop, and wait (up to ``timeout`` s) for it to hang up."""
        await self.call("stop")
        assert self.closed is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)

    async def guarding(self, *, stopping: bool = False) -> list[str]:
        """What the engine keeps guarding without a view (``stopping``: what stopping it would
        leave unguarded)."""
        reply = await self.call("guarding", **({"stopping": True} if stopping else {}))
        return [str(x) for x in reply.get("lines", [])]

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
                message = p.decode(line)
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

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        name = message.get("name")
        if op == p.REPLY:
            fut = self._calls.get(message.get("id"))  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                fut.set_result(message)
            return
        if op == p.MONITOR:
            self._monitor(message)
            return
        if op == p.NOTICE:
            name = message.get("name")
            self.notice(str(message.get("level", "info")), str(message.get("text", "")),
                        monitor=str(name) if name else None, attempt=message.get("attempt") is True)
            return
        if op == p.ERROR:
            self.notice("error", str(message.get("error")))
            return
        session = self.sessions.get(str(name))
        if session is None:
            return
        try:
            if op == p.FEED:
                session.apply_feed(message.get("entries") or [])
            elif op == p.SESSION:
                session.apply_session(message)
            elif op == p.PAUSE:
                session.apply_pause(message)
            elif op == p.SWITCHOVER:
                session.switchover.apply(message.get("state") or {})
        except Exception:  # a message this view cannot fold must not end the link
            log.exception("cannot apply %s for %s", op, name)

    def _monitor(self, message: dict[str, Any]) -> None:
        name = str(message.get("name"))
        if name in self.sessions:
            return
        address = MonitorAddress(**message["address"])
        session = RemoteSession(self, name, address, interval=float(message.get("interval", 1.0)),
                                read_only=bool(message.get("read_only")))
        self.sessions[name] = session
