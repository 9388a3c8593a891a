"""libvirt's figures as the QMP replies the model folds (migtui/libvirt/jobstats.py), on
jobStats() dicts recorded from the real libvirt 9.0 lab (tests/libvirt_lab.py: a
``virsh migrate --live --p2p --copy-storage-all`` of the 128 MiB guest), and the ``-c``
parsing that needs no libvirt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from migtui.address import CONNECT, parse_connect
from migtui.commands.options import add_connect_arguments, split_targets
from migtui.errors import AddressError
from migtui.libvirt import jobstats
from migtui.libvirt.binding import LibvirtMissing, load, uri_error
from migtui.model.migration import MigrationInfo
from migtui.model.runstate import RunState

# The source, during the last RAM pass (libvirt's downtime is then its estimate).
RUNNING = {"operation": 5, "time_elapsed": 968, "downtime": 162, "setup_time": 7, "data_total": 152576000,
           "data_processed": 18633857, "data_remaining": 0, "memory_total": 134750208, "memory_processed": 808065,
           "memory_remaining": 0, "memory_bps": 5430589, "memory_constant": 32774, "memory_normal": 125,
           "memory_normal_bytes": 512000, "memory_dirty_rate": 0, "memory_iteration": 2,
           "memory_postcopy_requests": 0, "memory_page_size": 4096, "disk_total": 17825792,
           "disk_processed": 17825792, "disk_remaining": 0, "type": 2}
# The source while libvirt mirrors the disks: QEMU's migration has not begun.
MIRRORING = {"operation": 5, "time_elapsed": 353, "data_total": 0, "data_processed": 0, "data_remaining": 0,
             "memory_total": 0, "memory_processed": 0, "memory_remaining": 0, "memory_dirty_rate": 0,
             "memory_iteration": 0, "memory_postcopy_requests": 0, "disk_total": 0, "disk_processed": 0,
             "disk_remaining": 0, "type": 2}
# The destination's jobStats(COMPLETED | KEEP_COMPLETED): what `virsh domjobinfo --completed` shows.
COMPLETED = {"operation": 4, "time_elapsed": 941, "time_elapsed_net": 937, "downtime": 171, "downtime_net": 167,
             "setup_time": 7, "data_total": 134750208, "data_processed": 808065, "data_remaining": 0,
             "memory_total": 134750208, "memory_processed": 808065, "memory_remaining": 0, "memory_bps": 5430589,
             "memory_constant": 32774, "memory_normal": 125, "memory_normal_bytes": 512000, "memory_dirty_rate": 0,
             "memory_iteration": 2, "memory_postcopy_requests": 0, "memory_page_size": 4096, "disk_total": 0,
             "disk_processed": 0, "disk_remaining": 0, "type": 3}


def test_a_completed_job_is_a_completed_migration_with_libvirts_figures() -> None:
    info = MigrationInfo.from_qmp(jobstats.migrate_reply(COMPLETED))
    assert (info.status, info.total_time, info.downtime, info.setup_time) == ("completed", 941, 171, 7)
    assert info.ram is not None and (info.ram.total, info.ram.transferred, info.ram.remaining) == \
        (134750208, 808065, 0)
    assert info.ram.dirty_sync_count == 2 and info.ram.page_size == 4096 and info.ram.normal_bytes == 512000
    assert info.throughput_bytes_per_s == pytest.approx(5430589)
    assert info.disk is None  # no disk copied into the destination's figures


def test_a_running_job_says_qemus_status_and_libvirts_estimate() -> None:
    info = MigrationInfo.from_qmp(jobstats.migrate_reply(RUNNING, "pre-switchover"))
    assert info.status == "pre-switchover" and info.is_running
    assert info.downtime is None and info.expected_downtime == 162
    assert info.disk == {"total": 17825792, "transferred": 17825792, "remaining": 0}
    assert MigrationInfo.from_qmp(jobstats.migrate_reply(MIRRORING)).status == "active"


def test_no_job_is_no_migration_and_an_unkept_end_is_said() -> None:
    assert jobstats.migrate_reply({"type": 0}) == {}
    assert jobstats.migrate_reply(jobstats.ended_job(None, aborted=True)) == {"status": "cancelled"}
    assert jobstats.migrate_reply(jobstats.ended_job("completed", aborted=False)) == {"status": "completed"}
    failed = MigrationInfo.from_qmp(jobstats.migrate_reply(jobstats.ended_job("active", aborted=False)))
    assert failed.status == "failed" and failed.error_desc


@pytest.mark.parametrize(("state", "reason", "incoming", "migrated", "word"), [
    (1, 1, False, False, "running"),
    (3, 2, True, False, "inmigrate"),  # the destination, receiving
    (3, 2, False, False, "finish-migrate"),  # the source's pause before switchover
    (3, 2, False, True, "postmigrate"),
    (3, 12, False, False, "postmigrate"),  # paused for postcopy: the guest runs on the destination
    (3, 1, False, False, "paused"),
    (5, 1, False, False, "shutdown"),
])
def test_domain_states(state: int, reason: int, incoming: bool, migrated: bool, word: str) -> None:
    run = RunState.from_qmp(jobstats.status_reply(state, reason, incoming=incoming, migrated=migrated))
    assert run.status == word and run.running == (word == "running")


def test_parameters_block_jobs_and_dirty_rate() -> None:
    assert jobstats.parameters_reply(300, 8796093022207) == {"downtime-limit": 300, "max-bandwidth": 0}
    assert jobstats.parameters_reply(500, 64) == {"downtime-limit": 500, "max-bandwidth": 64 << 20}
    assert jobstats.block_job("vda", {}) is None
    job = jobstats.block_job("vda", {"type": 2, "bandwidth": 0, "cur": 16777216, "end": 16777216})
    assert job is not None and job["type"] == "mirror" and job["ready"] and job["len"] == 16777216
    assert jobstats.dirty_rate_reply({"dirtyrate.calc_status": 2, "dirtyrate.megabytes_per_second": 12,
                                      "dirtyrate.calc_period": 1}) == \
        {"status": "measured", "dirty-rate": 12, "calc-time": 1}


def test_connect_uris() -> None:
    assert uri_error("qemu:///system") is None
    assert uri_error("qemu+ssh://root@host:2222/system?keyfile=/k&no_verify=1") is None
    assert "not a libvirt URI" in str(uri_error("qemu/system"))
    assert "unknown hypervisor driver 'qmeu'" in str(uri_error("qmeu:///system"))
    assert "unknown transport 'shh'" in str(uri_error("qemu+shh://host/system"))
    named = parse_connect("a=qemu+unix:///system?socket=/x/libvirt-sock", ["web*"])
    assert (named.name, named.kind, named.path, named.host) == ("a", CONNECT, "qemu+unix:///system?socket=/x/libvirt-sock",
                                                                "web*")
    assert parse_connect("qemu:///system", []).name == ""


def test_without_libvirt_python_one_line_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "libvirt", None)  # import fails as if it were not installed
    with pytest.raises(LibvirtMissing, match=r"pip install 'migtui\[libvirt\]'") as err:
        load()
    assert "\n" not in str(err.value)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("monitors", nargs="*")
    add_connect_arguments(parser)
    return parser.parse_args(list(argv))


def test_connections_from_the_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)
    sock = tmp_path / "vm.qmp"
    sock.touch()
    connections, words = split_targets(_args("-c", "a=qemu:///system", "--connect", "qemu+ssh://h/system", "web1",
                                             str(sock), "--domain", "db*"))
    assert [(c.name, c.path, c.host) for c in connections] == [("a", "qemu:///system", "web1,db*"),
                                                              ("", "qemu+ssh://h/system", "web1,db*")]
    assert words == [str(sock)]  # an existing socket stays a MONITOR
    assert split_targets(_args(str(sock))) == ([], [str(sock)])
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu:///system")  # virsh's default, when nothing else is given
    assert [c.path for c in split_targets(_args())[0]] == ["qemu:///system"]
    with pytest.raises(AddressError, match="not a libvirt URI"):
        split_targets(_args("-c", "system"))
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI")
    with pytest.raises(AddressError, match="--domain needs -c URI"):
        split_targets(_args("--domain", "web*"))


def test_a_mirror_named_by_qemu_is_named_by_its_disk() -> None:
    names = jobstats.job_names([("hda", "ide0-0-0"), ("vda", "virtio-disk0"), ("vdb", "")])
    assert names == {"drive-ide0-0-0": "hda", "ide0-0-0": "hda", "drive-virtio-disk0": "vda", "virtio-disk0": "vda"}
    ready = {"device": "drive-virtio-disk0", "len": 16, "offset": 16, "type": "mirror"}
    assert jobstats.job_event_data("BLOCK_JOB_READY", ready, names)["device"] == "vda"
    change = {"status": "concluded", "id": "drive-ide0-0-0"}
    assert jobstats.job_event_data("JOB_STATUS_CHANGE", change, names) == {"status": "concluded", "id": "hda"}
    # Not a job of a disk libvirt named (another client's job), not a job event: as QEMU said.
    assert jobstats.job_event_data("BLOCK_JOB_READY", {"device": "mine"}, names) == {"device": "mine"}
    assert jobstats.job_event_data("BLOCK_EXPORT_DELETED", {"id": "virtio-disk0"}, names) == {"id": "virtio-disk0"}
