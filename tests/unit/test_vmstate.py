"""VmState fed the recorded events and polls of real QEMU migrations (every recorded
version: 7.2, 10.0), in arrival order."""

from __future__ import annotations

from typing import Any

import pytest
from replay import events, reply, timeline

from migtui.model.blockjobs import parse_block_jobs
from migtui.model.capabilities import Capabilities
from migtui.model.dirtyrate import DirtyRateInfo
from migtui.model.events import QmpEvent
from migtui.model.migration import MigrationInfo
from migtui.model.runstate import RunState
from migtui.model.vmstate import EVENT_LOG_SIZE, STALE_JOB_POLL_S, VmState


def feed(vm: VmState, entry: dict[str, Any]) -> bool:
    """Apply one recorded event or reply the way the session does; `now` is when it arrived."""
    now = entry["t"]
    if entry["kind"] == "event":
        return vm.apply_event(QmpEvent.from_qmp(entry["event"]), now)
    command, ret = entry["command"], entry["return"]
    if command == "query-migrate":
        return vm.apply_migration(MigrationInfo.from_qmp(ret), now)
    if command == "query-status":
        return vm.apply_run_state(RunState.from_qmp(ret), now)
    if command == "query-block-jobs":
        return vm.apply_block_jobs(parse_block_jobs(ret), now)
    if command == "query-migrate-capabilities":
        return vm.apply_capabilities(Capabilities.from_qmp(ret))
    if command == "query-dirty-rate":
        return vm.apply_dirty_rate(DirtyRateInfo.from_qmp(ret), now)
    return False  # commands that change state (migrate, blockdev-add, ...)


def replay(version: str, scenario: str, side: str, until: str | None = None,
           status: str | None = None) -> VmState:
    """Everything recorded for one side; stop after event `until` (with data status `status`)."""
    vm = VmState()
    for entry in timeline(version, scenario, side):
        feed(vm, entry)
        if (until and entry["kind"] == "event" and entry["event"]["event"] == until
                and (status is None or entry["event"]["data"].get("status") == status)):
            break
    else:
        assert until is None, f"{until} {status} never came"
    return vm


def event_time(version: str, scenario: str, side: str, name: str, status: str | None = None) -> float:
    for ev in events(version, scenario, side):
        if ev.name == name and (status is None or ev.data.get("status") == status):
            assert ev.timestamp is not None
            return ev.timestamp
    raise AssertionError(f"no {name} {status}")


# --- status timeline ----------------------------------------------------------------------


@pytest.mark.parametrize(("scenario", "side", "expected"), [
    ("switchover", "src", ["setup", "active", "pre-switchover", "device", "completed"]),
    ("switchover", "dst", ["setup", "active", "completed"]),
    # QEMU 7.2 enters "device" only after pre-switchover; from 10.0 every migration does.
    ("plain", "src", {"7.2": ["setup", "active", "completed"],
                      "10.0": ["setup", "active", "device", "completed"]}),
    ("abort", "src", ["setup", "active", "pre-switchover", "cancelling", "cancelled"]),
    ("abort", "dst", ["setup", "active", "failed"]),
    ("cancelled", "src", ["setup", "active", "cancelling", "cancelled"]),
    ("cancelled", "dst", ["setup", "active", "failed"]),
    ("failed", "src", ["setup", "active", "failed"]),
])
def test_status_timeline_of_a_real_migration(version: str, scenario: str, side: str,
                                             expected: list[str] | dict[str, list[str]]) -> None:
    if isinstance(expected, dict):
        expected = expected[version]
    vm = replay(version, scenario, side)
    assert [c.status for c in vm.status_changes] == expected
    # Every change is stamped with QEMU's own event time, not when a poll noticed it.
    for change in vm.status_changes:
        assert change.source == "event"
        assert change.time == event_time(version, scenario, side, "MIGRATION", change.status)
    assert vm.migration_status == expected[-1]
    assert vm.status_since == event_time(version, scenario, side, "MIGRATION", expected[-1])


