"""LibvirtHost: one libvirt connection (``-c URI``), kept open, its domains as monitors.

libvirt's own connection and transport (``qemu:///system``, ``qemu+ssh://host/system``):
no daemon of migtui's on the hosts. Blocking libvirt calls run on this host's own
threads (a hung or unreachable host delays only itself); libvirt's callbacks come on
its event-loop thread (eventloop.py) and are handed to asyncio at once. A connection
that closes (libvirtd restarted or killed, the SSH link cut) marks every domain of the
host "reconnecting" (nothing shown as live) and is opened again with back-off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fnmatch
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..address import LIBVIRT, MonitorAddress
from ..errors import BY_LIBVIRT, CommandFailed, CommandTimeout, Disconnected, DomainGone, MonitorError, Unreachable
from ..transport import ConnectionStatus, ConnState
from . import eventloop
from .binding import load
from .domain import (
    RESUMED,
    STARTED,
    STARTED_MIGRATED,
    STOPPED,
    STOPPED_MIGRATED,
    SUSPENDED,
    UNDEFINED,
    DomainMonitor,
)

log = logging.getLogger("migtui.libvirt")

KEEPALIVE = (5, 3)  # a probe every 5 s, 3 unanswered: the link is dead
# libvirt's error codes for "the connection is gone" (virterror.h): VIR_ERR_SYSTEM_ERROR,
# VIR_ERR_RPC, VIR_ERR_NO_CONNECT, VIR_ERR_INTERNAL_ERROR on a closed socket.
_LINK_CODES = {1, 38, 39, 5}
EVENT_IDS = ("LIFECYCLE", "JOB_COMPLETED", "MIGRATION_ITERATION", "BLOCK_JOB_2")

DomainAdded = Callable[["LibvirtHost", DomainMonitor], None]


class DomainGoneCallback(Protocol):
    """``cb(host, monitor, why, migrated=...)``: the domain stopped, was undefined or left by
    migration (``migrated``: the source of a migration that completed)."""

    def __call__(self, host: LibvirtHost, monitor: DomainMonitor, why: str, *, migrated: bool) -> None: ...


# virDomainEventStoppedDetailType, as an operator says it
_STOPPED_WHY = {0: "shut down", 1: "destroyed", 2: "crashed", 3: "migrated away", 4: "saved", 5: "failed",
                6: "stopped for a snapshot"}


def host_label(uri: str) -> str:
    """The HOST of ``HOST/DOMAIN``: the URI's host, else "localhost" (a local libvirtd)."""
    return urlsplit(uri).hostname or "localhost"


