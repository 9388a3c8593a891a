"""Starting a migration from migtui, on a real QEMU pair whose destination waits on
``-incoming defer`` (the lab before ``migrate-incoming``): storage set up as libvirt does it
(NBD server and exports, nodes and mirrors, READY, then migrate), a clean switchover with the
disks identical as the guest wrote them; a start that fails midway leaves nothing behind;
and an abort of a storage migration deletes the source's NBD node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from qemu_util import disks_differ, qemu_io_reads, requires_qemu_img
from test_switchover import (
    LATE_LEN,
    PATTERN,
    PATTERN_AT,
    PATTERN_LEN,
    Sent,
    open_session,
    wait_state,
)

from migtui.errors import MonitorError
from migtui.lab.lab import Lab
from migtui.model.disks import parse_disks
from migtui.model.switchover import Outcome
from migtui.workflow.cancel import MigrationCancel
from migtui.workflow.launch import FAILED, MIRRORING, Launch
from migtui.workflow.session import MonitorSession
from migtui.workflow.start import Choices, offers, plan
from migtui.workflow.storage import CHANGE, write_blocking
from migtui.workflow.switchover import Switchovers

MiB = 1 << 20
DURING_AT = 7 * MiB  # written while the RAM copies, after the mirror is READY


@pytest.fixture
async def pair(storage_lab: Lab) -> AsyncIterator[tuple[Lab, MonitorSession, Sent, MonitorSession, Sent]]:
    """The lab left on -incoming defer, and a session with each of its monitors."""
    src, src_sent = await open_session(storage_lab.src.qmp_path, "src")
    dst, dst_sent = await open_session(storage_lab.dst.qmp_path, "dst")
    try:
        yield storage_lab, src, src_sent, dst, dst_sent
    finally:
        await asyncio.gather(src.stop(), dst.stop())


async def launch_for(src: MonitorSession, dst: MonitorSession, address: str = "",
                     parameters: dict[str, str] | None = None,
                     on_progress: Callable[[Launch], None] | None = None) -> Launch:
    found = {s.name: parse_disks(await s.execute("query-block")) for s in (src, dst)}
    target = next(t for t in offers(src, [src, dst], found) if t.name == "dst")
    assert target.address.endswith("/dst-from-src.migrate")  # picked beside the destination's monitor
    choices = Choices("dst", address, ("pause-before-switchover",), parameters or {}, ("data0",))
    return Launch(src, dst, plan("src", target, choices), on_progress=on_progress)


async def leftovers(lab: Lab, *, destination: bool = True) -> dict[str, Any]:
    """What a start may have left: block jobs and NBD nodes on the source, exports and the NBD
    server on the destination (a second nbd-server-stop is refused when none runs). Not the
    destination's after a cancelled migration: its QEMU exits then (it may be exiting now)."""
    src, dst = await lab.control(lab.src), await lab.control(lab.dst)
    named: Any = await src.execute("query-named-block-nodes", {"flat": True})
    nodes = [n["node-name"] for n in named if n["drv"] == "nbd"]
    found: dict[str, Any] = {"jobs": await src.execute("query-block-jobs"), "nbd nodes": nodes}
    if destination:
        found["exports"] = await dst.execute("query-block-exports")
        try:
            await dst.execute("nbd-server-stop")
            found["server"] = "was running"
        except Exception as err:  # QEMU's "NBD server not running" is the good answer
            found["server"] = str(err)
    return found


@pytest.mark.qemu
@requires_qemu_img
async def test_storage_start_completes_and_disks_match(pair) -> None:
    lab, src, src_sent, dst, dst_sent = pair
    await lab.write_pattern(lab.src, PATTERN_AT, PATTERN_LEN, PATTERN)  # before the mirror
    launch = await launch_for(src, dst, "", {"max-bandwidth": "1 GiB/s", "downtime-limit": "500 ms"})
    said = await launch.start()
    assert said == "src: migration to dst started"
    await lab.write_pattern(lab.src, DURING_AT, LATE_LEN, PATTERN)  # the guest writes while RAM copies
    await wait_state(src, lambda: src.state.in_pre_switchover, "pre-switchover", timeout=120)
    result = await Switchovers().for_pause(src, dst).resume()
    assert result.outcome is Outcome.COMPLETED, result.reason
    outcome = await launch.follow()
    assert outcome.ok, outcome.message
    assert outcome.message == "src: migration completed; NBD nodes and server removed"
    names = dst_sent.names()
    assert names.index("nbd-server-start") < names.index("block-export-add") < names.index("migrate-incoming")
    mirror = src_sent.names().index("blockdev-mirror")
    assert src_sent.names().index("blockdev-add") < mirror < src_sent.names().index("migrate")
    where = "channels" if dst.features.migrate_channels else "uri"
    assert where in next(args for name, args in src_sent.commands if name == "migrate")
    assert "nbd-server-stop" in dst_sent.names() and "blockdev-del" in src_sent.names()
    found = await leftovers(lab)
    assert found["jobs"] == [] and found["nbd nodes"] == []
    await asyncio.gather(src.stop(), dst.stop())
    await lab.stop()
    assert not disks_differ(lab), disks_differ(lab)
    for at, length in ((PATTERN_AT, PATTERN_LEN), (DURING_AT, LATE_LEN)):
        assert qemu_io_reads(lab.dst.disk_path, PATTERN, at, length)