def test_poll_answered_before_an_event_does_not_turn_status_back(version: str) -> None:
    # Seen in a recording (it is a race, so it is rebuilt here from recorded parts):
    # a query-migrate pipelined behind `migrate` answered "setup" after QEMU had
    # already sent the "active" event.
    vm = VmState()
    for ev in events(version, "switchover", "src"):
        assert ev.timestamp is not None  # QEMU stamps every event
        vm.apply_event(ev, ev.timestamp)
        if ev.name == "MIGRATION" and ev.data["status"] == "active":
            break
    assert vm.migration_status == "active"
    since = vm.status_since
    assert since is not None
    stale = MigrationInfo.from_qmp(reply(version, "switchover/src-query-migrate-after-migrate-setup"))
    assert stale.status == "setup"
    assert not vm.apply_migration(stale, since + 0.01)
    assert vm.migration_status == "active" and vm.status_since == since
    # The following poll is trusted again, whatever it says.
    fresh = MigrationInfo.from_qmp(reply(version, "switchover/src-query-migrate-active-1"))
    assert vm.apply_migration(fresh, since + 0.3)
    assert vm.migration == fresh
    assert vm.apply_migration(stale, since + 0.6)
    assert vm.migration_status == "setup"


def test_failed_migration_keeps_error(version: str) -> None:
    vm = replay(version, "failed", "src")
    assert vm.migration_status == "failed"
    assert vm.migration.error_desc and "Broken pipe" in vm.migration.error_desc
    assert vm.run_state is not None and vm.run_state.running and vm.stopped_since is None


# --- stop / resume ------------------------------------------------------------------------


def test_stopped_since_comes_from_the_stop_event(version: str) -> None:
    stop = event_time(version, "switchover", "src", "STOP")
    vm = replay(version, "switchover", "src", until="STOP")
    assert vm.stopped_since == stop
    assert vm.running is False  # at once, before any query-status
    assert vm.stopped_since == pytest.approx(stop)
    vm = replay(version, "switchover", "src")
    assert vm.stopped_since == stop  # the source never resumes after switchover
    assert vm.run_state == RunState.from_qmp(reply(version, "switchover/src-query-status-completed"))
    assert vm.run_state.status == "postmigrate"


def test_destination_resume_clears_stopped_since(version: str) -> None:
    vm = VmState()
    vm.apply_run_state(RunState.from_qmp(reply(version, "switchover/dst-query-status-incoming-active")), 100.0)
    assert vm.stopped_since == 100.0  # first seen stopped by a poll
    for ev in events(version, "switchover", "dst"):
        vm.apply_event(ev, 200.0)
    assert vm.stopped_since is None and vm.running is True
    assert vm.migration_status == "completed"


def test_resume_and_stop_update_run_state_immediately(version: str) -> None:
    vm = VmState()
    vm.apply_run_state(RunState.from_qmp(reply(version, "idle/src-query-status-before")), 1.0)
    vm.apply_event(QmpEvent("STOP", {}, 5.0), 6.0)
    assert vm.running is False and vm.stopped_since == 5.0
    vm.apply_event(QmpEvent("STOP", {}, 7.0), 7.0)  # a second STOP keeps the first time
    assert vm.stopped_since == 5.0
    vm.apply_event(QmpEvent("RESUME", {}, None), 9.0)
    assert vm.running is True and vm.stopped_since is None


# --- pre-switchover -----------------------------------------------------------------------


def test_pre_switchover_detected_from_the_event(version: str) -> None:
    entered = event_time(version, "switchover", "src", "MIGRATION", "pre-switchover")
    vm = replay(version, "switchover", "src", until="MIGRATION", status="pre-switchover")
    assert vm.armed  # capabilities recorded before migrating
    assert vm.in_pre_switchover
    assert vm.pre_switchover_since == entered == vm.status_since
    assert vm.pre_switchover_since == pytest.approx(entered)
    assert vm.stopped_since is not None and vm.stopped_since <= entered
    # The mirror is still in sync: the moment to finish it gracefully.
    assert vm.block_jobs["mirror-data0"].in_sync
    # Leaving pre-switchover clears it.
    vm = replay(version, "switchover", "src", until="MIGRATION", status="device")
    assert vm.pre_switchover_since is None and not vm.in_pre_switchover


