"""Storage migration set up as libvirt does it, and undone as libvirt does.

On the destination: an NBD server (``nbd-server-start``) and a writable export of each
target node (``block-export-add``). On the source: an NBD client node per disk
(``blockdev-add`` driver nbd) and a ``blockdev-mirror`` (sync full) into it. The migration
starts once every mirror is READY; a mirror that fails before then fails the start, and
one that fails during the migration stops it (``launch.py`` watches). The pause before
switchover finishes each mirror gracefully (``workflow/switchover.py``); after the
migration the source's NBD nodes go (``blockdev-del``) and the destination's server stops.
Undoing a start that failed midway force-cancels the mirrors, deletes the nodes, the
exports and the server: nothing migtui set up stays. On QEMU 8.2+ a mirror that cannot
keep up can be switched to write-blocking (``block-job-change``), as Proxmox does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import CommandFailed, MigtuiError, MonitorError
from ..model.blockjobs import parse_block_jobs
from ..model.events import QmpEvent
from .session import MonitorSession
from .start import Mirror, Plan

MIRROR = "mirror"
WRITE_BLOCKING = "write-blocking"
CHANGE = "block-job-change"  # QEMU 8.2+
ENDED = ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED")
GONE_S = 60.0  # a force-cancelled mirror is gone in ms; a hung QEMU must not hold an undo for ever


async def run(session: MonitorSession, command: str, args: Mapping[str, Any] | None, what: str) -> Any:
    """One command; QEMU's refusal as one line naming what it was for."""
    name = session.name
    try:
        return await session.execute(command, args)
    except CommandFailed as err:
        raise MonitorError(name, f"{name}: QEMU refused {command} ({what}): {err.desc}") from None
    except MigtuiError as err:
        raise MonitorError(name, f"{name}: {command} ({what}) not done: {err}") from None


def export_id(mirror: Mirror) -> str:
    return f"migtui-{mirror.export}"