@pytest.mark.qemu
async def test_a_start_refused_midway_leaves_nothing_behind(pair) -> None:
    """The destination refuses migrate-incoming once the mirrors are READY (it cannot listen
    where the operator said: a directory is there): every step before is undone."""
    lab, src, src_sent, dst, _dst_sent = pair
    busy = lab.directory / "busy"
    busy.mkdir()
    launch = await launch_for(src, dst, f"unix:{busy}", {"max-bandwidth": "1 GiB/s"})
    with pytest.raises(MonitorError) as err:
        await launch.start()
    line = str(err.value)
    assert line.startswith("dst: QEMU refused migrate-incoming") and "\n" not in line, line
    assert line.endswith("; nothing left set up"), line
    assert "blockdev-mirror" in src_sent.names() and "migrate" not in src_sent.names()
    found = await leftovers(lab)
    assert found == {"jobs": [], "nbd nodes": [], "exports": [], "server": found["server"]}
    assert "not running" in found["server"], found
    caps = {c["capability"]: c["state"] for c in await (await lab.control(lab.src)).execute(
        "query-migrate-capabilities")}
    assert caps["pause-before-switchover"] is False  # set back as it was
    params = await (await lab.control(lab.src)).execute("query-migrate-parameters")
    assert params["max-bandwidth"] == 128 * MiB


@pytest.mark.qemu
async def test_a_bad_address_fails_before_any_mirror(pair) -> None:
    lab, src, src_sent, dst, dst_sent = pair
    launch = await launch_for(src, dst, address="unix:/nonexistent-directory/in.sock")
    with pytest.raises(MonitorError) as err:
        await launch.start()
    assert str(err.value).startswith("dst: QEMU refused nbd-server-start (NBD server on unix:/nonexistent"), err.value
    assert "blockdev-add" not in src_sent.names() and "block-export-add" not in dst_sent.names()
    found = await leftovers(lab)
    assert found["jobs"] == [] and found["nbd nodes"] == [] and found["exports"] == []


@pytest.mark.qemu
async def test_an_abort_deletes_the_nbd_node_as_libvirt_does(pair) -> None:
    lab, src, src_sent, _dst, _ = pair
    await lab.prepare(storage=True, pause=False, max_bandwidth=1 * MiB)  # 1 MiB/s: stays active
    await lab.migrate()
    await wait_state(src, lambda: src.state.migration_status == "active", "active")
    result = await MigrationCancel(src).run()
    assert result.ok and result.nodes == ("data0-target",), result.message
    assert "NBD node data0-target deleted" in result.message
    assert ("blockdev-del", {"node-name": "data0-target"}) in src_sent.mutating()
    assert (await leftovers(lab, destination=False))["nbd nodes"] == []


@pytest.mark.qemu
async def test_a_start_stopped_while_its_mirrors_copy_is_undone(pair) -> None:
    """x while the mirrors copy (the engine cancels the start's task): the set-up goes."""
    lab, src, src_sent, dst, _ = pair
    task: asyncio.Task[str] | None = None

    def progress(launch: Launch) -> None:
        if launch.phase == MIRRORING and task is not None:
            task.cancel()

    launch = await launch_for(src, dst, on_progress=progress)
    task = asyncio.get_running_loop().create_task(launch.start())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert launch.phase == FAILED and "blockdev-mirror" in src_sent.names() and "migrate" not in src_sent.names()
    found = await leftovers(lab)
    assert found["jobs"] == [] and found["nbd nodes"] == [] and found["exports"] == []
    assert "not running" in found["server"], found


@pytest.mark.qemu
async def test_write_blocking_where_qemu_has_block_job_change(pair) -> None:
    lab, src, src_sent, dst, _ = pair
    launch = await launch_for(src, dst, "", {"max-bandwidth": "1 MiB/s"})  # RAM copies slowly: time to switch
    await launch.start()
    if not src.supports(CHANGE):  # QEMU before 8.2: the engine says so instead of offering it
        with pytest.raises(MonitorError, match="block-job-change"):
            await write_blocking(src, "migtui-mirror-data0")
    else:
        await write_blocking(src, "migtui-mirror-data0")
        assert ("block-job-change", {"id": "migtui-mirror-data0", "type": "mirror", "copy-mode": "write-blocking"}) \
            in src_sent.mutating()
        await wait_state(src, lambda: any(j.actively_synced for j in src.state.block_jobs.values()),
                         "the mirror actively synced")
    await MigrationCancel(src).run()
    outcome = await launch.follow()
    assert not outcome.ok and outcome.message.startswith("src: migration cancelled"), outcome.message
    assert (await leftovers(lab, destination=False))["nbd nodes"] == []


@pytest.mark.qemu
async def test_a_mirror_that_fails_during_the_migration_stops_it(pair) -> None:
    """The destination's NBD server goes while RAM copies; the guest's next write fails the
    mirror: migtui cancels the migration (as libvirt does), the source runs on."""
    lab, src, src_sent, _dst, _ = pair
    launch = await launch_for(src, _dst, "", {"max-bandwidth": "1 MiB/s"})
    await launch.start()
    await (await lab.control(lab.dst)).execute("nbd-server-stop")
    await lab.write_pattern(lab.src, DURING_AT, LATE_LEN, PATTERN)  # the mirror copies it: to nowhere
    outcome = await launch.follow()
    assert not outcome.ok and outcome.message.startswith("src: mirror migtui-mirror-data0 "), outcome.message
    assert "migration stopped (cancelled)" in outcome.message, outcome.message
    assert "migrate_cancel" in src_sent.names()
    assert src.state.run_state is not None and src.state.run_state.running
    assert (await leftovers(lab, destination=False))["nbd nodes"] == []