def test_not_armed_without_both_capabilities(version: str) -> None:
    vm = VmState()
    assert not vm.armed
    assert vm.apply_capabilities(Capabilities.from_qmp(reply(version, "idle/src-query-migrate-capabilities-default")))
    assert not vm.armed
    assert vm.apply_capabilities(Capabilities.from_qmp(reply(version, "idle/src-query-migrate-capabilities-armed")))
    assert vm.armed
    assert not vm.apply_capabilities(Capabilities.from_qmp(reply(version, "idle/src-query-migrate-capabilities-armed")))


# --- block jobs -----------------------------------------------------------------------------


def test_block_job_completion_from_events_before_the_next_poll(version: str) -> None:
    vm = replay(version, "switchover", "src", until="BLOCK_JOB_COMPLETED")
    job = vm.block_jobs["mirror-data0"]
    assert job.ended == "completed" and job.is_finished and job.error is None
    assert job.progress == 1.0
    # The next poll no longer lists it (auto-dismiss): it stays visible as completed.
    after_cancel = parse_block_jobs(reply(version, "switchover/src-query-block-jobs-after-graceful-cancel"))
    assert vm.apply_block_jobs(after_cancel, 0.0) is False
    assert vm.block_jobs["mirror-data0"].ended == "completed"
    vm = replay(version, "switchover", "src")
    assert vm.block_jobs["mirror-data0"].ended == "completed"
    assert vm.block_jobs["mirror-data0"].status == "null"  # from JOB_STATUS_CHANGE


def test_ready_event_and_status_changes(version: str) -> None:
    vm = replay(version, "switchover", "src", until="BLOCK_JOB_READY")
    job = vm.block_jobs["mirror-data0"]
    assert job.ready is True and job.status == "ready" and job.in_sync


def test_poll_sent_before_the_completed_event_is_stale(version: str) -> None:
    vm = VmState()
    ready = parse_block_jobs(reply(version, "switchover/src-query-block-jobs-mirror-ready"))
    vm.apply_block_jobs(ready, 10.0)
    vm.apply_event(QmpEvent("BLOCK_JOB_COMPLETED", {"device": "mirror-data0", "len": 4, "offset": 4,
                                                    "speed": 0, "type": "mirror"}, 19.5), 20.0)
    assert not vm.apply_block_jobs(ready, 20.5)
    assert vm.block_jobs["mirror-data0"].ended == "completed"
    # Long after, the same id listed again is a new job.
    assert vm.apply_block_jobs(ready, 20.0 + STALE_JOB_POLL_S + 1)
    assert vm.block_jobs["mirror-data0"].ended is None


def test_block_job_error_and_cancel_events(version: str) -> None:
    vm = VmState()
    vm.apply_block_jobs(parse_block_jobs(reply(version, "switchover/src-query-block-jobs-mirror-running")), 1.0)
    vm.apply_event(QmpEvent("BLOCK_JOB_ERROR", {"device": "mirror-data0", "operation": "write",
                                                "action": "report"}, 2.0), 2.0)
    job = vm.block_jobs["mirror-data0"]
    assert job.error == "write error (action: report)"
    vm.apply_event(QmpEvent("BLOCK_JOB_CANCELLED", {"device": "mirror-data0", "len": 8, "offset": 3,
                                                    "speed": 0, "type": "mirror"}, 3.0), 3.0)
    assert vm.block_jobs["mirror-data0"].ended == "cancelled"
    assert vm.block_jobs["mirror-data0"].progress == pytest.approx(3 / 8)
    # A job vanishing from polls without an ending event is dropped.
    vm.apply_block_jobs(parse_block_jobs([{"device": "other", "len": 1, "offset": 0}]), 4.0)
    vm.apply_block_jobs([], 5.0)
    assert set(vm.block_jobs) == {"mirror-data0"}
    assert vm.clear_finished_jobs() and vm.block_jobs == {}


def test_job_id_reused_after_it_ended(version: str) -> None:
    vm = replay(version, "switchover", "src")
    vm.apply_event(QmpEvent("JOB_STATUS_CHANGE", {"id": "mirror-data0", "status": "created"}, 1.0), 1.0)
    job = vm.block_jobs["mirror-data0"]
    assert job.ended is None and job.status == "created" and job.len is None


def test_job_events_with_junk_are_ignored() -> None:
    vm = VmState()
    assert vm.apply_event(QmpEvent("JOB_STATUS_CHANGE", {"id": 3, "status": "running"}), 1.0)
    assert vm.apply_event(QmpEvent("BLOCK_JOB_READY", {}), 1.0)
    assert vm.apply_event(QmpEvent("JOB_STATUS_CHANGE", {"id": "j"}), 1.0)
    assert vm.block_jobs == {}


