"""DomainMonitor: one libvirt domain behind the Monitor interface the session polls.

Its ``execute()`` answers the session's read-only queries from libvirt's API
(jobstats.py translates) and maps the few controls migtui has to libvirt's own calls:
never a raw QMP command on a libvirt domain (no ``qemu-monitor-command``, which taints
it). Everything else is refused with the reason. QEMU's own events arrive through
libvirt's QEMU event passthrough with QEMU's timestamps and are told as QMP events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..address import MonitorAddress
from ..errors import DomainGone, MonitorError, NotSupported, ReadOnlyRefused
from ..model.events import QmpEvent
from ..model.migration import FINISHED_STATUSES
from ..transport import ConnectionStatus, ConnState, Monitor
from ..transport.readonly import is_read_only
from . import jobstats

if TYPE_CHECKING:
    from .connection import LibvirtHost

log = logging.getLogger("migtui.libvirt")

LIBVIRT = "libvirt"
# What a libvirt domain answers: queries from libvirt's API, controls through its calls.
QUERIES = ("query-migrate", "query-status", "query-block-jobs", "query-migrate-parameters", "query-dirty-rate")
CONTROLS = ("migrate_cancel", "migrate-set-parameters", "migrate-start-postcopy", "calc-dirty-rate")
# virConnectDomainEventLifecycle: (event, detail)
UNDEFINED, STARTED, SUSPENDED, RESUMED, STOPPED = 1, 2, 3, 4, 5
STARTED_MIGRATED = 1  # the destination of an incoming migration
SUSPENDED_MIGRATED = 1  # paused for the switchover (QEMU's STOP)
STOPPED_MIGRATED = 3  # the source, once the guest runs on the destination
RESUMED_MIGRATED, RESUMED_POSTCOPY = 1, 3

ReplyListener = Callable[..., object]  # (command, reply, began_after=...): MonitorSession.feed


class DomainMonitor(Monitor):
    """A libvirt domain (``HOST/DOMAIN``) as a monitor; its host keeps the connection."""

    manager = LIBVIRT

    def __init__(self, address: MonitorAddress, host: LibvirtHost, uuid: str, *, command_timeout: float) -> None:
        super().__init__(address, read_only=host.read_only, command_timeout=command_timeout)
        self.host = host
        self.uuid = uuid
        self.domain_name = address.host or address.name
        self.commands = frozenset(QUERIES + CONTROLS)
        self.dom: Any = None  # the virDomain, while the domain runs on a live connection
        self.incoming = False  # started by an incoming migration that has not finished
        self.migrated_away = False  # stopped because its migration completed (a source)
        self.qemu_status: str | None = None  # QEMU's last MIGRATION status in this job
        self.completed: dict[str, Any] | None = None  # the last completed job's statistics
        self._disks: list[str] | None = None
        self._job_names: dict[str, str] = {}  # QEMU's block job name -> the disk target
        # When a dom.state() that found the guest running was asked: it ran after then (a
        # receive time of libvirt's events would not do: an event sent before the guest
        # stopped can arrive after).
        self._running_at: float | None = None
        self._passes = False  # libvirt told a pass of this job (MIGRATION_ITERATION)
        self._stats: dict[str, Any] = {}  # the last jobStats() of a running job
        self._learning: asyncio.Task[None] | None = None
        self._job_running = False  # the last jobStats() said a job runs
        self._aborted = False  # migtui aborted the job under way (abortJob)
        # One query-migrate at a time: the poll's and the one a finished status sets off
        # (session._final_query) ran at once, and each reads and sets the job's state across
        # two jobStats() calls -- the poll's stale "running" made the other's cancelled job a
        # new one, and its end a failure (seen in the libvirt postcopy test).
        self._query_lock = asyncio.Lock()
        self._reply_listeners: list[ReplyListener] = []
        self._stopped = asyncio.Event()

    def __repr__(self) -> str:
        return f"<DomainMonitor {self.name} {self.status.label()}>"

    def add_reply_listener(self, cb: ReplyListener) -> None:
        """``cb(command, reply)`` for figures libvirt pushes (the JOB_COMPLETED statistics)."""
        self._reply_listeners.append(cb)

    @property
    def migration_evented(self) -> bool:
        """A migration's start comes as QEMU's MIGRATION event through libvirt: an idle domain
        need not be asked whether one began (read-only connections, without them, are)."""
        return self.host.qemu_events

    @property
    def run_state_evented(self) -> bool:
        return False

    @property
    def connected(self) -> bool:
        return self.status.state is ConnState.CONNECTED and self.dom is not None

    # ------------------------------------------------------------------ the host's word

    def attach(self, dom: Any, version: str | None, *, incoming: bool = False) -> None:
        """The domain runs on a live connection (found, started, arrived or reconnected)."""
        self.dom, self.qemu_version, self._disks = dom, version, None
        self._running_at, self._passes = None, False
        self._learn_disks(dom)
        self.incoming = incoming
        self.qemu_status = None
        self.completed = None
        self._job_running = False
        self._set_status(ConnectionStatus(ConnState.CONNECTED))

    def detach(self, error: MonitorError) -> None:
        """Gone (shut off, migrated away, undefined) or its connection lost: nothing live."""
        self.dom = None
        state = ConnState.LOST if isinstance(error, DomainGone) else ConnState.RETRYING
        self._set_status(ConnectionStatus(state, 1, error))

    def lifecycle(self, event: int, detail: int) -> None:
        if event == STARTED:
            self.incoming = detail == STARTED_MIGRATED
            self.migrated_away = False
        elif event == STOPPED:
            self.migrated_away = detail == STOPPED_MIGRATED
        elif event == RESUMED:
            self.incoming = False
            if self.qemu_status == "pre-switchover" and not self.host.qemu_events:
                self.qemu_status = None  # libvirt gave up the switchover: the polls tell the rest
        elif event == SUSPENDED and detail == SUSPENDED_MIGRATED and not self.host.qemu_events \
                and (self._job_running or self._passes) and not self.incoming:
            # Read-only, libvirt passes on none of QEMU's events: its SUSPENDED_MIGRATED is the
            # switchover's STOP (received now: the pause began before), begun after the last
            # dom.state() that found the guest running was asked.
            self._tell_status("pre-switchover", began_after=self._running_at)

    def iteration(self, number: int) -> None:
        """libvirt's MIGRATION_ITERATION: a pass began. Read-only, the pass after the pause
        is the first sign that libvirt continued the migration (QEMU's MIGRATION device)."""
        if self.host.qemu_events or self.incoming:
            return
        if self.qemu_status == "pre-switchover":
            self._tell_status("device")  # received now: the pause ended before
        else:
            self._passes = True

    def _tell_status(self, status: str, began_after: float | None = None) -> None:
        """QEMU's status inferred from libvirt's events, told at once as a ``query-migrate``."""
        self.qemu_status = status
        reply = jobstats.migrate_reply(self._stats or {"type": jobstats.JOB_UNBOUNDED}, status)
        self._tell("query-migrate", reply, began_after)

    def _tell(self, command: str, reply: Any, began_after: float | None = None) -> None:
        for cb in list(self._reply_listeners):
            try:
                cb(command, reply) if began_after is None else cb(command, reply, began_after=began_after)
            except Exception:
                log.exception("%s: reply listener", self.name)

    def qemu_event(self, name: str, seconds: int, micros: int, details: str | None) -> None:
        """One QEMU event through libvirt's passthrough, told as the QMP event it is."""
        try:
            data = json.loads(details) if details else {}
        except ValueError:
            data = {}
        data = jobstats.job_event_data(name, data, self._job_names) if isinstance(data, dict) else {}
        event = QmpEvent.from_qmp({"event": name, "data": data,
                                   "timestamp": {"seconds": seconds, "microseconds": micros}})
        if name == "MIGRATION":
            status = event.data.get("status")
            self.qemu_status = status if isinstance(status, str) else self.qemu_status
            if status in FINISHED_STATUSES and not (self.completed and jobstats.job_type(self.completed)):
                # A job ended that the polls may never have seen run (a quick one on the
                # destination): libvirt's kept figures are to be read again.
                self.completed = None
        self._event_listeners(event)

    def job_completed(self, stats: Mapping[str, Any]) -> None:
        """libvirt's final statistics of the job (JOB_COMPLETED): the figures
        ``virsh domjobinfo --completed`` shows. Told as the last ``query-migrate``."""
        self.completed = {**stats, "type": jobstats.JOB_COMPLETED}
        self._tell("query-migrate", jobstats.migrate_reply(self.completed))

    # ------------------------------------------------------------------ Monitor

    async def connect(self) -> None:
        """The host connects; a domain has nothing of its own to open."""

    async def run(self) -> None:
        """The session starts: it hears the status the host gave (it was found running)."""
        self._state_listeners(self.status)
        await self._stopped.wait()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopped.set()
        self.dom = None
        self.host.forget(self)
        self._set_status(ConnectionStatus(ConnState.CLOSED))

    def execute_soon(self, cmd: str, done: Callable[[Any], object]) -> None:
        """libvirt's calls run in its thread: a session's poll loop asks them (``execute``)."""
        raise NotSupported(self.name, f"{self.name}: a libvirt domain answers through execute()")

    async def execute(self, cmd: str, args: Mapping[str, Any] | None = None, *,
                      timeout: float | None = None) -> Any:
        if self.read_only and not is_read_only(cmd):
            raise ReadOnlyRefused(self.name, f"--read-only: not sending {cmd!r} to {self.name}")
        if cmd not in self.commands:
            raise NotSupported(self.name, f"{self.name}: a libvirt domain: migtui does not send {cmd}"
                                          " (libvirt owns its monitor)")
        dom = self.dom
        if dom is None:
            error = self.status.error
            raise error if error is not None else MonitorError(self.name, f"{self.name}: not connected")
        self._command_listeners(cmd, dict(args) if args else None)
        call = self.host.call
        lv = self.host.libvirt
        if cmd == "query-migrate":
            return await self._query_migrate(dom)
        if cmd == "query-status":
            asked = time.time()
            state, reason = await call(cmd, dom.state)
            if state in (jobstats.RUNNING, jobstats.BLOCKED):
                self._running_at = asked
            return jobstats.status_reply(state, reason, incoming=self.incoming,
                                         migrated=self.qemu_status == "completed")
        if cmd == "query-block-jobs":
            jobs = []
            for disk in await self._disk_targets(dom):
                info = await call(cmd, dom.blockJobInfo, disk, lv.VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES)
                job = jobstats.block_job(disk, info)
                if job is not None:
                    jobs.append(job)
            return jobs
        if cmd == "query-migrate-parameters":
            return jobstats.parameters_reply(await call(cmd, dom.migrateGetMaxDowntime, 0),
                                             await call(cmd, dom.migrateGetMaxSpeed, 0))
        if cmd == "query-dirty-rate":
            records = await call(cmd, self.host.conn_call, "domainListGetStats", [dom],
                                 lv.VIR_DOMAIN_STATS_DIRTYRATE)
            return jobstats.dirty_rate_reply(records[0][1] if records else {})
        return await self._control(dom, cmd, args or {})

    async def _control(self, dom: Any, cmd: str, args: Mapping[str, Any]) -> Any:
        call = self.host.call
        if cmd == "migrate_cancel":
            self._aborted = True
            await call(cmd, dom.abortJob)
        elif cmd == "migrate-start-postcopy":
            await call(cmd, dom.migrateStartPostCopy, 0)
        elif cmd == "calc-dirty-rate":
            await call(cmd, dom.startDirtyRateCalc, int(args.get("calc-time", 1)), 0)
        else:  # migrate-set-parameters
            unknown = sorted(set(args) - {"downtime-limit", "max-bandwidth"})
            if unknown:
                raise NotSupported(self.name, f"{self.name}: libvirt sets no {', '.join(unknown)}"
                                              " (only the downtime limit and the bandwidth)")
            if "downtime-limit" in args:
                await call(cmd, dom.migrateSetMaxDowntime, int(args["downtime-limit"]), 0)
            if "max-bandwidth" in args:
                mib = math.ceil(int(args["max-bandwidth"]) / jobstats.MiB)
                await call(cmd, dom.migrateSetMaxSpeed, mib or jobstats.UNLIMITED_MIB_S, 0)
        return {}

    async def _query_migrate(self, dom: Any) -> dict[str, Any]:
        async with self._query_lock:
            return await self._query_migrate_alone(dom)

    async def _query_migrate_alone(self, dom: Any) -> dict[str, Any]:
        stats = await self.host.call("query-migrate", dom.jobStats, 0)
        if jobstats.running(stats):
            self._stats = stats
            if not self._job_running:  # a new job: the last one's words and figures are history
                self._job_running, self.completed, self._aborted = True, None, False
                if self.qemu_status in FINISHED_STATUSES:
                    self.qemu_status = None
            elif self.completed is not None:  # JOB_COMPLETED came before libvirt's job let go
                return jobstats.migrate_reply(self.completed)
            return jobstats.migrate_reply(stats, self.qemu_status)
        ended = self._job_running
        if ended:
            self._job_running, self._passes = False, False
            if self.completed is not None and self.completed.get("type") == jobstats.JOB_COMPLETED:
                return jobstats.migrate_reply(self.completed)  # JOB_COMPLETED's, already told
            self.completed = None
        if self.completed is None:
            # Kept (KEEP_COMPLETED): reading them must not take them from `virsh domjobinfo --completed`.
            lv = self.host.libvirt
            flags = lv.VIR_DOMAIN_JOB_STATS_COMPLETED | lv.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED
            self.completed = await self.host.call("query-migrate", dom.jobStats, flags)
            if not jobstats.job_type(self.completed) and (ended or self.qemu_status in FINISHED_STATUSES):
                # libvirt kept no statistics (of a job aborted while it mirrored the disks,
                # before QEMU's migration began; at times of a postcopy's destination): the
                # job ended all the same, as QEMU said.
                self.completed = jobstats.ended_job(self.qemu_status, aborted=self._aborted)
        return jobstats.migrate_reply(self.completed)

    async def _disk_targets(self, dom: Any) -> list[str]:
        if self._disks is None:
            import xml.etree.ElementTree as ET

            xml = await self.host.call("query-block-jobs", dom.XMLDesc, 0)
            disks = [(target.get("dev", ""), alias.get("name", "") if alias is not None else "")
                     for disk in ET.fromstring(xml).findall("devices/disk")
                     if (target := disk.find("target")) is not None and target.get("dev")
                     for alias in [disk.find("alias")]]
            self._disks = [target for target, _alias in disks]
            self._job_names = jobstats.job_names(disks)
        return self._disks

    def _learn_disks(self, dom: Any) -> None:
        """The disks and their job names, read as the domain is attached: QEMU's first block
        job events (a mirror starts a second after the migration) find their disk's name."""
        async def learn() -> None:
            try:
                await self._disk_targets(dom)
            except MonitorError as err:  # the polls read them again
                log.info("%s: disks not read: %s", self.name, err)

        self._learning = asyncio.get_running_loop().create_task(learn(), name=f"disks-{self.name}")
