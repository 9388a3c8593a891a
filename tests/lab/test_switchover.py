"""Pre-switchover: checklist (pure), arm, resume, abort, mirror failure, guards and
--auto-resume, against a real QEMU pair with a mirrored data disk (the lab)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import until
from qemu.qmp import EventListener
from qemu_util import disks_differ, qemu_io_reads, requires_qemu_img

from migtui.address import parse_address
from migtui.errors import MonitorError
from migtui.lab.lab import MIRROR_JOB, Lab
from migtui.model.blockjobs import parse_block_jobs
from migtui.model.coerce import as_mapping
from migtui.model.events import QmpEvent
from migtui.model.migration import MigrationInfo
from migtui.model.runstate import RunState
from migtui.model.switchover import Outcome, StepState
from migtui.model.vmstate import VmState
from migtui.transport import Monitor
from migtui.workflow.arm import arm, arm_session
from migtui.workflow.autoresume import AutoResume
from migtui.workflow.checklist import IN_FLIGHT_BYTES, checklist, mirror_check
from migtui.workflow.paused import paused_sources
from migtui.workflow.session import MonitorSession
from migtui.workflow.switchover import Switchovers
from migtui.workflow.waiting import wait_until

MiB = 1 << 20
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qmp" / "switchover"
PATTERN = 0x5A
PATTERN_AT, PATTERN_LEN = 1 * MiB, 256 * 1024  # written before the mirror starts
LATE_AT, LATE_LEN = 5 * MiB, 64 * 1024  # written while the mirror runs


# ---------------------------------------------------------------------- pure: checklist


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())["return"]


def paused_source(jobs: str = "src-query-block-jobs-pre-switchover") -> VmState:
    state = VmState()
    state.apply_migration(MigrationInfo.from_qmp(fixture("src-query-migrate-pre-switchover")), 100.0)
    state.apply_block_jobs(parse_block_jobs(fixture(jobs)), 100.0)
    return state


def incoming_destination() -> VmState:
    state = VmState()
    state.apply_run_state(RunState.from_qmp(fixture("dst-query-status-incoming-active")), 100.0)
    return state


def test_checklist_passes_on_a_real_pause() -> None:
    checks = checklist(paused_source(), incoming_destination(), True)
    assert checks.passed, checks.reason()
    names = [c.name for c in checks]
    assert names == ["source", "mirror mirror-data0", "destination", "RAM"]
    assert checks.reason() == ""


def test_checklist_fails_on_a_mirror_still_copying() -> None:
    checks = checklist(paused_source("src-query-block-jobs-mirror-running"), None, None)
    assert not checks.passed
    assert "mirror mirror-data0" in checks.reason() and "not ready" in checks.reason()
    dst = next(c for c in checks if c.name == "destination")
    assert dst.ok and dst.info  # not monitored: informational only


@pytest.mark.parametrize(("behind", "passes"), [(100 * 1024, True), (IN_FLIGHT_BYTES, True),
                                                 (IN_FLIGHT_BYTES + 1, False)])
def test_a_ready_mirror_may_be_behind_by_what_it_has_in_flight(behind: int, passes: bool) -> None:
    """The recorded pause, its mirror's offset moved back: a pause begun while the guest still
    wrote (a loaded fresh-clone run: 16.0 of 16.1 MiB). The guest is stopped, the graceful
    cancel copies what is in flight; more than QEMU's mirror buffer is not 'in flight'."""
    job = parse_block_jobs(fixture("src-query-block-jobs-pre-switchover"))[0]
    assert job.len is not None and job.in_sync
    lagging = dataclasses.replace(job, len=job.len + behind)
    check = mirror_check(lagging)
    assert check.ok is passes, check.detail
    assert ("still to copy" in check.detail) if passes else ("not in sync" in check.detail)
    assert mirror_check(lagging, require_sync=False).ok  # an operator's confirmed resume


def test_checklist_fails_on_a_mirror_error_and_a_lost_destination() -> None:
    src = paused_source()
    src.apply_event(QmpEvent("BLOCK_JOB_COMPLETED", {"device": "mirror-data0", "type": "mirror",
                                                      "error": "Input/output error"}, 101.0), 101.0)
    checks = checklist(src, incoming_destination(), False)
    failed = {c.name for c in checks.failures}
    assert failed == {"mirror mirror-data0", "destination"}
    assert "Input/output error" in checks.reason()


