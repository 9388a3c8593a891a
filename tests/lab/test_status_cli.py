"""`migtui status` as scripts use it: the real CLI in a subprocess, against real QEMU."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import until
from engine_util import EngineProcess, attached, short_runtime_dir, watch

from migtui.lab.lab import MIRROR_JOB, Lab

pytestmark = pytest.mark.qemu

MiB = 1024 * 1024


def status(*monitors: str, timeout: float = 3.0) -> tuple[int, Any, str]:
    """The exit code, the JSON printed (None: nothing) and stderr of `migtui status --json`."""
    proc = subprocess.run(
        [sys.executable, "-m", "migtui", "status", "--json", "--timeout", str(timeout), *monitors],
        capture_output=True, text=True, timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, data, proc.stderr


async def astatus(*monitors: str) -> tuple[int, Any, str]:
    return await asyncio.to_thread(status, *monitors)


def by_name(data: Any) -> dict[str, Any]:
    return {m["name"]: m for m in data["monitors"]}


@pytest.mark.parametrize("arg", ["", "h:99999", "::1:44", "tcp:", "x=", "bad name=/x.qmp"])
def test_malformed_monitor_is_usage_error(arg: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "migtui", "status", arg],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("migtui status:"), proc.stderr
    assert proc.stdout == ""


def test_no_monitor_is_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "migtui", "status"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


async def test_bad_addresses_do_not_hide_the_live_one(tmp_path: Path) -> None:
    regular = tmp_path / "file.qmp"
    regular.write_text("not a socket")
    stale = tmp_path / "stale.qmp"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # the file stays, nobody listens: connection refused
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    async with Lab(memory_mib=32, dirty_mib=2, disk=False) as lab:
        code, data, err = await astatus(
            f"live={lab.src.qmp_path}",
            f"missing={tmp_path / 'nope.qmp'}",
            f"file={regular}",
            f"refused={stale}",
            f"tcp=127.0.0.1:{free_port}",
        )
    assert code == 1
    mons = by_name(data)
    assert mons["live"]["ok"] and mons["live"]["error"] is None
    assert mons["live"]["run_state"] == "running"
    assert mons["live"]["migration"]["status"] == "none"
    expected = {"missing": "no such", "file": "not a socket", "refused": "refused", "tcp": "refused"}
    for name, words in expected.items():
        assert mons[name]["ok"] is False
        assert words in mons[name]["error"].lower(), mons[name]["error"]
        assert "\n" not in mons[name]["error"]
    # One stderr line per dead monitor, naming it.
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(any(f" {n}:" in line for n in expected) for line in lines), err


async def test_human_table(tmp_path: Path) -> None:
    async with Lab(memory_mib=32, dirty_mib=2, disk=False) as lab:
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "migtui", "status", str(lab.src.qmp_path)],
            capture_output=True, text=True, timeout=30)
        # Its reader gone before it writes (`migtui status --json | head -c 300`): no traceback.
        read, write = os.pipe()
        os.close(read)
        try:
            piped = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "migtui", "status", "--json", str(lab.src.qmp_path)],
                stdout=write, stderr=subprocess.PIPE, text=True, timeout=30)
        finally:
            os.close(write)
    assert piped.returncode == 128 + signal.SIGPIPE and piped.stderr == "", piped.stderr
    assert proc.returncode == 0, proc.stderr
    header, row, *_ = proc.stdout.strip().splitlines()
    assert header.split()[:4] == ["NAME", "QEMU", "RUN", "MIGRATION"]
    assert all(len(line) <= 80 for line in proc.stdout.splitlines()), proc.stdout
    assert row.split()[:4] == ["src", row.split()[1], "running", "none"]


async def wait_status(addr: str, wanted: set[str], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        code, data, err = await astatus(addr)
        assert code == 0, err
        mon = data["monitors"][0]
        seen.append(mon["migration"]["status"])
        if mon["migration"]["status"] in wanted:
            return mon
        await asyncio.sleep(0.1)
    raise AssertionError(f"never reached {wanted}; saw {seen}")


async def test_storage_migration_life_cycle() -> None:
    async with Lab(memory_mib=64, dirty_mib=8, disk_mib=16, dirty_rate_mib_s=2) as lab:
        src, dst = f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"
        await lab.prepare(storage=True, pause=True, max_bandwidth=8 * MiB)

        code, data, _ = await astatus(src, dst)
        assert code == 0
        mons = by_name(data)
        assert mons["src"]["migration"]["status"] == "none"
        assert mons["src"]["capabilities"]["pause-before-switchover"] is True
        assert mons["dst"]["run_state"] == "inmigrate"
        jobs = mons["src"]["block_jobs"]
        assert [j["device"] for j in jobs] == [MIRROR_JOB]
        assert jobs[0]["ready"] is True and jobs[0]["type"] == "mirror"
        assert jobs[0]["offset"] == jobs[0]["len"]

        await lab.migrate()
        # A loaded machine's `migtui status` can take seconds: the copy may be over by the next one.
        active = await wait_status(src, {"active", "pre-switchover"})
        assert active["migration"]["ram_total_bytes"] > 0
        assert active["migration"]["raw"]["status"] == active["migration"]["status"]

        paused = await wait_status(src, {"pre-switchover"})
        assert paused["run_state"] in ("finish-migrate", "paused")
        assert paused["pause"]["no_deadline"] == "no migtui engine watches this monitor"
        table = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "migtui", "status", src],
                                        capture_output=True, text=True, timeout=60)
        # The table says it too: nothing bounds this pause (the guest is stopped meanwhile).
        assert "paused before switchover since when unknown; no deadline: no migtui engine watches this monitor" \
            in " ".join(table.stdout.split()), table.stdout
        code, data, _ = await astatus(dst)
        assert data["monitors"][0]["migration"]["status"] in ("active", "setup")

        client = await lab.control(lab.src)
        await client.execute("block-job-cancel", {"device": MIRROR_JOB})
        async def mirror_gone() -> bool:
            return not await client.execute("query-block-jobs")

        await until(mirror_gone, 90, "the mirror to finish")
        await client.execute("migrate-continue", {"state": "pre-switchover"})

        done = await wait_status(src, {"completed"})
        assert done["migration"]["downtime_ms"] is not None
        assert done["run_state"] == "postmigrate"
        code, data, _ = await astatus(dst)
        dest = data["monitors"][0]
        async def destination_runs() -> bool:
            nonlocal dest
            dest = (await astatus(dst))[1]["monitors"][0]
            return dest["run_state"] == "running"

        await until(destination_runs, 90, "the destination to run", lambda: str(dest))
        assert dest["migration"]["status"] == "completed"


async def test_monitor_held_by_another_client_says_so() -> None:
    from qemu.qmp import QMPClient

    async with Lab(memory_mib=32, dirty_mib=2, disk=False) as lab:
        holder = QMPClient("holder")
        await holder.connect(str(lab.src.qmp_path))
        try:
            code, data, err = await asyncio.to_thread(status, f"src={lab.src.qmp_path}", timeout=1.0)
        finally:
            await holder.disconnect()
    assert code == 1
    error = data["monitors"][0]["error"]
    assert "another client" in error and "\n" not in error, error
    assert err.strip().count("\n") == 0


def test_human_ram_figures_are_the_dashboards() -> None:
    """RAM: what is left of the guest's RAM and the progress from it, as the dashboard's
    migration panel shows them; "sent" apart, because it counts re-sent pages."""
    from migtui.address import parse_address
    from migtui.commands.status import render_table
    from migtui.model.migration import MigrationInfo
    from migtui.tui.widgets.migration_panel import ram_fields
    from migtui.workflow.status import Snapshot

    info = MigrationInfo.from_qmp({"status": "active", "ram": {
        "transferred": int(209.1 * MiB), "remaining": int(3.1 * MiB), "total": int(128.5 * MiB)}})
    snap = Snapshot(parse_address("src=/run/vm.qmp"), qemu="7.2.22", run_state="running", migration=info)
    _, row, ram_line = render_table([snap]).splitlines()
    assert ram_line.startswith("  RAM ")
    ram = ram_line.removeprefix("  RAM ")
    assert ram == "97.6% · left 3.1 of 128.5 MiB · sent 209 MiB"
    assert "209.1 MiB/128.5 MiB" not in row  # transferred/total: more than the whole RAM
    left, sent = (field.plain for field in ram_fields(info) if field is not None)  # no zero pages said
    assert " ".join(left.split()) in ram and " ".join(sent.split()) in ram


async def test_a_monitor_held_by_a_frozen_or_refused_engine_is_blamed_on_the_engine(lab: Lab) -> None:
    """Issue 14.5: the engine holds the monitor (QEMU serves one client) but cannot be asked
    -- it is stopped, or its directory is open to others and migtui refuses it: status says
    so, not that 'another client' holds the monitor."""
    engine = EngineProcess(short_runtime_dir()).start()
    try:
        async with attached(engine.directory) as view:
            (src,) = await watch(view, [f"src={lab.src.qmp_path}"])
            await until(lambda: src.connected and src.polls, 15, "the engine holds the monitor")
        argv = [sys.executable, "-m", "migtui", "status", "--json", "--timeout", "2", "--runtime-dir",
                str(engine.directory), f"src={lab.src.qmp_path}"]
        os.kill(engine.pid, signal.SIGSTOP)
        try:
            frozen = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=120)
        finally:
            os.kill(engine.pid, signal.SIGCONT)
        assert frozen.returncode == 1 and "Traceback" not in frozen.stderr, frozen
        error = json.loads(frozen.stdout)["monitors"][0]["error"]
        assert error.startswith("src: no QMP greeting: the monitor is held, most likely by the migtui engine,"
                                " which could not be asked: "), error
        assert f"(pid {engine.pid}) is stopped" in error and "another client" not in error, error
        assert frozen.stderr == f"migtui status: {error}\n"
        os.chmod(engine.directory, 0o755)
        try:
            refused = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=120)
        finally:
            os.chmod(engine.directory, 0o700)
        assert refused.returncode == 1, refused
        error = json.loads(refused.stdout)["monitors"][0]["error"]
        assert "most likely by the migtui engine, which could not be asked: runtime directory" in error, error
        assert "is open to other users" in error and "another client" not in error, error
        answered = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=120)
        assert answered.returncode == 0 and json.loads(answered.stdout)["monitors"][0]["ok"], answered
    finally:
        engine.cleanup()