# --- figures ----------------------------------------------------------------------------


def test_final_downtime_and_pass_number(version: str) -> None:
    vm = replay(version, "switchover", "src")
    assert vm.final_downtime_ms == reply(version, "switchover/src-query-migrate-completed")["downtime"]
    passes = [ev.data["pass"] for ev in events(version, "switchover", "src") if ev.name == "MIGRATION_PASS"]
    assert vm.pass_number == max(passes)
    vm = replay(version, "switchover", "src", until="MIGRATION_PASS")
    assert vm.pass_number == 1


def test_history_samples_each_active_poll(version: str) -> None:
    vm = replay(version, "switchover", "src")
    polls = [e for e in timeline(version, "switchover", "src")
             if e["kind"] == "reply" and e["command"] == "query-migrate"
             and MigrationInfo.from_qmp(e["return"]).is_running and "ram" in e["return"]]
    assert len(vm.history) == len(polls) > 0
    last = vm.history.latest
    assert last is not None
    info = MigrationInfo.from_qmp(polls[-1]["return"])
    assert last.time == polls[-1]["t"]
    assert last.dirty_rate_bytes_per_s == info.dirty_rate_bytes_per_s
    assert last.throughput_bytes_per_s == info.throughput_bytes_per_s


def test_history_and_event_log_are_bounded(version: str) -> None:
    vm = VmState()
    active = MigrationInfo.from_qmp(reply(version, "switchover/src-query-migrate-active-1"))
    for i in range(1000):
        vm.apply_migration(active, float(i))
        vm.apply_event(QmpEvent("MIGRATION_PASS", {"pass": i}, float(i)), float(i))
    assert len(vm.history) == vm.history.capacity == 300
    assert vm.history[0].time == 700.0
    assert len(vm.events) == EVENT_LOG_SIZE and vm.events[-1].data["pass"] == 999


def test_measured_dirty_rate_feeds_the_chart_when_idle(version: str) -> None:
    vm = replay(version, "idle", "src")
    measured = DirtyRateInfo.from_qmp(reply(version, "idle/src-query-dirty-rate-measured"))
    assert vm.dirty_rate == measured
    assert len(vm.history) == 1 and vm.history.latest is not None
    assert vm.history.latest.dirty_rate_bytes_per_s == measured.bytes_per_s
    assert not vm.apply_dirty_rate(measured, 1e10)  # same measurement again: nothing new
    assert len(vm.history) == 1


# --- apply_* report changes -------------------------------------------------------------------


def test_apply_reports_whether_anything_changed(version: str) -> None:
    vm = VmState()
    completed = MigrationInfo.from_qmp(reply(version, "plain/src-query-migrate-completed"))
    assert vm.apply_migration(completed, 1.0)
    assert not vm.apply_migration(completed, 2.0)
    status = RunState.from_qmp(reply(version, "plain/src-query-status-completed"))
    assert vm.apply_run_state(status, 1.0)
    assert not vm.apply_run_state(status, 2.0)
    jobs = parse_block_jobs(reply(version, "switchover/src-query-block-jobs-mirror-ready"))
    assert vm.apply_block_jobs(jobs, 1.0)
    assert not vm.apply_block_jobs(jobs, 2.0)


def test_status_first_seen_by_poll_then_event_refines_since(version: str) -> None:
    vm = VmState()
    vm.apply_migration(MigrationInfo.from_qmp(reply(version, "switchover/src-query-migrate-active-1")), 50.0)
    assert vm.status_since == 50.0
    vm.apply_event(QmpEvent("MIGRATION", {"status": "active"}, 49.2), 50.1)
    assert vm.status_since == 49.2
    assert [c.status for c in vm.status_changes] == ["active"]


def test_reply_without_status_keeps_event_status(version: str) -> None:
    vm = VmState()
    vm.apply_event(QmpEvent("MIGRATION", {"status": "setup"}, 10.0), 10.0)
    vm.apply_migration(MigrationInfo.from_qmp(reply(version, "idle/dst-query-migrate-none")), 11.0)
    # A listening destination: no status on QEMU 7.2, "setup" (the event's own) on 10.0.
    vm.apply_migration(MigrationInfo.from_qmp(reply(version, "idle/dst-query-migrate-incoming-listening")), 12.0)
    assert vm.migration_status == "setup" and vm.status_since == 10.0


