"""The pure parsers, fed replies recorded from every real QEMU in tests/fixtures/qmp/ (7.2, 10.0)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from replay import VERSIONS, envelopes, reply

from migtui.model.blockjobs import BlockJob, parse_block_jobs
from migtui.model.capabilities import Capabilities
from migtui.model.dirtyrate import DirtyRateInfo
from migtui.model.history import History, Sample
from migtui.model.migration import MIGRATION_STATUSES, MigrationInfo, RamStats
from migtui.model.runstate import RunState

MiB = 1024 * 1024
MIGRATE_REPLIES = envelopes("query-migrate")


# --- MigrationInfo on every recorded state --------------------------------------------


@pytest.mark.parametrize("env", MIGRATE_REPLIES, ids=[e["path"] for e in MIGRATE_REPLIES])
def test_every_recorded_query_migrate_parses(env: dict[str, Any]) -> None:
    info = MigrationInfo.from_qmp(env["return"])
    assert info.status == env["return"].get("status", "none")
    assert info.status in MIGRATION_STATUSES
    assert info.raw == env["return"]
    assert not (info.is_running and info.is_finished)
    out = info.to_json()
    json.dumps(out)  # serialisable as is
    assert out["status"] == info.status
    assert out["raw"] == env["return"]
    if info.ram is not None:
        assert out["ram_total_bytes"] == env["return"]["ram"]["total"]
        assert info.ram_progress is not None and 0.0 <= info.ram_progress <= 1.0


def test_recordings_cover_every_state_the_brief_asks_for(version: str) -> None:
    seen = {MigrationInfo.from_qmp(e["return"]).status for e in MIGRATE_REPLIES
            if e["path"].startswith(f"{version}/")}
    assert {"none", "setup", "active", "pre-switchover", "device", "completed",
            "failed", "cancelling", "cancelled"} <= seen


def test_status_tuple_lists_all_known_statuses() -> None:
    assert set(MIGRATION_STATUSES) == {
        "none", "setup", "cancelling", "cancelled", "active", "postcopy-active",
        "postcopy-paused", "postcopy-recover-setup", "postcopy-recover", "completed",
        "failed", "colo", "pre-switchover", "device", "wait-unplug"}
    assert len(MIGRATION_STATUSES) == len(set(MIGRATION_STATUSES))


def test_never_migrated_source_is_none_with_nothing_known(version: str) -> None:
    raw = reply(version, "idle/src-query-migrate-none")
    assert raw == {}
    info = MigrationInfo.from_qmp(raw)
    assert info.status == "none"
    assert info.ram is None
    assert (info.dirty_rate_bytes_per_s, info.ram_progress, info.throughput_bytes_per_s,
            info.pass_number) == (None, None, None, None)
    assert not info.is_running and not info.is_finished
    out = info.to_json()
    assert out["dirty_rate_bytes_per_s"] is None and out["total_time_ms"] is None


def test_listening_destination_reports_its_socket(version: str) -> None:
    raw = reply(version, "idle/dst-query-migrate-incoming-listening")
    info = MigrationInfo.from_qmp(raw)
    # QEMU 7.2 gives no status while it only listens; QEMU 10.0 says "setup". Taken as said.
    assert info.status == {"7.2": "none", "10.0": "setup"}.get(version, raw.get("status", "none"))
    assert info.socket_address and info.socket_address[0]["type"] == "unix"


def test_setup(version: str) -> None:
    info = MigrationInfo.from_qmp(reply(version, "switchover/src-query-migrate-after-migrate-setup"))
    assert info.status == "setup" and info.is_running and info.ram is None


def test_active_figures(version: str) -> None:
    raw = reply(version, "switchover/src-query-migrate-active-2")
    info = MigrationInfo.from_qmp(raw)
    ram = raw["ram"]
    assert info.is_running and info.status == "active"
    assert info.total_time == raw["total-time"]
    assert info.expected_downtime == raw["expected-downtime"]
    assert info.ram is not None and info.ram_progress is not None
    assert info.ram.page_size == 4096
    assert info.ram.mbps == ram["mbps"]
    assert info.throughput_bytes_per_s == pytest.approx(ram["mbps"] * 1e6 / 8)
    assert info.pass_number == ram["dirty-sync-count"] == 1
    assert info.ram_progress == pytest.approx((ram["total"] - ram["remaining"]) / ram["total"])
    assert 0 < info.ram_progress < 1
    assert info.dirty_rate_bytes_per_s == ram["dirty-pages-rate"] * 4096
    out = info.to_json()
    assert out["ram_transferred_bytes"] == ram["transferred"]
    assert out["ram_remaining_bytes"] == ram["remaining"]
    assert out["total_time_ms"] == raw["total-time"]
    assert out["expected_downtime_ms"] == raw["expected-downtime"]
    assert out["throughput_bytes_per_s"] == pytest.approx(ram["mbps"] * 125_000)
    assert out["pass"] == 1


def test_pre_switchover_has_a_real_dirty_rate(version: str) -> None:
    raw = reply(version, "switchover/src-query-migrate-pre-switchover")
    info = MigrationInfo.from_qmp(raw)
    assert info.status == "pre-switchover" and info.is_running
    assert raw["ram"]["dirty-pages-rate"] > 0  # the lab guest was dirtying memory
    assert info.dirty_rate_bytes_per_s == raw["ram"]["dirty-pages-rate"] * raw["ram"]["page-size"]
    assert info.pass_number is not None and info.pass_number >= 2


def test_device_state(version: str) -> None:
    info = MigrationInfo.from_qmp(reply(version, "switchover/src-query-migrate-after-continue-device"))
    assert info.status == "device" and info.is_running and not info.is_finished


def test_completed_reports_downtime(version: str) -> None:
    raw = reply(version, "switchover/src-query-migrate-completed")
    info = MigrationInfo.from_qmp(raw)
    assert info.is_finished and not info.is_running
    assert info.downtime == raw["downtime"] and info.expected_downtime is None
    assert info.ram_progress == 1.0
    assert info.to_json()["downtime_ms"] == raw["downtime"]
    # The destination knows only that it completed.
    dst = MigrationInfo.from_qmp(reply(version, "switchover/dst-query-migrate-completed"))
    assert dst.status == "completed" and dst.ram is None


def test_failed_has_error_desc(version: str) -> None:
    info = MigrationInfo.from_qmp(reply(version, "failed/src-query-migrate-failed"))
    assert info.status == "failed" and info.is_finished
    assert info.error_desc and "socket" in info.error_desc
    assert info.to_json()["error_desc"] == info.error_desc


def test_cancelling_and_cancelled(version: str) -> None:
    cancelling = MigrationInfo.from_qmp(reply(version, "cancelled/src-query-migrate-after-cancel-cancelling"))
    assert cancelling.status == "cancelling" and cancelling.is_running and cancelling.ram
    cancelled = MigrationInfo.from_qmp(reply(version, "cancelled/src-query-migrate-cancelled"))
    assert cancelled.status == "cancelled" and cancelled.is_finished and cancelled.ram is None


def test_xbzrle_cache_kept_as_dict(version: str) -> None:
    info = MigrationInfo.from_qmp(reply(version, "failed/src-query-migrate-active-1"))
    assert info.xbzrle is not None and info.xbzrle["cache-size"] == 64 * MiB


# --- tolerance ---------------------------------------------------------------------------


def test_unknown_status_is_kept_opaque() -> None:
    info = MigrationInfo.from_qmp({"status": "warp-speed", "total-time": 5})
    assert info.status == "warp-speed"
    assert not info.is_running and not info.is_finished
    assert info.total_time == 5
    assert info.to_json()["status"] == "warp-speed"


@pytest.mark.parametrize("bad", [None, [], "active", 3, {"status": 7}, {"status": ""}])
def test_not_a_reply_means_none(bad: Any) -> None:
    info = MigrationInfo.from_qmp(bad)
    assert info.status == "none" and info.ram is None


def test_missing_fields_are_none() -> None:
    info = MigrationInfo.from_qmp({"status": "active", "ram": {}})
    assert info.ram == RamStats()
    assert info.total_time is None
    assert (info.dirty_rate_bytes_per_s, info.ram_progress, info.throughput_bytes_per_s,
            info.pass_number) == (None, None, None, None)
    assert info.to_json()["ram_total_bytes"] is None


def test_missing_page_size_defaults_to_4k() -> None:
    raw = copy.deepcopy(reply(VERSIONS[-1], "switchover/src-query-migrate-pre-switchover"))
    del raw["ram"]["page-size"]
    info = MigrationInfo.from_qmp(raw)
    assert info.dirty_rate_bytes_per_s == raw["ram"]["dirty-pages-rate"] * 4096


def test_progress_falls_back_to_transferred_and_clamps() -> None:
    info = MigrationInfo.from_qmp({"status": "active", "ram": {"total": 100, "transferred": 250}})
    assert info.ram_progress == 1.0
    info = MigrationInfo.from_qmp({"status": "active", "ram": {"total": 0, "remaining": 0}})
    assert info.ram_progress is None


def test_extra_fields_are_ignored_but_kept_in_raw() -> None:
    raw = copy.deepcopy(reply(VERSIONS[-1], "switchover/src-query-migrate-active-1"))
    raw["dirty-limit-throttle-time-per-round"] = 12  # QEMU 8.1+, while dirty-limit throttles
    raw["ram"]["something-new"] = {"nested": [1, 2]}
    raw["blocked-reasons"] = ["vfio", 3]
    raw["vfio"] = {"transferred": 42}
    raw["disk"] = {"total": 1, "remaining": 0, "transferred": 1}
    raw["cpu-throttle-percentage"] = 30
    raw["postcopy-blocktime"] = 9
    info = MigrationInfo.from_qmp(raw)
    assert info.status == "active"
    assert info.raw["dirty-limit-throttle-time-per-round"] == 12
    assert info.dirty_limit_throttle_time_per_round == 12 and info.dirty_limit_ring_full_time is None
    assert info.blocked_reasons == ("vfio",)
    assert info.vfio == {"transferred": 42}
    assert info.disk == {"total": 1, "remaining": 0, "transferred": 1}
    assert info.cpu_throttle_percentage == 30
    assert info.postcopy_blocktime == 9


def test_wrong_types_are_treated_as_absent() -> None:
    info = MigrationInfo.from_qmp({
        "status": "active",
        "total-time": "12",
        "downtime": True,
        "error-desc": 5,
        "blocked-reasons": "vfio",
        "socket-address": "nope",
        "xbzrle-cache": [1],
        "ram": {"total": "100", "remaining": None, "mbps": "fast",
                "dirty-pages-rate": True, "page-size": [4096], "transferred": float("nan"),
                "dirty-sync-count": 3.0},
    })
    assert info.total_time is None and info.downtime is None and info.error_desc is None
    assert info.blocked_reasons == () and info.socket_address == () and info.xbzrle is None
    assert info.ram is not None
    assert (info.ram.total, info.ram.mbps, info.ram.dirty_pages_rate, info.ram.page_size,
            info.ram.transferred) == (None, None, None, None, None)
    assert info.pass_number == 3  # a float that is a whole number is still a count
    assert info.ram_progress is None and info.dirty_rate_bytes_per_s is None
    assert MigrationInfo.from_qmp({"status": "active", "ram": "x"}).ram is None


# --- block jobs ---------------------------------------------------------------------------


def test_running_mirror(version: str) -> None:
    raw = reply(version, "switchover/src-query-block-jobs-mirror-running")
    (job,) = parse_block_jobs(raw)
    assert job.device == job.id == "mirror-data0" and job.type == "mirror"
    assert job.status == "running" and job.ready is False
    assert job.progress == pytest.approx(raw[0]["offset"] / raw[0]["len"])
    assert not job.in_sync and job.error is None and not job.is_finished
    assert job.auto_dismiss is True and job.io_status == "ok"
    assert job.raw == raw[0]


def test_ready_mirror_is_in_sync(version: str) -> None:
    (job,) = parse_block_jobs(reply(version, "switchover/src-query-block-jobs-mirror-ready"))
    assert job.ready is True and job.status == "ready"
    assert job.in_sync and job.progress == 1.0 and job.error is None and job.io_status == "ok"


def test_no_jobs(version: str) -> None:
    assert parse_block_jobs(reply(version, "idle/src-query-block-jobs-none")) == []
    assert parse_block_jobs(reply(version, "switchover/src-query-block-jobs-after-graceful-cancel")) == []


def test_block_job_list_parsing_is_tolerant() -> None:
    jobs = parse_block_jobs([None, {}, {"device": 5}, "x", {"id": "j1", "len": "big"},
                             {"device": "j2", "len": 0, "offset": 0, "actively-synced": True}])
    assert [j.device for j in jobs] == ["j1", "j2"]
    assert jobs[0].len is None and jobs[0].progress is None
    assert jobs[1].in_sync is False and jobs[1].progress is None  # zero-length: unknown
    assert jobs[1].actively_synced is True
    assert parse_block_jobs({"device": "x"}) == []
    assert BlockJob.from_qmp("nope") is None


def test_job_health() -> None:
    def job(raw: dict[str, Any]) -> BlockJob:
        parsed = BlockJob.from_qmp(raw)
        assert parsed is not None
        return parsed

    assert job({"device": "j", "io-status": "failed"}).io_status == "failed"
    assert job({"device": "j", "error": "Input/output error"}).error == "Input/output error"
    assert job({"device": "j"}).io_status is None
    assert job({"device": "j", "status": "concluded"}).is_finished


# --- dirty rate, run state, capabilities ---------------------------------------------


def test_dirty_rate_states(version: str) -> None:
    unstarted = DirtyRateInfo.from_qmp(reply(version, "idle/src-query-dirty-rate-unstarted"))
    measuring = DirtyRateInfo.from_qmp(reply(version, "idle/src-query-dirty-rate-measuring"))
    raw = reply(version, "idle/src-query-dirty-rate-measured")
    measured = DirtyRateInfo.from_qmp(raw)
    assert (unstarted.status, measuring.status, measured.status) == ("unstarted", "measuring", "measured")
    assert unstarted.bytes_per_s is None and measuring.bytes_per_s is None
    assert measured.dirty_rate_mib_per_s == raw["dirty-rate"]
    assert measured.bytes_per_s == raw["dirty-rate"] * MiB
    assert measured.mode == "page-sampling" and measured.calc_time == 1
    # calc-time's unit: said from QEMU 8.2 (calc-time-unit), seconds before.
    assert measured.calc_time_unit == raw.get("calc-time-unit") in (None, "second")
    assert measured.start_time == raw["start-time"]


def test_dirty_rate_vcpus_and_junk() -> None:
    raw = dict(reply(VERSIONS[-1], "idle/src-query-dirty-rate-measured"), mode="dirty-ring")
    raw["vcpu-dirty-rate"] = [{"id": 0, "dirty-rate": 3}, {"id": "1", "dirty-rate": 4}, "x"]
    info = DirtyRateInfo.from_qmp(raw)
    assert info.vcpu_rates_mib_per_s == ((0, 3),)
    assert DirtyRateInfo.from_qmp(None).status == "unstarted"
    assert DirtyRateInfo.from_qmp({"status": "measured", "dirty-rate": -1}).bytes_per_s is None
    assert DirtyRateInfo.from_qmp({"status": "measured", "dirty-rate": "9"}).bytes_per_s is None


@pytest.mark.parametrize("env", envelopes("query-status"), ids=lambda e: e["path"])
def test_every_recorded_query_status_parses(env: dict[str, Any]) -> None:
    rs = RunState.from_qmp(env["return"])
    assert rs.status == env["return"]["status"]
    assert rs.running is env["return"]["running"]


def test_run_states_seen_around_migration(version: str) -> None:
    assert RunState.from_qmp(reply(version, "idle/dst-query-status-before")).incoming
    assert RunState.from_qmp(reply(version, "switchover/src-query-status-pre-switchover")).status == "finish-migrate"
    assert RunState.from_qmp(reply(version, "switchover/src-query-status-completed")).status == "postmigrate"
    assert RunState.from_qmp(reply(version, "switchover/dst-query-status-completed")).running
    assert RunState.from_qmp(reply(version, "failed/src-query-status-failed")).running


def test_run_state_tolerance() -> None:
    assert RunState.from_qmp({"status": "running"}).running is True
    assert RunState.from_qmp({"status": "paused", "running": "no"}).running is False
    assert RunState.from_qmp(None) == RunState(status="unknown", running=False, raw={})


def test_capabilities(version: str) -> None:
    default = Capabilities.from_qmp(reply(version, "idle/src-query-migrate-capabilities-default"))
    assert default.supports("pause-before-switchover") and not default.enabled("pause-before-switchover")
    assert default.supports("events") and not default["events"]
    armed = Capabilities.from_qmp(reply(version, "idle/src-query-migrate-capabilities-armed"))
    assert armed.enabled("events") and armed.enabled("pause-before-switchover")
    assert armed != default and len(armed) == len(default)
    assert dict(armed)["events"] is True


def test_capabilities_tolerance() -> None:
    caps = Capabilities.from_qmp([{"capability": "events", "state": True}, {"capability": "x"},
                                  {"state": True}, None, {"capability": "y", "state": "on"}])
    assert dict(caps) == {"events": True}
    assert Capabilities.from_qmp({"events": True}) == {}
    assert not Capabilities().enabled("events")


# --- history ------------------------------------------------------------------------------


def test_history_is_a_bounded_ring() -> None:
    history = History(capacity=3)
    for t in range(5):
        history.append(Sample(float(t), dirty_rate_bytes_per_s=t * 10.0, throughput_bytes_per_s=None))
    assert len(history) == 3 and history.capacity == 3
    assert [s.time for s in history] == [2.0, 3.0, 4.0]
    assert history.latest is not None and history.latest.time == 4.0 and history[0].time == 2.0
    assert [s.dirty_rate_bytes_per_s for s in history] == [20.0, 30.0, 40.0]
    assert [s.throughput_bytes_per_s for s in history] == [None, None, None]
    assert [s.time for s in history.since(3.0)] == [3.0, 4.0]


def test_history_drops_samples_from_the_past() -> None:
    history = History()
    history.append(Sample(10.0, 1.0, 2.0))
    history.append(Sample(9.0, 5.0, 5.0))
    assert len(history) == 1 and history.latest == Sample(10.0, 1.0, 2.0)
    history.clear()
    assert history.latest is None and len(history) == 0
    with pytest.raises(ValueError):
        History(capacity=0)


def test_an_unlimited_job_speed_is_no_limit_not_exbibytes() -> None:
    # libvirt leaves a mirror at INT64_MAX: the table showed it as "8.0 EiB/s" (issue 9).
    for speed in (0, 2**63 - 1, 2**62):
        job = BlockJob.from_qmp({"device": "drive-virtio-disk0", "type": "mirror", "speed": speed})
        assert job is not None and job.speed_limit is None
    limited = BlockJob.from_qmp({"device": "m", "type": "mirror", "speed": 100 * 1024 * 1024})
    assert limited is not None and limited.speed_limit == 100 * 1024 * 1024


def test_a_mirror_that_completed_with_an_error_is_failed_not_completed() -> None:
    from migtui.model.events import QmpEvent
    from migtui.model.vmstate import VmState

    state = VmState()
    state.apply_event(QmpEvent.from_qmp({"event": "BLOCK_JOB_COMPLETED", "data": {
        "device": "mirror-data0", "type": "mirror", "len": 10, "offset": 5, "speed": 0,
        "error": "Input/output error"}, "timestamp": {"seconds": 1, "microseconds": 0}}), 1.0)
    job = state.block_jobs["mirror-data0"]
    assert job.ended == "failed" and job.error == "Input/output error"