class LibvirtHost:
    """One URI: its connection, reconnection, events and domains."""

    def __init__(self, uri: str, name: str, *, read_only: bool, on_domain: DomainAdded,
                 on_gone: DomainGoneCallback | None = None, domains: tuple[str, ...] = (),
                 connect_timeout: float = 10.0, command_timeout: float = 5.0,
                 backoff: tuple[float, float] = (0.5, 10.0)) -> None:
        self.libvirt, self.libvirt_qemu = load()
        self.uri = uri
        self.name = name
        self.read_only = read_only
        self.on_domain = on_domain
        self.on_gone = on_gone
        self.patterns = domains  # DOMAIN arguments and --domain globs: only these (all when empty)
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.backoff = backoff
        self.conn: Any = None
        self.status = ConnectionStatus(ConnState.CONNECTING)
        self.version: str | None = None
        self.monitors: dict[str, DomainMonitor] = {}  # uuid -> monitor
        self.first_attempt = asyncio.Event()  # the first connection attempt has an outcome
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"libvirt-{name}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self._closed = False
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._callbacks: list[int] = []
        self._qemu_callback: int | None = None

    def __repr__(self) -> str:
        return f"<LibvirtHost {self.name} {self.uri} {self.status.label()}>"

    # ------------------------------------------------------------------ calls

    async def call(self, command: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on this host's threads; libvirt's refusal as one line."""
        return await self._call(command, self.command_timeout, fn, *args)

    async def call_to_end(self, command: str, fn: Callable[..., Any], *args: Any) -> Any:
        """A call that lasts as long as what it does (migrateToURI3 returns when the migration
        has ended): no time limit; a lost connection still ends it with libvirt's error."""
        return await self._call(command, None, fn, *args)

    async def _call(self, command: str, limit: float | None, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit):
                return await loop.run_in_executor(self._executor, fn, *args)
        except TimeoutError:
            raise CommandTimeout(self.name, f"{self.name}: {self.uri}: no answer to {command} within"
                                            f" {self.command_timeout:g} s") from None
        except self.libvirt.libvirtError as err:
            if err.get_error_code() in _LINK_CODES and self.conn is not None and not self._alive():
                self._lost.set()
                raise Disconnected(self.name, f"{self.name}: {self.uri}: connection lost ({_line(err)})") from None
            raise CommandFailed(self.name, command, BY_LIBVIRT, _line(err)) from None

    @property
    def qemu_events(self) -> bool:
        """QEMU's own events arrive through libvirt (its MIGRATION events among them: libvirt
        turns QEMU's ``events`` capability on at start); not on a read-only connection."""
        return self._qemu_callback is not None

    def conn_call(self, method: str, *args: Any) -> Any:
        """A method of the connection, for :meth:`call` (the connection may change)."""
        return getattr(self.conn, method)(*args)

    def _alive(self) -> bool:
        try:
            return bool(self.conn.isAlive())
        except self.libvirt.libvirtError:
            return False

    # ------------------------------------------------------------------ run

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        eventloop.ensure_started(self.libvirt)
        self._task = asyncio.create_task(self._run(), name=f"libvirt-{self.name}")

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                await self._open()
            except MonitorError as err:
                attempt += 1
                state = ConnState.LOST if attempt > 4 or self.version is None else ConnState.RETRYING
                if str(err) != str(self.status.error):
                    log.warning("%s", err)
                self._set_status(ConnectionStatus(state, attempt, err))
                self.first_attempt.set()
                await self._sleep(min(self.backoff[1], self.backoff[0] * 2.0 ** min(attempt - 1, 30)))
                continue
            attempt = 0
            self._set_status(ConnectionStatus(ConnState.CONNECTED))
            self.first_attempt.set()
            await self._lost.wait()
            why = Disconnected(self.name, f"{self.name}: {self.uri}: connection to libvirtd lost; reconnecting")
            log.warning("%s", why)
            await self._drop()
            if not self._closed:
                self._set_status(ConnectionStatus(ConnState.RETRYING, 1, why))

    async def _open(self) -> None:
        self._lost = asyncio.Event()
        lv = self.libvirt
        opener = lv.openReadOnly if self.read_only else lv.open
        try:
            async with asyncio.timeout(self.connect_timeout):
                conn = await asyncio.get_running_loop().run_in_executor(self._executor, opener, self.uri)
        except TimeoutError:
            raise Unreachable(self.name, f"{self.name}: {self.uri}: no answer within {self.connect_timeout:g} s")\
                from None
        except lv.libvirtError as err:
            # libvirt's own line names the socket; what to do about it is ours to say.
            hint = ("; is libvirtd (or virtqemud) running there, and is the URI right?"
                    if err.get_error_code() == lv.VIR_ERR_SYSTEM_ERROR else "")
            raise Unreachable(self.name, f"{self.name}: {self.uri}: {_line(err)}{hint}") from None
        self.conn = conn
        try:
            driver = await self.call("open", conn.getType)
            if driver != "QEMU":  # libvirt's test driver, Xen, LXC...: no QEMU, no migration figures
                raise Unreachable(self.name, f"{self.name}: {self.uri} is libvirt's {driver} driver, not QEMU:"
                                             " migtui watches QEMU domains (qemu:///system, qemu+ssh://HOST/system)")
            await self.call("open", self._register, conn)
            version = await self.call("open", conn.getVersion)
            self.version = f"{version // 1000000}.{version // 1000 % 1000}.{version % 1000}"
            doms = await self.call("open", conn.listAllDomains, lv.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            found = {}
            for dom in doms:
                found[await self.call("open", dom.UUIDString)] = (dom, await self.call("open", dom.name),
                                                                  await self.call("open", dom.jobStats, 0))
        except MonitorError:
            await self._drop()
            raise
        for uuid, monitor in list(self.monitors.items()):
            if uuid in found or isinstance(monitor.status.error, DomainGone):  # (gone already: said so)
                continue
            why = f"{monitor.name}: no longer runs on {self.name}"  # it stopped while the link was down
            monitor.detach(DomainGone(monitor.name, why))
            self._gone(monitor, why, migrated=False)
        for uuid, (dom, name, stats) in found.items():
            self._domain_up(uuid, name, dom, incoming=stats.get("operation") == 4)

    def _register(self, conn: Any) -> None:
        """On a host thread: keepalive, close callback, domain events, QEMU's events."""
        lv = self.libvirt
        with contextlib.suppress(lv.libvirtError):  # (without keepalive the close callback still tells)
            conn.setKeepAlive(*KEEPALIVE)
        conn.registerCloseCallback(self._closed_cb, None)
        for name in EVENT_IDS:
            event_id = getattr(lv, f"VIR_DOMAIN_EVENT_ID_{name}")
            self._callbacks.append(conn.domainEventRegisterAny(None, event_id, self._event_cb(name), None))
        try:
            self._qemu_callback = self.libvirt_qemu.qemuMonitorEventRegister(conn, None, None, self._qemu_cb, None, 0)
        except lv.libvirtError as err:  # e.g. a driver without it: figures by polling only
            # (a read-only connection may not: its figures come from polls, the pause unmeasured)
            log.info("%s: no QEMU events through libvirt: %s", self.name, _line(err))
            self._qemu_callback = None

    async def _drop(self) -> None:
        conn, self.conn = self.conn, None
        callbacks, self._callbacks = self._callbacks, []
        qemu_cb, self._qemu_callback = self._qemu_callback, None
        for monitor in self.monitors.values():
            monitor.detach(Disconnected(monitor.name, f"{monitor.name}: the connection to libvirtd on {self.name}"
                                                      " was lost; reconnecting"))
        if conn is None:
            return

        def close() -> None:
            undo: list[Callable[[], Any]] = [partial(conn.domainEventDeregisterAny, cb) for cb in callbacks]
            if qemu_cb is not None:
                undo.append(partial(self.libvirt_qemu.qemuMonitorEventDeregister, conn, qemu_cb))
            for step in (*undo, conn.unregisterCloseCallback, conn.close):
                with contextlib.suppress(self.libvirt.libvirtError):  # the link may be dead already
                    step()

        try:
            async with asyncio.timeout(self.command_timeout):
                await asyncio.get_running_loop().run_in_executor(self._executor, close)
        except TimeoutError:
            log.warning("%s: closing the connection took too long", self.name)

    async def _sleep(self, seconds: float) -> None:
        """The back-off: ``seconds``, or until :meth:`close`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def close(self) -> None:
        self._closed = True
        self._closing.set()
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._drop()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def forget(self, monitor: DomainMonitor) -> None:
        if self.monitors.get(monitor.uuid) is monitor:
            del self.monitors[monitor.uuid]

    def _set_status(self, status: ConnectionStatus) -> None:
        self.status = status
        if status.state is not ConnState.CONNECTED:
            for monitor in self.monitors.values():
                if monitor.dom is None and status.error is not None:
                    monitor.detach(status.error)

    # ------------------------------------------------------------------ domains

    def wanted(self, name: str) -> bool:
        return not self.patterns or any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def _domain_up(self, uuid: str, name: str, dom: Any, *, incoming: bool) -> None:
        if not self.wanted(name):
            return
        monitor = self.monitors.get(uuid)
        if monitor is None:
            address = MonitorAddress(f"{self.name}/{name}", LIBVIRT, self.uri, name)
            monitor = DomainMonitor(address, self, uuid, command_timeout=self.command_timeout)
            self.monitors[uuid] = monitor
            monitor.attach(dom, self.version, incoming=incoming)
            self.on_domain(self, monitor)
        else:
            monitor.attach(dom, self.version, incoming=incoming)

    # ------------------------------------------------------------------ callbacks (libvirt's thread)

    def _soon(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _closed_cb(self, _conn: Any, reason: int, _opaque: Any) -> None:
        self._soon(self._lost.set)

    def _event_cb(self, kind: str) -> Callable[..., None]:
        def cb(_conn: Any, dom: Any, *args: Any) -> None:
            try:
                uuid, name = dom.UUIDString(), dom.name()
            except self.libvirt.libvirtError:
                return
            self._soon(self._domain_event, kind, uuid, name, dom, args[:-1])
        return cb

    def _qemu_cb(self, _conn: Any, dom: Any, event: str, seconds: int, micros: int, details: str | None,
                 _opaque: Any) -> None:
        try:
            uuid = dom.UUIDString()
        except self.libvirt.libvirtError:
            return
        self._soon(self._qemu_event, uuid, event, seconds, micros, details)

    def _qemu_event(self, uuid: str, event: str, seconds: int, micros: int, details: str | None) -> None:
        monitor = self.monitors.get(uuid)
        if monitor is not None and monitor.dom is not None:
            monitor.qemu_event(event, seconds, micros, details)

    def _domain_event(self, kind: str, uuid: str, name: str, dom: Any, args: tuple[Any, ...]) -> None:
        monitor = self.monitors.get(uuid)
        if kind == "JOB_COMPLETED" and monitor is not None:
            monitor.job_completed(args[0] if args and isinstance(args[0], dict) else {})
            return
        if kind == "MIGRATION_ITERATION" and monitor is not None and monitor.dom is not None and args:
            monitor.iteration(int(args[0]))
            return
        if kind != "LIFECYCLE" or len(args) < 2:
            return
        event, detail = int(args[0]), int(args[1])
        if event == STARTED or (monitor is not None and monitor.dom is None and event in (SUSPENDED, RESUMED)):
            self._domain_up(uuid, name, dom, incoming=event == STARTED and detail == STARTED_MIGRATED)
            monitor = self.monitors.get(uuid)
        if monitor is None:
            return
        monitor.lifecycle(event, detail)
        if event == STOPPED and monitor.dom is not None:
            why = f"{monitor.name}: {_STOPPED_WHY.get(detail, 'shut off')}"
            monitor.detach(DomainGone(monitor.name, why))
            self._gone(monitor, why, migrated=detail == STOPPED_MIGRATED)
        elif event == UNDEFINED and monitor.dom is None and not monitor.migrated_away:
            # (undefining a running domain does not stop it; a migrated-away source keeps its
            # figures on show for a while, undefined or not: --undefinesource)
            self._gone(monitor, f"{monitor.name}: undefined", migrated=False)

    def _gone(self, monitor: DomainMonitor, why: str, *, migrated: bool) -> None:
        if self.on_gone is not None:
            self.on_gone(self, monitor, why, migrated=migrated)


def _line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else err.__class__.__name__