def test_a_new_migration_resets_per_migration_figures(version: str) -> None:
    vm = replay(version, "switchover", "src")
    assert vm.final_downtime_ms is not None and vm.block_jobs
    vm.apply_event(QmpEvent("MIGRATION", {"status": "setup"}, 1e10), 1e10)
    assert vm.pass_number is None and vm.final_downtime_ms is None
    assert vm.block_jobs == {}  # the finished mirror belonged to the last run
    assert vm.status_changes[-1].status == "setup"


def test_unknown_status_from_event_and_poll() -> None:
    vm = VmState()
    vm.apply_event(QmpEvent("MIGRATION", {"status": "hyperdrive"}, 1.0), 1.0)
    assert vm.migration_status == "hyperdrive"
    vm.apply_migration(MigrationInfo.from_qmp({"status": "active"}), 2.0)  # unknown order: trusted
    assert vm.migration_status == "active"
    assert vm.apply_event(QmpEvent("MIGRATION", {}), 3.0)  # no status: only logged
    assert vm.migration_status == "active"


def test_time_helpers_without_data() -> None:
    vm = VmState()
    assert vm.status_since is None and vm.stopped_since is None
    assert vm.pre_switchover_since is None and vm.running is None


@pytest.mark.parametrize("events, pause", [(False, False), (True, False), (False, True), (True, True)])
def test_armed_means_one_thing_everywhere(events: bool, pause: bool) -> None:
    """Armed = events and pause-before-switchover both on: the model, the dashboard's
    badge and `migtui status` all say so from the same definition."""
    from migtui.address import parse_address
    from migtui.commands.status import render_table
    from migtui.model.vmstate import is_armed
    from migtui.workflow.status import Snapshot

    caps = {"events": events, "pause-before-switchover": pause, "xbzrle": True}
    vm = VmState()
    vm.apply_capabilities(Capabilities(caps))
    snapshot = Snapshot(parse_address("src=/run/vm.qmp"), qemu="7.2.22", run_state="running",
                        migration=MigrationInfo.from_qmp({"status": "none"}), capabilities=caps)
    armed = events and pause
    assert is_armed(caps) is armed and vm.armed is armed
    assert ("(armed)" in render_table([snapshot])) is armed


class _FakeMonitor:
    """Just enough of a Monitor for arm(): capabilities in, commands recorded."""

    def __init__(self, caps: dict[str, bool]) -> None:
        self.name, self.read_only, self.qemu_version = "src", False, "7.2.22"
        self.caps = caps
        self.sent: list[str] = []

    async def execute(self, command: str, args: dict[str, Any] | None = None) -> Any:
        self.sent.append(command)
        if command == "query-migrate-capabilities":
            return [{"capability": name, "state": on} for name, on in self.caps.items()]
        if command == "query-migrate":
            return {}
        return {}


@pytest.mark.parametrize("events, pause", [(False, False), (True, False), (False, True), (True, True)])
async def test_arm_agrees_with_the_model(events: bool, pause: bool) -> None:
    from migtui.model.vmstate import is_armed
    from migtui.workflow.arm import arm

    caps = {"events": events, "pause-before-switchover": pause}
    monitor = _FakeMonitor(caps)
    result = await arm(monitor)  # type: ignore[arg-type]  # a stand-in Monitor
    assert result.changed is not is_armed(caps)
    assert ("migrate-set-capabilities" in monitor.sent) is not is_armed(caps)
    assert set(result.enabled) | set(result.already) == {"events", "pause-before-switchover"}


async def test_arm_refuses_a_qemu_without_either_capability() -> None:
    from migtui.errors import NotSupported
    from migtui.workflow.arm import arm

    monitor = _FakeMonitor({"pause-before-switchover": True})  # no "events": it could never be armed
    with pytest.raises(NotSupported, match="too old for events"):
        await arm(monitor)  # type: ignore[arg-type]  # a stand-in Monitor
    assert monitor.sent == ["query-migrate-capabilities"]
