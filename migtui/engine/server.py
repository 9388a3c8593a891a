"""The engine's UNIX socket: views attach here (``docs/protocol.md``).

The socket is 0600 in the 0700 runtime directory, and every peer's uid is checked
(SO_PEERCRED): the same user or root, nobody else. A view is written to without
ever waiting for it: messages queue per view and go out in one write per loop
iteration; a view whose unread output passes ``MAX_BACKLOG`` is dropped.

Connections are bounded, so that a script that leaks them cannot take the engine's
file descriptors (and with them every new view, and ``migtui engine stop``): a
connection must say ``hello`` within ``HELLO_TIMEOUT_S``; at most ``max_pending`` wait
for theirs (a new one closes the oldest); at most ``max_views`` views attach, and each
has at most ``MAX_IN_FLIGHT`` requests answered at once, each answer written before
its next line is read. Whoever is refused gets one ``error`` line. Views that have had
nothing for ``HEARTBEAT_S`` get a ``heartbeat``: silence means a stopped or hung engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import resource
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from ..address import CONNECT, MonitorAddress
from ..errors import MigtuiError
from ..protocol import framing as p
from ..protocol import lines
from ..protocol import messages as m
from ..protocol.runtime import Runtime
from .engine import HOLD_POLL_S, MAX_HOLD_S, Engine
from .wire import policy_from

log = logging.getLogger("migtui.engine.server")

MAX_BACKLOG = 16 * 1024 * 1024  # bytes queued for one view before it is dropped
HELLO_TIMEOUT_S = 10.0  # a connection that has not said hello by then is closed
MAX_PENDING = 64  # connections waiting for their hello (fewer with few descriptors)
MAX_VIEWS = 1024  # views attached at once (fewer with few descriptors)
MAX_IN_FLIGHT = 32  # requests of one view answered at once; its next line waits for one to end
HEARTBEAT_S = 1.0  # a view that has had nothing else for this long gets a heartbeat


def connection_limits(nofile: int) -> tuple[int, int]:
    """(views, pending): how many views attach and how many connections wait for their
    hello, with ``nofile`` file descriptors. The listening socket accepts up to
    ``pending`` at once before any is looked at, so views, waiting and just-accepted
    connections take at most half of them: the rest is for the QMP connections and files."""
    pending = max(4, min(MAX_PENDING, nofile // 8))
    views = max(4, min(MAX_VIEWS, nofile // 2 - 2 * pending))
    return views, pending


def peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


# What a monitor's input changes: written one loop turn later than the rest, after the
# callbacks the same turn scheduled have run (the advice and the pause's facts are each
# decided in a callback of their own), so that a poll's input and what it changed go out
# in one write and the view wakes once for them, not twice. Replies, errors and notices go
# at once (an error is written before its connection closes).
_WITH_THE_TURN = (m.Feed, m.Convergence, m.Controls, m.Pause, m.ConvergePolicy, m.StartOffer)


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
        self._scheduled = False  # a flush is due
        self._urgent = False  # ... at the next loop turn
        self.last_write = time.monotonic()  # when something last went out (heartbeats fill the gaps)

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
        loop = asyncio.get_running_loop()
        if isinstance(message, _WITH_THE_TURN):
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(loop.call_soon, self._flush)
        elif not self._urgent:  # (a later flush finds nothing left, and returns)
            self._scheduled = self._urgent = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = self._urgent = False
        if self.closed or not self._queue:
            return
        loop = asyncio.get_running_loop()
        if self.hold():
            # Waking a view costs it milliseconds of CPU the engine and QEMU need now
            # (measured: 8.2 ms pauses instead of 3.3 with the view woken at once).
            now = loop.time()
            self._held_since = self._held_since if self._held_since is not None else now
            if now - self._held_since < MAX_HOLD_S:
                self._scheduled = self._urgent = True  # (one timer, whatever comes meanwhile)
                loop.call_later(HOLD_POLL_S, self._flush)
                return
        self._held_since = None
        queue, self._queue = self._queue, []
        # Encoded one by one, and never more than the view may have unread: a view that
        # asks for the whole picture thousands of times without reading is dropped at the
        # limit, not after all of it was built in memory.
        unread = self.writer.transport.get_write_buffer_size()
        chunks = []
        for message in queue:
            chunk = lines.encode(message)
            unread += len(chunk)
            if unread > MAX_BACKLOG:
                self.drop(f"more than {unread} bytes unread: too slow")
                return
            chunks.append(chunk)
        try:
            self.writer.write(b"".join(chunks))
        except (OSError, RuntimeError) as err:
            self.drop(f"write failed ({err})")
            return
        self.last_write = time.monotonic()

    def drop(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue = []
        log.warning("dropping %s: %s", self.label, why)
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


class _Waiting:
    """A connection that has not said hello yet."""

    __slots__ = ("closed", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.closed = False  # closed by the engine (too many waiting)


class EngineServer:
    def __init__(self, engine: Engine, runtime: Runtime, *, nofile: int | None = None) -> None:
        self.engine = engine
        self.runtime = runtime
        self.server: asyncio.AbstractServer | None = None
        soft = nofile if nofile is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.max_views, self.max_pending = connection_limits(soft if soft != resource.RLIM_INFINITY else 1 << 20)
        self.views: set[View] = set()
        self._waiting: dict[asyncio.StreamWriter, _Waiting] = {}  # oldest first
        self._clients: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.TimerHandle | None = None
        self._closing = False

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
        sock.listen(self.max_pending)
        os.rename(staging, path)
        # backlog: also how many connections asyncio accepts at once before any is looked at.
        self.server = await asyncio.start_unix_server(self._client, sock=sock, limit=p.MAX_LINE,
                                                      backlog=self.max_pending)
        self._heartbeat = asyncio.get_running_loop().call_later(HEARTBEAT_S, self._beat)
        log.info("taking up to %d views, %d connections waiting for their hello", self.max_views, self.max_pending)

    async def close(self, goodbye: str | None = None) -> None:
        """Close every link; ``goodbye``: the engine stops on purpose (by whom), the last
        line each view reads, written out before its link is cut."""
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self.server is not None:
            self.server.close()
        if goodbye is not None:
            await self._say_goodbye(m.Goodbye(goodbye))
        # Every connection ends now, so that its task ends before the loop does (a task the
        # loop has to cancel at its end is logged as an error, one per connection).
        for writer in [*self._waiting, *(view.writer for view in self.views)]:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        if self._clients:
            await asyncio.wait(list(self._clients), timeout=2.0)
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
        with contextlib.suppress(FileNotFoundError):
            self.runtime.socket.unlink()

    async def _say_goodbye(self, goodbye: m.Goodbye) -> None:
        chunk = lines.encode(goodbye)
        writers = [view.writer for view in self.views if not view.closed]
        for writer in writers:
            with contextlib.suppress(Exception):
                writer.write(chunk)
        # A view that does not read within a second loses its goodbye: the stop goes on.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(w.drain() for w in writers), return_exceptions=True), 1.0)

    def loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The event loop's error handler: a connection it cannot accept (out of file
        descriptors) is one line, not a traceback per attempt."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
            log.warning("cannot accept a connection: %s (%d views, %d waiting for their hello)",
                        exc.strerror or exc, len(self.views), len(self._waiting))
            return
        loop.default_exception_handler(context)

    def _beat(self) -> None:
        now = time.monotonic()
        for view in list(self.views):
            if not view.closed and now - view.last_write >= HEARTBEAT_S * 0.9:
                view.send(m.Heartbeat(time.time(), HEARTBEAT_S))
        self._heartbeat = asyncio.get_running_loop().call_later(HEARTBEAT_S, self._beat)

    @staticmethod
    def _refuse(writer: asyncio.StreamWriter, why: str) -> None:
        """One error line, then the connection closes."""
        with contextlib.suppress(Exception):
            writer.write(lines.encode(m.Error(why)))
        with contextlib.suppress(Exception):
            writer.close()

    def _wait_for_hello(self, writer: asyncio.StreamWriter) -> _Waiting:
        if len(self._waiting) >= self.max_pending:  # the oldest makes room: a new view gets in
            oldest = next(iter(self._waiting.values()))
            oldest.closed = True
            del self._waiting[oldest.writer]
            log.warning("closed a connection that had not said hello: %d more are waiting for theirs",
                        len(self._waiting))
            self._refuse(oldest.writer, f"closed: {len(self._waiting) + 1} connections to this migtui engine"
                                        " were waiting to say hello; the oldest goes")
        waiting = self._waiting[writer] = _Waiting(writer)
        return waiting

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            await self._serve_client(reader, writer)
        finally:
            if task is not None:
                self._clients.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            return
        waiting = self._wait_for_hello(writer)
        try:
            line = await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT_S)
        except TimeoutError:
            log.info("closed a connection that said nothing for %g s", HELLO_TIMEOUT_S)
            self._refuse(writer, f"no hello within {HELLO_TIMEOUT_S:g} s: closed")
            return
        except (OSError, ValueError, asyncio.IncompleteReadError):  # ValueError: a line over the limit
            return
        finally:
            self._waiting.pop(writer, None)
        if waiting.closed or not line:
            return
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid is None or uid not in (os.getuid(), 0):
            log.warning("refused a view of uid %s", uid)
            self._refuse(writer, f"this migtui engine belongs to uid {os.getuid()}; uid {uid} may not attach")
            return
        view = View(writer, self.engine.critical)
        attached = False
        try:
            hello = lines.decode(line)
            if not isinstance(hello, m.Hello):
                raise p.ProtocolError("the first message must be hello")
            if hello.version != p.VERSION:
                writer.write(lines.encode(m.Error(p.version_error(hello.version))))
                await writer.drain()
                return
            view.label = _label(hello.view)
            view.read_only = hello.read_only
            if len(self.views) >= self.max_views:
                log.warning("refused %s: %d views attached already", view.label, len(self.views))
                self._refuse(writer, f"this migtui engine has {len(self.views)} views attached, the most it takes:"
                                     " close some (a script that leaves its connections open?)")
                return
            self.views.add(view)
            self.engine.attach(view)
            attached = True
            log.info("%s attached%s", view.label, " (read-only)" if view.read_only else "")
            view.send(m.Welcome(p.VERSION, os.getpid(), str(self.runtime.directory), HEARTBEAT_S))
            in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
            loop = asyncio.get_running_loop()
            while not view.closed:
                line = await reader.readline()
                if not line:
                    break
                message = lines.decode(line)
                await in_flight.acquire()
                handler = loop.create_task(self._handle(view, message))
                handler.add_done_callback(lambda _task: in_flight.release())
                # Its answer is written before the next line is read: a burst of requests
                # read in one go cannot pile up their answers in memory.
                await asyncio.sleep(0)
        except (p.ProtocolError, ValueError) as err:
            view.send(m.Error(f"protocol error: {err}"))
            await asyncio.sleep(0)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.views.discard(view)
            if attached:
                self.engine.detach(view)
                log.info("%s detached", view.label)
            view.closed = True

    async def _handle(self, view: View, message: m.Message) -> None:
        if view.closed:
            return
        rid = getattr(message, "id", None)
        try:
            expires = message.expires if isinstance(message, m.Call) else None
            late = time.time() - expires if expires is not None else 0.0
            if late > 0:  # the view gave up on it (and said so): the engine was stopped or hung
                reply = m.Reply(0, False, error=_expired(message, late))
                log.warning("%s from %s", reply.error, view.label)
            else:
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
                policy = policy_from(message.policy)
            except ValueError as err:
                return m.Reply(0, False, error=str(err))
            read_only = message.read_only or view.read_only
            names = engine.watch([a for a in addresses if a.kind != CONNECT], policy, read_only=read_only,
                                 interval=message.interval)
            for a in addresses:
                if a.kind == CONNECT and a.path is not None:  # -c URI: a libvirt connection
                    patterns = tuple(filter(None, (a.host or "").split(",")))
                    names += await engine.connect(a.path, a.name or None, patterns, policy, read_only=read_only,
                                                  interval=message.interval, asker=view)
            return m.Reply(0, True, names=names)
        if isinstance(message, m.Subscribe):
            engine.subscribe(view)
            return m.Reply(0, True)
        if isinstance(message, m.Request):
            return await engine.request(view, message.action, message.monitor, force=message.force,
                                        value=message.value)
        if isinstance(message, m.Start):
            return await engine.starts.request(view, message)
        if isinstance(message, m.Status):
            return m.Reply(0, True, monitors=engine.status_json(message.addresses))
        if isinstance(message, m.Guarding):
            return m.Reply(0, True, lines=engine.guarding(stopping=message.stopping))
        if isinstance(message, m.Stop):
            if view.read_only:
                return m.Reply(0, False, error="read-only view: the engine refuses to stop")
            log.info("stop requested by %s", view.label)
            asyncio.get_running_loop().call_soon(engine.stop_soon, f"stopped by {view.label}")
            return m.Reply(0, True, lines=engine.guarding(stopping=True), names=engine.disarms_on_stop())
        return m.Reply(0, False, error=f"{message.OP} is not a request")


def _expired(message: m.Message, late: float) -> str:
    what = message.OP
    if isinstance(message, m.Request):
        what = f"{message.monitor}: {message.action}"
    return (f"{what} not done: the view gave up on it {late:.1f} s before the engine read it"
            " (the engine was stopped or busy)")


def _label(info: m.ViewInfo) -> str:
    where = f" on {info.tty}" if info.tty else ""
    return f"{info.kind}{where} (pid {info.pid})" if info.pid else f"{info.kind}{where}"
