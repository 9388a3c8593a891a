"""Abort a migration that is not paused before switchover: ``migrate_cancel``, then the storage
mirrors, the way libvirt aborts one.

libvirt (``qemuMigrationSrcNBDCopyCancel`` with ``abortMigration``) cancels the migration,
then force-cancels every disk mirror (``block-job-cancel force=true``: the destination's
copy is discarded, so its consistency does not matter) and waits until each is gone. The
source guest keeps running throughout (QEMU never stopped it before the switchover). Then the
NBD client node each mirror wrote to is deleted (``blockdev-del``), as libvirt deletes its
own: the mirror was its only user, and a node left behind keeps a connection to a
destination that is gone (its target is read from ``x-debug-query-block-graph``, the one
query that names it; a QEMU without it keeps the node, and the result says so).

When QEMU lets a migration be cancelled: during ``setup``, ``active`` and ``wait-unplug``;
a pause before switchover is the switchover's own abort (``workflow/abort.py``). Once
postcopy has started the guest runs on the destination: QEMU 10.0 refuses
``migrate_cancel`` then ("Postcopy migration in progress, cannot cancel."); before 10.0 it
accepts it in ``postcopy-paused``, where the destination's changes since postcopy began
are lost. Each :class:`MigrationCancel` runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from ..errors import MigtuiError
from ..model.blockjobs import mirror_targets, parse_block_jobs
from ..model.events import QmpEvent
from ..model.migration import FINISHED_STATUSES
from ..model.runstate import RunState
from ..model.switchover import error_line
from .checklist import MIRROR
from .session import MonitorSession

# Migration statuses migrate_cancel stops before the destination takes over.
CANCELLABLE = frozenset({"setup", "active", "wait-unplug"})
POSTCOPY = frozenset({"postcopy-active", "postcopy-paused", "postcopy-recover-setup", "postcopy-recover"})
# Only here may a QEMU before 10.0 cancel once postcopy began (the guest's newest state is lost).
POSTCOPY_CANCELLABLE = "postcopy-paused"
WAIT_S = 60.0  # the cancel and the mirrors' ends come within ms; a hung QEMU must not hold it for ever


@dataclass(frozen=True)
class CancelResult:
    ok: bool
    message: str  # one line, starting with the monitor's name
    source_running: bool | None = None
    mirrors: tuple[str, ...] = ()  # the mirrors force-cancelled
    nodes: tuple[str, ...] = ()  # the NBD nodes they wrote to, deleted


class MigrationCancel:
    """``migrate_cancel`` a running migration, then force-cancel its mirrors; confirm the source runs."""

    def __init__(self, session: MonitorSession) -> None:
        self.session = session
        self.name = session.name
        self.generation = session.generation  # bound to this connection: nothing goes to a later one
        self.ended: set[str] = set()  # block jobs seen ending since the cancel began
        self.nodes: list[str] = []  # NBD nodes deleted after their mirrors

    async def run(self) -> CancelResult:
        session = self.session
        status = session.state.migration_status
        if status not in CANCELLABLE | {POSTCOPY_CANCELLABLE}:
            return CancelResult(False, f"{self.name}: nothing to abort (migration status {status})")
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[str] = loop.create_future()
        job_ended = asyncio.Event()

        def on_event(ev: QmpEvent) -> None:
            if ev.name in ("BLOCK_JOB_CANCELLED", "BLOCK_JOB_COMPLETED"):
                self.ended.add(str(ev.data.get("device", "")))
                job_ended.set()

        def on_change(s: MonitorSession, _kinds: frozenset[str]) -> None:
            if s.state.migration_status in FINISHED_STATUSES and not finished.done():
                finished.set_result(s.state.migration_status)

        removers = [session.add_event_listener(on_event), session.add_change_listener(on_change)]
        try:
            await self._execute("migrate_cancel")
            mirrors, errors = await self._cancel_mirrors(job_ended)
            try:
                async with asyncio.timeout(WAIT_S):
                    final = await finished
            except TimeoutError:
                final = session.state.migration_status
        except MigtuiError as err:
            return CancelResult(False, f"{self.name}: {error_line(err).removeprefix(f'{self.name}: ')}")
        finally:
            for remove in removers:
                remove()
            if not finished.done():
                finished.cancel()
        run = RunState()
        with contextlib.suppress(MigtuiError):
            reply = await self._execute("query-status")
            session.feed("query-status", reply)
            run = RunState.from_qmp(reply)
        return self._result(final, run, mirrors, errors)

    def _result(self, final: str, run: RunState, mirrors: list[str], errors: list[str]) -> CancelResult:
        name = self.name
        done = f"; {', '.join(mirrors)} force-cancelled" if mirrors else ""
        done += f"; NBD node {', '.join(self.nodes)} deleted" if self.nodes else ""
        failed = f"; mirrors: {'; '.join(errors)}" if errors else ""
        if final == "completed":
            return CancelResult(False, f"{name}: too late: the migration completed before migrate_cancel took"
                                " effect (the destination runs the guest)", run.running, tuple(mirrors))
        if final not in FINISHED_STATUSES:
            return CancelResult(False, f"{name}: migrate_cancel sent, but the migration is still {final}"
                                f" after {WAIT_S:g} s{done}{failed}", run.running, tuple(mirrors), tuple(self.nodes))
        guest = "the source guest runs on" if run.running else f"the source guest is {run.status}"
        return CancelResult(not errors and run.running, f"{name}: migration {final}{done}{failed}; {guest}",
                            run.running, tuple(mirrors), tuple(self.nodes))

    async def _execute(self, command: str, args: dict[str, object] | None = None) -> object:
        return await self.session.execute(command, args, generation=self.generation)

    async def _cancel_mirrors(self, job_ended: asyncio.Event) -> tuple[list[str], list[str]]:
        """Force-cancel every mirror job and wait until each is gone; (cancelled, errors)."""
        if not self.session.supports("block-job-cancel"):
            return [], []  # a libvirt domain: its abortJob cancels the mirrors with the migration
        reply = await self._execute("query-block-jobs")
        self.session.feed("query-block-jobs", reply)
        mirrors = [job.device for job in parse_block_jobs(reply) if job.type == MIRROR]
        if not mirrors:
            return [], []
        targets = await self._targets(mirrors)
        replies = await asyncio.gather(
            *(self._execute("block-job-cancel", {"device": job, "force": True}) for job in mirrors),
            return_exceptions=True)
        errors = [f"{job}: {error_line(r)}" for job, r in zip(mirrors, replies, strict=True)
                  if isinstance(r, BaseException)]
        waiting = {job for job, r in zip(mirrors, replies, strict=True) if not isinstance(r, BaseException)}
        try:
            async with asyncio.timeout(WAIT_S):
                while waiting - self.ended:
                    job_ended.clear()
                    still = {job.device for job in parse_block_jobs(await self._execute("query-block-jobs"))}
                    waiting &= still  # a job already gone from the list has ended
                    if not waiting - self.ended:
                        break
                    await job_ended.wait()
        except TimeoutError:
            errors.append(f"{', '.join(sorted(waiting - self.ended))}: still listed after {WAIT_S:g} s")
        cancelled = [job for job in mirrors if not any(e.startswith(f"{job}:") for e in errors)]
        for job in cancelled:
            node = targets.get(job)
            if node is None:
                continue
            try:
                await self._execute("blockdev-del", {"node-name": node})
                self.nodes.append(node)
            except MigtuiError as err:
                errors.append(f"NBD node {node}: {error_line(err)}")
        return cancelled, errors

    async def _targets(self, mirrors: list[str]) -> dict[str, str]:
        """The NBD node each mirror writes to (other targets -- a local file -- are not ours to delete)."""
        try:
            targets = mirror_targets(await self._execute("x-debug-query-block-graph"), mirrors)
            nodes = await self._execute("query-named-block-nodes", {"flat": True})
        except MigtuiError:
            return {}
        nbd = {str(n.get("node-name")) for n in nodes if isinstance(n, dict) and n.get("drv") == "nbd"} \
            if isinstance(nodes, list) else set()
        return {job: node for job, node in targets.items() if node in nbd}
