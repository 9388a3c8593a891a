"""The engine's UNIX socket: views attach here (``docs/protocol.md``).

The socket is 0600 in the 0700 runtime directory, and every peer's uid is checked
(SO_PEERCRED): the same user or root, nobody else. A view is written to without
ever waiting for it: messages queue per view and go out in one write per loop
iteration; a view whose unread output passes ``MAX_BACKLOG`` is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import struct
from collections.abc import Callable

from ..address import MonitorAddress
from ..errors import MigtuiError
from ..protocol import framing as p
from ..protocol import lines
from ..protocol import messages as m
from ..protocol.runtime import Runtime
from ..workflow.policy import Policy
from .engine import Engine

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
        self._queue: list[m.Message] = []
        self._scheduled = False

    def send(self, message: m.Message) -> None:
        if self.closed:
            return
        last = self._queue[-1] if self._queue else None
        # Coalesce: consecutive feed batches of one monitor travel as one message.
        if isinstance(message, m.Feed) and isinstance(last, m.Feed) and last.name == message.name:
            # A new message: the one sent is the one every view queued, not this view's own.
            self._queue[-1] = m.Feed(last.name, [*last.entries, *message.entries])
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
            self.writer.write(b"".join(lines.encode(message) for message in queue))
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
            refusal = f"this migtui engine belongs to uid {os.getuid()}; uid {uid} may not attach"
            writer.write(lines.encode(m.Error(refusal)))
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
            return
        view = View(writer, self.engine.critical)
        try:
            hello = lines.decode(await reader.readline())
            if not isinstance(hello, m.Hello):
                raise p.ProtocolError("the first message must be hello")
            if hello.version != p.VERSION:
                writer.write(lines.encode(m.Error(p.version_error(hello.version))))
                await writer.drain()
                return
            view.label = _label(hello.view)
            view.read_only = hello.read_only
            self.engine.attach(view)
            log.info("%s attached%s", view.label, " (read-only)" if view.read_only else "")
            view.send(m.Welcome(p.VERSION, os.getpid(), str(self.runtime.directory)))
            while not view.closed:
                line = await reader.readline()
                if not line:
                    break
                message = lines.decode(line)
                asyncio.get_running_loop().create_task(self._handle(view, message))
        except (p.ProtocolError, ValueError) as err:
            view.send(m.Error(f"protocol error: {err}"))
            await asyncio.sleep(0)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.engine.detach(view)
            log.info("%s detached", view.label)
            view.closed = True
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, view: View, message: m.Message) -> None:
        rid = getattr(message, "id", None)
        try:
            reply = await self._dispatch(view, message)
        except MigtuiError as err:
            reply = m.Reply(0, False, error=str(err))
        except Exception as err:  # a bug answers one line; the engine goes on
            log.exception("request %r failed", message)
            reply = m.Reply(0, False, error=f"engine error: {err.__class__.__name__}: {err}")
        if isinstance(rid, int):
            view.send(dataclasses.replace(reply, id=rid))

    async def _dispatch(self, view: View, message: m.Message) -> m.Reply:
        engine = self.engine
        if isinstance(message, m.Watch):
            addresses = [MonitorAddress(a.name, a.kind, a.path, a.host, a.port) for a in message.monitors]
            try:
                policy = Policy(message.policy.auto_resume, message.policy.max_pause_s, message.policy.on_max_pause,
                                frozenset(message.policy.explicit))
            except ValueError as err:
                return m.Reply(0, False, error=str(err))
            names = engine.watch(addresses, policy, read_only=message.read_only or view.read_only,
                                 interval=message.interval)
            return m.Reply(0, True, names=names)
        if isinstance(message, m.Subscribe):
            engine.subscribe(view)
            return m.Reply(0, True)
        if isinstance(message, m.Request):
            return await engine.request(view, message.action, message.monitor, force=message.force,
                                        value=message.value)
        if isinstance(message, m.Status):
            return m.Reply(0, True, monitors=engine.status_json(message.addresses))
        if isinstance(message, m.Guarding):
            return m.Reply(0, True, lines=engine.guarding(stopping=message.stopping))
        if isinstance(message, m.Stop):
            if view.read_only:
                return m.Reply(0, False, error="read-only view: the engine refuses to stop")
            log.info("stop requested by %s", view.label)
            asyncio.get_running_loop().call_soon(engine.stopped.set)
            return m.Reply(0, True, lines=engine.guarding(stopping=True))
        return m.Reply(0, False, error=f"{message.OP} is not a request")


def _label(info: m.ViewInfo) -> str:
    where = f" on {info.tty}" if info.tty else ""
    return f"{info.kind}{where} (pid {info.pid})" if info.pid else f"{info.kind}{where}"
