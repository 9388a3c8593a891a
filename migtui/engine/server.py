"""The engine's UNIX socket: views attach here (``docs/protocol.md``).

The socket is 0600 in the 0700 runtime directory, and every peer's uid is checked
(SO_PEERCRED): the same user or root, nobody else. A view is written to without
ever waiting for it: messages queue per view and go out in one write per loop
iteration; a view whose unread output passes ``MAX_BACKLOG`` is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from ..address import MonitorAddress
from ..errors import MigtuiError
from ..workflow.policy import Policy
from . import protocol as p
from .engine import Engine
from .runtime import Runtime

log = logging.getLogger("migtui.engine.server")

MAX_BACKLOG = 16 * 1024 * 1024  # bytes queued for one view before it is dropped
# Held writes: looked at again this often, and sent after this long whatever happens
# (a mirror can take seconds to finish: the views must not go dark meanwhile).
HOLD_POLL_S = 0.005
MAX_HOLD_S = 0.25


def peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class View:
    """One attached view, as the engine sees it."""

    def __init__(self, writer: asyncio.StreamWriter, hold: Callable[[], bool] = lambda: False) -> None:
        self.writer = writer
        self.hold = hold  # while true, writes wait (the engine acts on a stopped guest)
        self._held_since: float | None = None
        self.label = "a view"
        self.read_only = False
        self.subscribed = False
        self.closed = False
        self._queue: list[dict[str, Any]] = []
        self._scheduled = False

    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        last = self._queue[-1] if self._queue else None
        # Coalesce: consecutive feed batches of one monitor travel as one message.
        if (last is not None and message.get("op") == p.FEED and last.get("op") == p.FEED
                and last.get("name") == message.get("name")):
            # A new dict: the message sent is the one every view queued, not this view's own.
            self._queue[-1] = {**last, "entries": [*last["entries"], *message["entries"]]}
        else:
            self._queue.append(message)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self.closed or not self._queue:
            return
        loop = asyncio.get_running_loop()
        if self.hold():
            # Waking a view costs it milliseconds of CPU the engine and QEMU need now
            # (measured: 8.2 ms pauses instead of 3.3 with the view woken at once).
            now = loop.time()
            self._held_since = self._held_since if self._held_since is not None else now
            if now - self._held_since < MAX_HOLD_S:
                self._scheduled = True
                loop.call_later(HOLD_POLL_S, self._flush)
                return
        self._held_since = None
        queue, self._queue = self._queue, []
        try:
            self.writer.write(b"".join(p.encode(m) for m in queue))
        except (ConnectionError, RuntimeError) as err:
            self.drop(f"write failed ({err})")
            return
        transport = self.writer.transport
        if transport.get_write_buffer_size() > MAX_BACKLOG:
            self.drop(f"{transport.get_write_buffer_size()} bytes unread: too slow")

    def drop(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        log.warning("dropping %s: %s", self.label, why)
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


class EngineServer:
    def __init__(self, engine: Engine, runtime: Runtime) -> None:
        self.engine = engine
        self.runtime = runtime
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        path = self.runtime.socket
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # the caller holds the lock: a socket left here is a dead engine's
        # Bound and listening under another name, then renamed: whoever sees engine.sock can
        # connect (between bind and listen a connect is refused, and a view would take the
        # engine for dead).
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(staging))
        finally:
            os.umask(old)
        os.chmod(staging, 0o600)
        sock.listen(100)
        os.rename(staging, path)
        self.server = await asyncio.start_unix_server(self._client, sock=sock, limit=p.MAX_LINE)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
        with contextlib.suppress(FileNotFoundError):
            self.runtime.socket.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid is None or uid not in (os.getuid(), 0):
            log.warning("refused a view of uid %s", uid)
            with contextlib.suppress(Exception):  # its hello first, so that it reads our answer
                await asyncio.wait_for(reader.readline(), 5)
            writer.write(p.encode({"op": p.ERROR, "error": f"this migtui engine belongs to uid {os.getuid()};"
                                                            f" uid {uid} may not attach"}))
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
            return
        view = View(writer, self.engine.critical)
        try:
            hello = p.decode(await reader.readline())
            if hello.get("op") != p.HELLO:
                raise p.ProtocolError("the first message must be hello")
            if hello.get("version") != p.VERSION:
                writer.write(p.encode({"op": p.ERROR, "error": p.version_error(hello.get("version"))}))
                await writer.drain()
                return
            info = hello.get("view")
            view.label = _label(info if isinstance(info, dict) else {})
            view.read_only = bool(hello.get("read_only"))
            self.engine.attach(view)
            log.info("%s attached%s", view.label, " (read-only)" if view.read_only else "")
            view.send({"op": p.WELCOME, "version": p.VERSION, "pid": os.getpid(),
                       "runtime_dir": str(self.runtime.directory)})
            while not view.closed:
                line = await reader.readline()
                if not line:
                    break
                message = p.decode(line)
                asyncio.get_running_loop().create_task(self._handle(view, message))
        except (p.ProtocolError, ValueError) as err:
            view.send({"op": p.ERROR, "error": f"protocol error: {err}"})
            await asyncio.sleep(0)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.engine.detach(view)
            log.info("%s detached", view.label)
            view.closed = True
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, view: View, message: dict[str, Any]) -> None:
        op = message.get("op")
        rid = message.get("id")
        try:
            reply = await self._dispatch(view, op, message)
        except MigtuiError as err:
            reply = {"ok": False, "error": str(err)}
        except Exception as err:  # a bug answers one line; the engine goes on
            log.exception("request %r failed", message)
            reply = {"ok": False, "error": f"engine error: {err.__class__.__name__}: {err}"}
        if rid is not None:
            view.send({"op": p.REPLY, "id": rid, **reply})

    async def _dispatch(self, view: View, op: Any, message: dict[str, Any]) -> dict[str, Any]:
        engine = self.engine
        if op == p.WATCH:
            addresses = [MonitorAddress(**a) for a in message.get("monitors", [])]
            try:
                policy = Policy.from_json(message.get("policy"))
            except ValueError as err:
                return {"ok": False, "error": str(err)}
            read_only = bool(message.get("read_only")) or view.read_only
            names = engine.watch(addresses, policy, read_only=read_only,
                                 interval=float(message.get("interval", 1.0)))
            return {"ok": True, "names": names}
        if op == p.SUBSCRIBE:
            engine.subscribe(view)
            return {"ok": True}
        if op == p.REQUEST:
            return await engine.request(view, str(message.get("action")), str(message.get("monitor")),
                                        force=message.get("force") is True)
        if op == p.STATUS:
            return {"ok": True, "monitors": engine.status_json([str(a) for a in message.get("addresses", [])])}
        if op == "guarding":
            return {"ok": True, "lines": engine.guarding(stopping=message.get("stopping") is True)}
        if op == p.STOP:
            if view.read_only:
                return {"ok": False, "error": "read-only view: the engine refuses to stop"}
            log.info("stop requested by %s", view.label)
            asyncio.get_running_loop().call_soon(engine.stopped.set)
            return {"ok": True, "lines": engine.guarding(stopping=True)}
        return {"ok": False, "error": f"unknown op {op!r}"}


def _label(info: dict[str, Any]) -> str:
    kind = str(info.get("kind") or "view")
    tty = info.get("tty")
    pid = info.get("pid")
    where = f" on {tty}" if tty else ""
    return f"{kind}{where} (pid {pid})" if pid else f"{kind}{where}"