def test_checklist_fails_when_not_paused_or_destination_running() -> None:
    src = VmState()
    dst = VmState()
    dst.apply_run_state(RunState("running", True), 1.0)
    checks = checklist(src, dst, True)
    assert {c.name for c in checks.failures} == {"source", "destination"}


def test_paused_sources() -> None:
    paused = MonitorSession.offline("src")
    paused.apply_event(QmpEvent("STOP", {}, 1000.0), now=1000.0)
    paused.apply_event(QmpEvent("MIGRATION", {"status": "pre-switchover"}, 1000.001), now=1000.0)
    idle = MonitorSession.offline("dst")
    assert paused_sources([paused, idle]) == [paused]


# ---------------------------------------------------------------------- real QEMU helpers


async def wait_state(session: MonitorSession, pred: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until ``pred()`` holds, re-checked on every change the session reports."""
    try:
        await wait_until(session, pred, timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


class Sent:
    """Every command a Monitor actually wrote to its socket."""

    def __init__(self, monitor: Monitor) -> None:
        self.commands: list[tuple[str, dict[str, Any] | None]] = []
        monitor.add_command_listener(lambda name, args: self.commands.append((name, args)))

    def names(self) -> list[str]:
        return [name for name, _ in self.commands]

    def mutating(self) -> list[tuple[str, dict[str, Any] | None]]:
        return [(n, a) for n, a in self.commands if not n.startswith("query-") and n != "qmp_capabilities"]


async def open_session(path: Path, name: str) -> tuple[MonitorSession, Sent]:
    monitor = Monitor(parse_address(f"{name}={path}"))
    sent = Sent(monitor)
    session = MonitorSession(monitor, interval=0.5)
    session.start()
    await wait_state(session, lambda: session.connected and session.polls > 0, f"{name} connected")
    return session, sent


@pytest.fixture
async def sessions(storage_lab: Lab) -> AsyncIterator[tuple[MonitorSession, Sent, MonitorSession]]:
    src, sent = await open_session(storage_lab.src.qmp_path, "src")
    dst, _ = await open_session(storage_lab.dst.qmp_path, "dst")
    try:
        yield src, sent, dst
    finally:
        await asyncio.gather(src.stop(), dst.stop())


async def migrate_to_pause(lab: Lab, src: MonitorSession, *, arm_it: bool = False) -> None:
    """Pattern on the source disk, mirror in sync, migrate, wait for the pause event."""
    await lab.write_pattern(lab.src, PATTERN_AT, PATTERN_LEN, PATTERN)
    await lab.prepare(storage=True, pause=not arm_it, max_bandwidth=1 << 30, downtime_limit=500)
    await lab.write_pattern(lab.src, LATE_AT, LATE_LEN, PATTERN)
    if arm_it:
        result = await arm_session(src)
        assert result.enabled == ("pause-before-switchover",) and result.already == ("events",)
    await lab.migrate()
    await wait_state(src, lambda: src.state.in_pre_switchover, "pre-switchover")


# ---------------------------------------------------------------------- real QEMU tests


@pytest.mark.qemu
@requires_qemu_img
async def test_resume_path_completes_and_disks_match(storage_lab: Lab, sessions) -> None:
    src, sent, dst = sessions
    await migrate_to_pause(storage_lab, src, arm_it=True)
    controller = Switchovers().for_pause(src, dst)
    seen: list[list[str]] = []
    controller.add_progress_listener(lambda c: seen.append([s.state.value for s in c.steps]))

    result = await controller.resume()

    assert result.outcome is Outcome.COMPLETED, result.reason
    assert result.downtime_ms is not None and result.pause_ms is not None
    assert result.destination_running is True
    assert src.state.migration_status == "completed"
    assert [s.key for s in controller.steps] == ["check", f"mirror:{MIRROR_JOB}", "continue", "complete",
                                                  "destination"]
    assert all(s.state is StepState.DONE and s.started and s.finished for s in controller.steps)
    assert ["running", "pending", "pending", "pending", "pending"] not in seen[:1]  # progress was reported
    assert len(seen) >= 8
    assert sent.mutating() == [
        ("migrate-set-capabilities", {"capabilities": [{"capability": "pause-before-switchover", "state": True}]}),
        ("block-job-cancel", {"device": MIRROR_JOB, "force": False}),
        ("migrate-continue", {"state": "pre-switchover"}),
    ]
    await asyncio.gather(src.stop(), dst.stop())
    await storage_lab.stop()
    assert not disks_differ(storage_lab), disks_differ(storage_lab)
    assert qemu_io_reads(storage_lab.dst.disk_path, PATTERN, LATE_AT, LATE_LEN)


@pytest.mark.qemu
@requires_qemu_img
async def test_abort_path_source_runs_again(storage_lab: Lab, sessions) -> None:
    src, sent, dst = sessions
    await migrate_to_pause(storage_lab, src)
    result = await Switchovers().for_pause(src, dst).abort()

    assert result.outcome is Outcome.ABORTED and result.source_running is True, result.reason
    assert sent.mutating() == [("migrate_cancel", None),
                               ("block-job-cancel", {"device": MIRROR_JOB, "force": True})]
    before = storage_lab.serial_size(storage_lab.src)
    await until(lambda: storage_lab.serial_size(storage_lab.src) > before, 30, "source serial output to grow")
    # The destination never takes over: QEMU ends an incoming migration that fails.
    process = storage_lab.dst.process
    assert process is not None
    await until(lambda: not process.running(), 30, "destination QEMU to give up")
    assert dst.state.running is not True
    await asyncio.gather(src.stop(), dst.stop())
    await storage_lab.stop()
    for at, length in ((PATTERN_AT, PATTERN_LEN), (LATE_AT, LATE_LEN)):
        assert qemu_io_reads(storage_lab.src.disk_path, PATTERN, at, length)


@pytest.mark.qemu
async def test_mirror_failure_stops_before_continue(storage_lab: Lab, sessions) -> None:
    src, sent, dst = sessions
    await migrate_to_pause(storage_lab, src)
    ctl = await storage_lab.control(storage_lab.dst)
    await ctl.execute("nbd-server-stop")  # the destination's disk export goes away

    controller = Switchovers().for_pause(src, dst)
    result = await controller.resume()

    assert result.outcome is Outcome.STOPPED and result.abort_offered, result.reason
    assert MIRROR_JOB in result.reason and "migrate-continue not sent" in result.reason
    assert "\n" not in result.reason
    assert "migrate-continue" not in sent.names()
    assert src.state.in_pre_switchover  # the guest stays stopped until the operator decides
    # Where the failure shows depends on when the mirror sees the export gone: before the
    # resume's fresh query-block-jobs (its check fails, naming the mirror, as in a loaded CI
    # run) or while the mirror is being finished (its own step fails).
    failed = [s for s in controller.steps if s.state is StepState.FAILED]
    assert failed, controller.steps
    assert failed[0].key == f"mirror:{MIRROR_JOB}" or (
        failed[0].key == "check" and MIRROR_JOB in failed[0].detail), controller.steps
    assert controller.can_abort

    aborted = await controller.abort()
    assert aborted.outcome is Outcome.ABORTED and aborted.source_running, aborted.reason
    assert "migrate-continue" not in sent.names()


@pytest.mark.qemu
async def test_resume_runs_once(storage_lab: Lab, sessions) -> None:
    src, sent, dst = sessions
    await migrate_to_pause(storage_lab, src)
    controller = Switchovers().for_pause(src, dst)
    assert controller.start_resume() is controller.start_resume()
    first, second = await asyncio.gather(controller.resume(), controller.resume())
    third = await controller.resume()
    assert first is second is third and first.outcome is Outcome.COMPLETED, first.reason
    assert sent.names().count("migrate-continue") == 1
    assert sent.names().count("block-job-cancel") == 1
    again = await controller.abort()  # too late: nothing sent
    assert again.outcome is Outcome.ERROR and "too late to abort" in again.reason
    assert sent.mutating()[-1][0] == "migrate-continue"


@pytest.mark.qemu
@pytest.mark.parametrize(("command", "args", "said"), [
    ("migrate-continue", {"state": "pre-switchover"}, "another client continued the migration"),
    ("migrate_cancel", None, "another client cancelled the migration"),
])
async def test_another_client_ends_the_pause(storage_lab: Lab, sessions, command: str, args: Any,
                                             said: str) -> None:
    src, sent, dst = sessions
    await migrate_to_pause(storage_lab, src)
    controller = Switchovers().for_pause(src, dst)  # the dialog is open, nobody confirmed yet
    ctl = await storage_lab.control(storage_lab.src)
    await ctl.execute(command, args)

    await wait_state(src, lambda: controller.result is not None, "the controller to notice")
    result = controller.result
    assert result is not None and result.outcome is Outcome.OTHER_CLIENT, result
    assert said in result.reason and "\n" not in result.reason, result
    assert await controller.resume() is result  # ends: nothing to do
    assert await controller.abort() is result
    assert sent.mutating() == []


@pytest.mark.qemu
async def test_auto_resume_completes_without_an_operator(storage_lab: Lab, sessions) -> None:
    src, sent, dst = sessions
    auto = AutoResume(src, dst, switchovers=Switchovers())
    auto.start()
    await migrate_to_pause(storage_lab, src)
    await wait_state(src, lambda: src.state.migration_status == "completed", "completed", timeout=30)
    assert auto.task is not None
    result = await auto.task
    assert result is not None and result.outcome is Outcome.COMPLETED, result
    assert auto.last_checklist is not None and auto.last_checklist.passed
    assert [r.level for r in auto.reports] == ["info", "info"]
    assert sent.mutating() == [("block-job-cancel", {"device": MIRROR_JOB, "force": False}),
                               ("migrate-continue", {"state": "pre-switchover"})]
    # Measured from QEMU's own timestamps; how short it is, is bench/pause_bench.py's
    # business (docs/benchmarks.md): a busy machine slows any client, so no test asserts it.
    assert result.pause_ms is not None and result.pause_ms > 0


@pytest.mark.qemu
async def test_auto_resume_when_started_during_the_pause(storage_lab: Lab) -> None:
    ctl = await storage_lab.control(storage_lab.src)
    paused = EventListener("MIGRATION", lambda ev: as_mapping(ev.get("data")).get("status") == "pre-switchover")
    with ctl.listen(paused):
        await storage_lab.prepare(storage=True, pause=True, max_bandwidth=1 << 30, downtime_limit=500)
        await storage_lab.migrate()
        await asyncio.wait_for(paused.get(), 30)

    monitor = Monitor(parse_address(f"src={storage_lab.src.qmp_path}"))
    src = MonitorSession(monitor, interval=0.5)
    auto = AutoResume(src, switchovers=Switchovers())
    auto.start()  # before connecting: the first query-migrate finds the pause
    src.start()
    try:
        await wait_state(src, lambda: src.state.migration_status == "completed", "completed")
        assert auto.task is not None
        result = await auto.task
        assert result is not None and result.outcome is Outcome.COMPLETED, result
    finally:
        await src.stop()


@pytest.mark.qemu
async def test_auto_resume_holds_when_the_checklist_fails(storage_lab: Lab, sessions) -> None:
    src, sent, dst = sessions
    await dst.stop()  # the destination is watched but its monitor is gone: do not resume blind
    reports: list[str] = []
    auto = AutoResume(src, dst, switchovers=Switchovers(), on_report=lambda r: reports.append(r.level))
    auto.start()
    await migrate_to_pause(storage_lab, src)
    await wait_state(src, lambda: bool(reports), "a report")
    assert auto.task is not None and await auto.task is None
    assert reports == ["error"] and "destination: monitor not connected" in auto.reports[0].message
    assert sent.mutating() == []
    assert src.state.in_pre_switchover


@pytest.mark.qemu
async def test_arm_refuses_during_a_migration(storage_lab: Lab, sessions) -> None:
    src, sent, _dst = sessions
    await storage_lab.prepare(storage=False, pause=False, max_bandwidth=1 << 20)  # 1 MiB/s: stays active
    await storage_lab.migrate()
    await wait_state(src, lambda: src.state.migration_status == "active", "active")
    with pytest.raises(MonitorError) as err:
        await arm(src.monitor)
    assert "cannot arm while a migration is active" in str(err.value)
    assert sent.mutating() == []
