"""The lab against real QEMU: start, plain and storage migration, no orphans."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import until
from qemu.qmp import EventListener, QMPClient

from migtui.errors import LabError
from migtui.lab import qemu as lab_qemu
from migtui.lab.lab import MIRROR_JOB, Lab, LabVm

pytestmark = pytest.mark.qemu
MiB = 1 << 20


async def serial_grows(lab: Lab, vm: LabVm) -> None:
    before = lab.serial_size(vm)
    await until(lambda: lab.serial_size(vm) > before, 30, f"{vm.name} serial output to grow")


async def next_event(listener: EventListener, name: str, timeout: float = 30.0, **data: Any) -> Any:
    """The next event called name whose data has the given items."""
    async def find() -> Any:
        async for event in listener:
            found: Any = event  # JSON
            if found["event"] == name and all(found["data"].get(k) == v for k, v in data.items()):
                return found
        raise AssertionError("listener closed")
    return await asyncio.wait_for(find(), timeout)


async def status_on(path: Path) -> Any:
    """query-status over a fresh connection (as the dashboard would connect)."""
    client = QMPClient("test")
    await client.connect(str(path))
    try:
        return await client.execute("query-status")
    finally:
        await client.disconnect()


async def test_lab_starts_a_running_source_and_a_waiting_destination(lab: Lab) -> None:
    await serial_grows(lab, lab.src)
    assert (await status_on(lab.src.qmp_path))["status"] == "running"
    assert (await status_on(lab.dst.qmp_path))["status"] == "inmigrate"
    assert lab.accel in ("kvm", "tcg")
    assert lab.directory.stat().st_mode & 0o777 == 0o700
    assert lab.migration_uri.startswith("unix:")


async def test_plain_migration_completes(lab: Lab) -> None:
    src = await lab.control(lab.src)
    dst = await lab.control(lab.dst)
    await lab.prepare(storage=False, pause=False)
    with src.listen(listener := EventListener("MIGRATION")):
        await lab.migrate()
        await next_event(listener, "MIGRATION", status="completed")
    info: Any = await src.execute("query-migrate")
    assert info["status"] == "completed"
    await until(lambda: _running(dst), 30, "the destination to run")
    await serial_grows(lab, lab.dst)


async def _running(client: QMPClient) -> bool:
    status: Any = await client.execute("query-status")
    return status["status"] == "running"


async def test_storage_migration_pauses_and_copies_the_disk() -> None:
    directory = Path(tempfile.mkdtemp(prefix="migtui-test-"))  # short: unix socket paths
    lab = Lab(memory_mib=64, dirty_mib=4, disk_mib=16, directory=directory, keep_files=True)
    try:
        async with lab:
            await lab.write_pattern(lab.src, 1 * MiB, 64 * 1024, 0x5A)  # before the mirror
            await lab.prepare(storage=True, pause=True)
            await lab.write_pattern(lab.src, 4 * MiB, 64 * 1024, 0xA5)  # mirrored as written
            src = await lab.control(lab.src)
            with src.listen(listener := EventListener()):
                await lab.migrate()
                await next_event(listener, "MIGRATION", status="pre-switchover")
                info: Any = await src.execute("query-migrate")
                assert info["status"] == "pre-switchover"
                await src.execute("block-job-cancel", {"device": MIRROR_JOB})  # graceful, not force
                await next_event(listener, "BLOCK_JOB_COMPLETED", device=MIRROR_JOB)
                await src.execute("migrate-continue", {"state": "pre-switchover"})
                await next_event(listener, "MIGRATION", status="completed")
            dst = await lab.control(lab.dst)
            await until(lambda: _running(dst), 30, "the destination to run")
        # Both QEMUs have quit: their images are closed and must be identical.
        assert lab.src.disk_path and lab.dst.disk_path
        compare = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2",
                                  str(lab.src.disk_path), str(lab.dst.disk_path)],
                                 capture_output=True, text=True)
        assert compare.returncode == 0, compare.stdout + compare.stderr
        assert "identical" in compare.stdout
        for offset, byte in ((1 * MiB, 0x5A), (4 * MiB, 0xA5)):
            check = subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"read -P {byte:#x} {offset} 64k",
                                    str(lab.dst.disk_path)], capture_output=True, text=True)
            assert "verification failed" not in check.stdout + check.stderr and check.returncode == 0, check.stdout
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_paced_guest_dirties_at_the_requested_rate() -> None:
    rate, seconds = 4.0, 1.0
    async with Lab(memory_mib=32, dirty_mib=8, dirty_rate_mib_s=rate, disk=False) as lab:
        client = await lab.control(lab.src)
        dumps = [lab.directory / "a.bin", lab.directory / "b.bin"]
        t0 = time.monotonic()
        await client.execute("pmemsave", {"val": 1 * MiB, "size": 8 * MiB, "filename": str(dumps[0])})
        await asyncio.sleep(seconds)  # the quantity measured is a rate over time
        await client.execute("pmemsave", {"val": 1 * MiB, "size": 8 * MiB, "filename": str(dumps[1])})
        elapsed = time.monotonic() - t0
        before, after = (d.read_bytes() for d in dumps)
    # One byte per page counts that page's visits (under 256 in a second at this rate).
    visits = sum((after[i] - before[i]) & 0xFF for i in range(0, len(before), 4096))
    measured = visits * 4096 / MiB / elapsed
    # Never faster than asked; a busy host slows TCG, so no lower bound beyond "it dirtied".
    assert visits > 0, "the guest dirtied no page"
    assert measured < 1.3 * rate, f"{measured:.2f} MiB/s for {rate} requested"


async def test_no_page_of_the_guests_range_is_ever_all_zero_again() -> None:
    """Each page counts its visits in a dword: a byte counter wrapped to 0 every 256 sweeps and
    left its page all zero, which QEMU sends as a zero page for next to nothing, and the stuck
    scenario converged after ~8m30s (guest.S). Unpaced, 256 sweeps of 1 MiB pass in moments."""
    async with Lab(memory_mib=32, dirty_mib=1, dirty_rate_mib_s=0, disk=False) as lab:
        client = await lab.control(lab.src)
        dump = lab.directory / "range.bin"

        async def first_page_visits() -> int:
            await client.execute("pmemsave", {"val": 1 * MiB, "size": 1 * MiB, "filename": str(dump)})
            return int.from_bytes(dump.read_bytes()[:4], "little")

        while await first_page_visits() <= 256:  # a byte counter never gets there (the timeout ends it)
            await asyncio.sleep(0.05)
        pages = dump.read_bytes()
    assert all(any(pages[i:i + 4096]) for i in range(0, len(pages), 4096))


async def test_qemu_exiting_at_start_shows_its_last_stderr_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = lab_qemu.qemu_argv
    monkeypatch.setattr(lab_qemu, "qemu_argv", lambda *a, **k: [*real(*a, **k), "-device", "no-such-device"])
    lab = Lab(memory_mib=32, dirty_mib=2, disk=False)
    with pytest.raises(LabError, match="no-such-device") as info:
        await lab.start()
    assert "exited" in str(info.value) and "\n" not in str(info.value)
    assert not lab.directory.exists()


async def test_missing_qemu_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lab_qemu.QEMU_ENV)
    monkeypatch.setattr(shutil, "which", lambda name: None)  # what migtui.lab.qemu looks QEMU up with
    with pytest.raises(LabError, match="apt-get install -y qemu-system-x86 qemu-utils"):
        await Lab().start()


# -- the `migtui lab` command as a person runs it ----------------------------------


class LabCommand:
    """`python -m migtui lab ...` with its stdout read line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "migtui", "lab", *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 90.0) -> re.Match[str]:
        """The first line matching ``pattern``. The limit is a backstop: most lines come after
        the lab's boot, which under this machine's nested KVM took 7-24 s on a busy machine
        (20 s was reached: SeaBIOS runs emulated instruction by instruction there)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.output:
                if match := re.search(pattern, line):
                    return match
            try:
                self.output.append(self.lines.get(timeout=max(deadline - time.monotonic(), 0.01)))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.output)}") from None

    def watch_command(self) -> str:
        """The printed watch command, its continuation lines joined as a shell joins them."""
        self.wait_for(r"^\s+'?dst=")
        start = next(i for i, line in enumerate(self.output) if line.startswith("watch:"))
        lines: list[str] = []
        for line in self.output[start:]:
            lines.append(line.rstrip("\n").removeprefix("watch:").strip().removesuffix("\\").strip())
            if not line.rstrip().endswith("\\"):
                break
        return " ".join(lines)

    def qemu_pids(self) -> list[int]:
        return [int(self.wait_for(rf"{role}\s+pid (\d+)").group(1)) for role in ("source", "destination")]


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for init counts: it runs nothing any more)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"QEMU still running: {[p for p in pids if not _gone(p)]}"
        time.sleep(0.02)


def test_lab_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    lab = LabCommand("--dir", str(directory), "--no-disk")
    try:
        assert re.fullmatch(r"\S+ -m migtui src=\S+/src\.qmp dst=\S+/dst\.qmp", lab.watch_command())
        lab.wait_for(rf"kill -USR1 {lab.proc.pid}")
        pids = lab.qemu_pids()
        assert (directory / "src.qmp").exists() and (directory / "dst.qmp").exists()
        lab.proc.send_signal(signal.SIGTERM)
        assert lab.proc.wait(timeout=20) == 0
        _wait_gone(pids, timeout=1)
        assert not directory.exists()
        lab.wait_for("stopping")
        assert "Traceback" not in "".join(lab.output)
    finally:
        _kill(lab.proc)


def test_lab_command_starts_the_migration_on_sigusr1(qemu_build: Any) -> None:
    # --qemu names the build (the suite's $MIGTUI_QEMU is the same): the banner says which ran.
    lab = LabCommand("--dirty", "2", "--memory", "32", "--no-disk", "--qemu", qemu_build.path)
    try:
        lab.wait_for(rf"^\s+qemu\s+{re.escape(qemu_build.version)} \({re.escape(qemu_build.path)}\)")
        lab.wait_for(r"^watch:")
        lab.proc.send_signal(signal.SIGUSR1)
        lab.wait_for(r"source: migration completed")
        lab.wait_for(r"destination: guest running")
        lab.proc.send_signal(signal.SIGINT)
        assert lab.proc.wait(timeout=20) == 130  # Ctrl+C: as every migtui command
    finally:
        _kill(lab.proc)


def test_lab_paths_with_spaces_and_quotes_work_and_its_watch_line_runs() -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="mt-", dir="/tmp"))  # short: sockets live in it
    odd = tmp_path / "it's a \"lab\" $HOME; rm -rf x"
    lab = LabCommand("--no-disk", "--memory", "32", "--dirty", "2", "--dir", str(odd))
    try:
        watch = lab.watch_command()
        argv = shlex.split(watch)  # the printed command, as a shell would read it
        assert argv[-2:] == [f"src={odd}/src.qmp", f"dst={odd}/dst.qmp"]
        status = subprocess.run([sys.executable, "-m", "migtui", "status", *argv[-2:]],
                                capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        assert not (tmp_path / "x").exists() and "rm -rf" in str(odd)  # nothing reached a shell
    finally:
        lab.proc.send_signal(signal.SIGINT)
        lab.proc.wait(timeout=20)
        _kill(lab.proc)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_nothing_in_the_project_runs_a_shell() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("migtui/**/*.py"), *root.glob("bench/*.py"), *root.glob("tests/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        for bad in ("shell=True", "os.system(", "os.popen(", "create_subprocess_shell("):
            if bad in text and path.name != "test_lab.py":
                offenders.append(f"{path.relative_to(root)}: {bad}")
    assert not offenders, offenders


async def test_an_abort_does_not_take_the_lab_down(tmp_path: Path) -> None:
    # Issue 9: the destination exits after a cancelled incoming migration (QEMU does); the
    # lab used to treat that as fatal and stop the source under the operator's abort.
    lab = LabCommand("--scenario", "storage", "--bandwidth", "1000", "--memory", "64", "--dirty", "4",
                     "--disk-size", "16", "--start", "--dir", str(tmp_path / "lab"))
    try:
        lab.wait_for(r"source: migration pre-switchover")
        src_pid = lab.qemu_pids()[0]
        client = QMPClient("abort")
        await client.connect(str(tmp_path / "lab" / "src.qmp"))  # the dashboard's socket, as migtui would
        try:
            await client.execute("migrate_cancel")
        finally:
            await client.disconnect()
        lab.wait_for(r"source: guest running")
        lab.wait_for(r"destination QEMU exited after the migration ended without it")
        assert lab.proc.poll() is None and not _gone(src_pid)  # the lab and its source guest run on
        assert not any("exited unexpectedly" in line for line in lab.output)
        lab.proc.send_signal(signal.SIGINT)
        assert lab.proc.wait(timeout=20) == 130  # Ctrl+C: as every migtui command
    finally:
        _kill(lab.proc)


def test_qemus_die_with_a_sigkilled_lab(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    lab = LabCommand("--dir", str(directory), "--no-disk")
    try:
        lab.wait_for(r"^watch:")
        pids = lab.qemu_pids()
        lab.proc.kill()
        lab.proc.wait(timeout=10)
        _wait_gone(pids)  # PR_SET_PDEATHSIG
    finally:
        _kill(lab.proc)
        shutil.rmtree(directory, ignore_errors=True)


def test_lab_command_without_qemu_says_how_to_install_it() -> None:
    env = dict(os.environ, PATH="/nonexistent")
    env.pop(lab_qemu.QEMU_ENV, None)
    result = subprocess.run([sys.executable, "-m", "migtui", "lab"], capture_output=True, text=True, env=env,
                            timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "apt-get install -y qemu-system-x86 qemu-utils" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_lab_command_with_a_bad_qemu_path_is_a_one_line_error(tmp_path: Path) -> None:
    for bad in (tmp_path / "no-such-qemu", tmp_path):  # missing, and not an executable file
        result = subprocess.run([sys.executable, "-m", "migtui", "lab", "--qemu", str(bad)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 1
        assert result.stderr == f"migtui lab: --qemu {bad}: no such executable; give the path of a qemu-system-x86_64\n"


def test_lab_command_rejects_a_range_beyond_memory() -> None:
    result = subprocess.run([sys.executable, "-m", "migtui", "lab", "--memory", "64", "--dirty", "64"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith("migtui lab: dirty range 1-65 MiB does not fit in --memory 64 MiB")
    assert result.stderr.strip().count("\n") == 0


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