class Storage:
    """The NBD server, exports, nodes and mirrors of one start; remembers what it set up."""

    def __init__(self, source: MonitorSession, destination: MonitorSession, plan: Plan) -> None:
        self.source = source
        self.destination = destination
        self.plan = plan
        self.server = False
        self.exports: list[Mirror] = []
        self.nodes: list[Mirror] = []
        self.mirrors: list[Mirror] = []
        self.ready: set[str] = set()  # mirror jobs READY
        self.failed: dict[str, str] = {}  # mirror job -> why it ended
        self._changed = asyncio.Event()
        wake = lambda _s, _k: self._changed.set()  # noqa: E731  (a lost monitor ends the wait too)
        self._remove = [source.add_event_listener(self._on_event), source.add_change_listener(wake),
                        destination.add_change_listener(wake)]

    def _on_event(self, ev: QmpEvent) -> None:
        job = str(ev.data.get("device") or ev.data.get("id") or "")
        if job not in {m.job for m in self.plan.mirrors}:
            return
        if ev.name == "BLOCK_JOB_READY":
            self.ready.add(job)
        elif ev.name == "BLOCK_JOB_ERROR":
            self.failed.setdefault(job, f"I/O error on {ev.data.get('operation', 'the disk')}")
        elif ev.name in ENDED:
            error = ev.data.get("error")
            self.failed.setdefault(job, f"failed: {error}" if error else
                                   "cancelled" if ev.name == "BLOCK_JOB_CANCELLED" else "ended")
        self._changed.set()

    def close(self) -> None:
        for remove in self._remove:
            remove()
        self._remove = []

    @property
    def summary(self) -> str:
        return f"{len(self.ready)} of {len(self.plan.mirrors)} mirrors READY"

    # ------------------------------------------------------------------ set up

    async def set_up(self) -> None:
        """Server and exports on the destination, nodes and mirrors on the source."""
        plan, src, dst = self.plan, self.source, self.destination
        await run(dst, "nbd-server-start", {"addr": plan.nbd.legacy()}, f"NBD server on {plan.nbd.uri}")
        self.server = True
        for mirror in plan.mirrors:
            await run(dst, "block-export-add", {"type": "nbd", "id": export_id(mirror), "node-name": mirror.target,
                                                "name": mirror.export, "writable": True},
                      f"export {mirror.target} writable")
            self.exports.append(mirror)
        for mirror in plan.mirrors:
            await run(src, "blockdev-add", {"driver": "nbd", "node-name": mirror.client_node,
                                            "export": mirror.export, "server": plan.nbd.qapi()},
                      f"NBD node {mirror.client_node} to {dst.name}")
            self.nodes.append(mirror)
        for mirror in plan.mirrors:
            await run(src, "blockdev-mirror", {"job-id": mirror.job, "device": mirror.node,
                                               "target": mirror.client_node, "sync": "full"},
                      f"mirror {mirror.node} to {dst.name}")
            self.mirrors.append(mirror)

    async def wait_ready(self, on_progress: Callable[[], None]) -> None:
        """Until every mirror is READY; MonitorError when one fails first, or a QEMU goes."""
        jobs = {m.job for m in self.mirrors}
        reply = await run(self.source, "query-block-jobs", None, "the mirrors")
        self.ready |= {j.device for j in parse_block_jobs(reply) if j.device in jobs and j.ready}
        while True:
            self._check()
            if jobs <= self.ready:
                return
            on_progress()
            self._changed.clear()
            await self._changed.wait()

    def watch(self, on_failure: Callable[[str], None]) -> None:
        """From here on, a mirror that fails calls ``on_failure`` with one line (once)."""
        told = False

        def check(_ev: QmpEvent) -> None:
            nonlocal told
            if not told and self.failure():
                told = True
                on_failure(self.failure())

        self._remove.append(self.source.add_event_listener(check))

    def failure(self) -> str:
        """One line if a mirror failed (a graceful end in the pause is not a failure)."""
        state = self.source.state
        for job, why in self.failed.items():
            if why == "ended" or (why == "cancelled" and state.migration_status in ("pre-switchover", "device",
                                                                                   "completed")):
                continue
            return f"{self.source.name}: mirror {job} {why}"
        return ""

    def _check(self) -> None:
        failed = self.failure() or next((f"{self.source.name}: mirror {job} {why}" for job, why in self.failed.items()),
                                        "")
        if failed:
            raise MonitorError(self.source.name, failed)
        for session in (self.source, self.destination):
            if not session.connected:
                raise MonitorError(session.name, f"{session.name}: monitor lost while the mirrors copy")

    # ------------------------------------------------------------------ after, or instead

    async def finish(self) -> list[str]:
        """After the migration: the source's NBD nodes, then the destination's server."""
        errors = await self._delete_nodes()
        errors += await self._stop_server(exports=False)
        return errors

    async def undo(self) -> list[str]:
        """Everything set up, in reverse: mirrors force-cancelled, nodes, exports, server."""
        errors = await self._cancel_mirrors()
        errors += await self._delete_nodes()
        errors += await self._stop_server(exports=True)
        return errors

    async def _cancel_mirrors(self) -> list[str]:
        if not self.mirrors:
            return []
        errors = []
        present = {j.device for j in parse_block_jobs(await self._quiet(self.source, "query-block-jobs") or [])}
        for mirror in self.mirrors:
            if mirror.job in present:
                try:
                    await run(self.source, "block-job-cancel", {"device": mirror.job, "force": True}, "undo")
                except MonitorError as err:
                    errors.append(str(err))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GONE_S):
                while {m.job for m in self.mirrors} & present:
                    reply = await self._quiet(self.source, "query-block-jobs")
                    if reply is None:
                        break
                    present = {j.device for j in parse_block_jobs(reply)}
                    if {m.job for m in self.mirrors} & present:
                        self._changed.clear()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(0.2):  # an end's event wakes it earlier
                                await self._changed.wait()
        self.mirrors = []
        return errors

    async def _delete_nodes(self) -> list[str]:
        errors = []
        for mirror in reversed(self.nodes):
            error = await self._gone_ok(self.source, "blockdev-del", {"node-name": mirror.client_node})
            if error:
                errors.append(error)
        self.nodes = []
        return errors

    async def _stop_server(self, *, exports: bool) -> list[str]:
        errors = []
        if exports:
            for mirror in reversed(self.exports):
                error = await self._gone_ok(self.destination, "block-export-del", {"id": export_id(mirror)})
                if error:
                    errors.append(error)
        self.exports = []
        if self.server:
            error = await self._gone_ok(self.destination, "nbd-server-stop", None)
            if error:
                errors.append(error)
            self.server = False
        return errors

    @staticmethod
    async def _quiet(session: MonitorSession, command: str) -> Any:
        try:
            return await session.execute(command)
        except MigtuiError:
            return None

    @staticmethod
    async def _gone_ok(session: MonitorSession, command: str, args: Mapping[str, Any] | None) -> str:
        """Run an undo step; "" when done or when there is nothing left to undo (its QEMU is
        gone: a destination exits after a failed incoming migration)."""
        if not session.connected:
            return ""
        try:
            await session.execute(command, args)
        except CommandFailed as err:
            if any(word in err.desc.lower() for word in ("not found", "find", "not running")):
                return ""
            return f"{session.name}: {command}: {err.desc}"
        except MigtuiError as err:
            return "" if not session.connected else f"{session.name}: {command}: {err}"
        return ""


async def write_blocking(session: MonitorSession, job: str) -> None:
    """Switch a mirror to write-blocking: each guest write waits until the destination has it,
    so the mirror converges whatever the guest writes (QEMU 8.2+)."""
    await run(session, CHANGE, {"id": job, "type": MIRROR, "copy-mode": WRITE_BLOCKING}, f"mirror {job}")
