"""migtui on libvirt's own API (issue 15): two real libvirt 9.0 daemons as two hosts.

tests/libvirt_lab.py builds hosts A and B on this machine; the test drives migrations
with ``virsh migrate`` and an engine in this process watches both hosts through
``-c URI`` connections (libvirt-python): every running domain is a monitor named
``HOST/DOMAIN``, fed by jobStats(), libvirt's events and QEMU's events through libvirt.
Its figures are compared with ``virsh domjobinfo --completed``.

These tests are about libvirt, not about QEMU versions: they run once, on the system
QEMU (7.2), not on every build of the suite. Needs root, libvirt and libvirt-python
(scripts/bootstrap installs them); when one is missing the test fails with the line
that says what to install.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import until
from engine_util import short_runtime_dir
from libvirt_lab import LibvirtLab, clear_hosts, lab_hosts
from tmux_util import Tmux
from view_util import main_text

from migtui.engine.engine import Engine, Watched
from migtui.errors import MigtuiError
from migtui.format import format_ms
from migtui.workflow.pairing import destination_for
from migtui.workflow.policy import Policy

pytestmark = [pytest.mark.timeout(180)]

GUEST = "migtui-lv"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hosts() -> Iterator[LibvirtLab]:
    """The two hosts, shared by this module's tests (a daemon's first start probes QEMU
    for seconds); each test's guest is destroyed after it (``lab``)."""
    yield from lab_hosts()


@pytest.fixture
def lab(hosts: LibvirtLab) -> Iterator[LibvirtLab]:
    yield hosts
    clear_hosts(hosts)


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    e = Engine(persist=True)
    try:
        yield e
    finally:
        await e.stop()


def domjobinfo(text: str) -> dict[str, str]:
    """``virsh domjobinfo`` as {field: value with its unit}."""
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)}


def number(text: str) -> float:
    match = re.match(r"([0-9.]+)", text)
    assert match is not None, text
    return float(match.group(1))


def completed_job(host: Any) -> str:
    """``virsh domjobinfo --completed`` of the guest, left for others (--keep-completed)."""
    return str(host.virsh("domjobinfo", "--completed", "--keep-completed", GUEST, check=False).stdout)


def size(text: str) -> float:
    """``705.155 KiB`` in bytes (virsh rounds to 3 decimals)."""
    unit = text.split()[-1]
    return number(text) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]


async def watched(engine: Engine, name: str) -> Watched:
    await until(lambda: name in engine.watched and engine.watched[name].session.connected, 30, f"{name} watched",
                lambda: f"watched: {sorted(engine.watched)}; hosts: {list(engine.libvirt.values())}")
    return engine.watched[name]


async def test_a_copy_storage_migration_seen_from_both_hosts(lab: LibvirtLab, engine: Engine) -> None:
    guest = lab.start_guest(GUEST, dirty_mib=4, disk_mib=16)
    engine.migrated_linger_s = 3600.0  # the migrated-away source's figures are read below, however slowly
    names = await engine.connect(lab.a.uri, "a", (), Policy(), read_only=False, interval=0.5)
    assert names == [f"a/{GUEST}"]
    assert await engine.connect(lab.b.uri, "b", (), Policy(), read_only=False, interval=0.5) == []
    src = await watched(engine, f"a/{GUEST}")
    await until(lambda: src.manager == "libvirt", 10, "the engine to know libvirt drives it", lambda: src.manager_why)
    await until(lambda: src.session.state.run_state is not None, 10, "the first poll",
                lambda: str(src.session.poll_error))
    assert src.session.state.run_state is not None and src.session.state.run_state.status == "running"
    assert src.address.display == f"libvirt:{GUEST}@{lab.a.uri}"

    pauses: list[Any] = []
    jobs: set[str] = set()  # every block job row the source ever had

    def on_change(session: Any, kinds: frozenset[str]) -> None:
        jobs.update(session.state.block_jobs)
        if src.last_pause is not None and src.last_pause.paused and not pauses:
            pauses.append(src.last_pause)

    src.session.add_change_listener(on_change)
    migrated = await asyncio.to_thread(lab.migrate, guest, timeout=90)
    assert migrated.returncode == 0, f"virsh migrate failed: {migrated.stderr.strip()}"

    # The destination appeared by itself on host b and is paired by its UUID.
    dst = await watched(engine, f"b/{GUEST}")
    assert destination_for(src.session, engine.sessions()) is dst.session
    # The source left by migration: its entry stays, said gone, nothing live.
    await until(lambda: src.session.status.word() == "gone", 30, "the source gone",
                lambda: src.session.status.label())
    assert "migrated away" in src.session.status.label(), src.session.status.label()

    # libvirt's pause, measured from QEMU's own events and attributed to libvirt.
    state = src.session.state
    assert any(c.status == "pre-switchover" and c.source == "event" for c in state.status_changes), \
        [(c.status, c.source) for c in state.status_changes]
    tracked = src.tracked
    assert tracked is not None and tracked.pause_ms is not None and tracked.pause_ms > 0, tracked
    assert tracked.action is None, f"the engine acted: {tracked.action}"
    await until(lambda: tracked.result is not None, 15, "the pause's outcome")
    assert tracked.result is not None and "libvirt resumed it" in tracked.result.reason, tracked.result
    assert pauses and pauses[0].owner == "libvirt" and not pauses[0].auto and pauses[0].deadline is None, pauses

    # The final figures: libvirt's JOB_COMPLETED on the source, what virsh says on the destination.
    await until(lambda: state.migration.status == "completed" and state.migration.downtime is not None, 30,
                "the source's final figures", lambda: str(state.migration))
    info = domjobinfo(completed_job(lab.b))
    final = state.migration
    assert final.downtime == number(info["Total downtime"]), (final, info)
    # The source's own JOB_COMPLETED counts libvirt's confirm step too: a little longer than the destination's.
    assert final.total_time is not None and final.total_time >= number(info["Time elapsed"]), (final, info)
    # `migtui status --json -c URI` of the source's host, from this engine: the same figures.
    [held] = engine.status_json([lab.a.uri])
    assert held is not None and held["uri"] == lab.a.uri
    [snap] = held["domains"]
    assert (snap["source"], snap["uri"], snap["domain"], snap["gone"]) == \
        ("libvirt", lab.a.uri, GUEST, f"a/{GUEST}: migrated away"), snap
    assert snap["migration"]["downtime_ms"] == number(info["Total downtime"]), snap["migration"]
    await until(lambda: dst.session.state.migration.total_time == number(info["Time elapsed"]), 30,
                "the destination's figures", lambda: f"{dst.session.state.migration} {info}")
    dst_final = dst.session.state.migration
    assert dst_final.downtime == number(info["Total downtime"]), (dst_final, info)
    assert dst_final.total_time == number(info["Time elapsed"]), (dst_final, info)
    assert dst_final.ram is not None and dst_final.ram.total is not None and dst_final.ram.transferred is not None
    assert abs(dst_final.ram.total - size(info["Memory total"])) < 0.001 * dst_final.ram.total, (dst_final.ram, info)
    assert abs(dst_final.ram.transferred - size(info["Memory processed"])) < 1024, (dst_final.ram, info)
    assert final.disk is not None and final.disk["transferred"] == 16 * 2**20 + 2**20, final.disk  # both disks
    # One row per mirror, named by its disk as blockJobInfo() and the operator name it
    # (QEMU's events say drive-virtio-disk0: renamed, not a second row).
    assert jobs == {"hda", "vda"}, jobs


class View:
    """The engine's side of an attached view, as ``Engine.request`` sees it (server.View)."""

    def __init__(self, read_only: bool = False) -> None:
        self.label, self.read_only, self.subscribed = "test view", read_only, False

    def send(self, message: Any) -> None:
        pass


async def test_abort_through_libvirt_leaves_the_source_running_and_read_only_refuses(lab: LibvirtLab,
                                                                                    engine: Engine) -> None:
    guest = lab.start_guest(GUEST, dirty_mib=64, disk_mib=16)
    name = f"a/{GUEST}"
    await engine.connect(lab.a.uri, "a", (GUEST,), Policy(), read_only=False, interval=0.5)
    watcher = Engine(persist=True)  # a second, read-only one (migtui --read-only -c URI)
    try:
        await watcher.connect(lab.a.uri, "a", ("migtui-*",), Policy(), read_only=True, interval=0.5)
        src, ro = await watched(engine, name), await watched(watcher, name)
        # Tuning and measuring are libvirt's calls too (what it has no call for is refused, saying so).
        await src.session.execute("migrate-set-parameters", {"downtime-limit": 500, "max-bandwidth": 64 << 20})
        assert lab.a.virsh("migrate-getmaxdowntime", GUEST).stdout.strip() == "500"
        assert lab.a.virsh("migrate-getspeed", GUEST).stdout.strip() == "64"
        with pytest.raises(MigtuiError, match="libvirt sets no cpu-throttle-initial"):
            await src.session.execute("migrate-set-parameters", {"cpu-throttle-initial": 30})
        measured = await src.session.measure_dirty_rate(1)
        assert measured.measured and measured.dirty_rate_mib_per_s is not None, measured
        # 1 MiB/s: the migration is still running when migtui aborts it.
        migrating = asyncio.create_task(asyncio.to_thread(
            lab.a.virsh, "migrate", "--live", "--p2p", "--copy-storage-all", GUEST, lab.b.uri, "--migrateuri",
            "tcp://127.0.0.1", "--listen-address", "127.0.0.1", "--bandwidth", "1", "--xml", str(guest.dest_xml),
            timeout=120, check=False))
        await until(lambda: src.session.state.migration_status == "active", 30, "the migration to run",
                    lambda: src.session.state.migration_status)
        await until(lambda: ro.session.state.migration_status == "active", 30, "the read-only view of it")

        # Read-only: every control refused, below the views and by libvirt's read-only connection.
        controls = ro.last_controls
        assert controls is not None and controls.actions["abort"].allowed is not True, controls
        assert "read-only" in controls.actions["abort"].reason, controls.actions["abort"]
        assert not (await watcher.request(View(), "abort", name)).ok
        with pytest.raises(MigtuiError, match="read-only"):
            await ro.session.execute("migrate_cancel")
        assert (await watcher.request(View(), "arm", name)).ok is False

        # The abort: libvirt's abortJob, confirmed by the engine; the source keeps running.
        await until(lambda: src.last_controls is not None and src.last_controls.actions["abort"].allowed is True,
                    15, "abort offered", lambda: str(src.last_controls))
        offered = src.last_controls
        assert offered is not None and "abortJob" in offered.actions["abort"].does, offered
        reply = await engine.request(View(), "abort", name)
        assert reply.ok, reply
        migrated = await migrating
        assert migrated.returncode != 0 and "cancel" in migrated.stderr.lower(), migrated.stderr
        assert lab.domstate(lab.a, guest) == "running"
        assert lab.domstate(lab.b, guest).startswith("(none")
        await until(lambda: src.session.state.migration_status == "cancelled", 15, "the cancel seen",
                    lambda: f"{src.session.state.migration_status} {src.session.poll_error}"
                            f" {[e.reply for e in src.journal.entries() if e.command == 'query-migrate'][-3:]}"
                            f" {[e.event for e in src.journal.entries() if e.event][-5:]}")
        assert src.session.connected and src.session.state.run_state is not None
        await until(lambda: src.session.state.run_state is not None and src.session.state.run_state.running, 15,
                    "the source running")
    finally:
        await watcher.stop()


async def test_postcopy_started_through_libvirt(lab: LibvirtLab, engine: Engine) -> None:
    """``virsh migrate --postcopy`` slowed to 4 MiB/s; migtui's migrate-start-postcopy is
    libvirt's migrateStartPostCopy; the destination takes over."""
    guest = lab.start_guest(GUEST, dirty_mib=64, disk_mib=16)
    await engine.connect(lab.a.uri, "a", (), Policy(), read_only=False, interval=0.5)
    await engine.connect(lab.b.uri, "b", (), Policy(), read_only=False, interval=0.5)
    src = await watched(engine, f"a/{GUEST}")
    # Started while the guest was still in its BIOS, the migration moved zero pages and ended
    # in pre-copy before migrate-start-postcopy (a fresh-clone run): it starts once it dirties.
    await until(lambda: lab.swept(GUEST), 180, "the guest's first sweep of its 64 MiB")
    # Shared-nothing disks are not copied here (--unsafe): the guest's RAM is what moves.
    migrating = asyncio.create_task(asyncio.to_thread(
        lab.a.virsh, "migrate", "--live", "--p2p", "--postcopy", "--unsafe", "--bandwidth", "4", GUEST, lab.b.uri,
        "--migrateuri", "tcp://127.0.0.1", "--listen-address", "127.0.0.1", "--xml", str(guest.dest_xml),
        timeout=120, check=False))
    await until(lambda: src.session.state.migration_status == "active" and src.session.state.migration.ram is not None
                and bool(src.session.state.migration.ram.transferred), 60, "the pre-copy under way",
                lambda: str(src.session.state.migration))
    await src.session.execute("migrate-start-postcopy")
    migrated = await migrating
    assert migrated.returncode == 0, migrated.stderr
    assert lab.domstate(lab.b, guest) == "running"
    dst = await watched(engine, f"b/{GUEST}")
    statuses = [c.status for c in src.session.state.status_changes]
    assert "postcopy-active" in statuses, statuses
    await until(lambda: dst.session.state.migration.status == "completed", 30, "the destination completed",
                lambda: str(dst.session.state.migration))
    # (No comparison with `virsh domjobinfo --completed` here: after a postcopy libvirt 9.0
    # at times keeps no completed job on the destination. The figures are compared above.)
    await until(lambda: src.session.state.migration.status == "completed", 30, "the source completed",
                lambda: str(src.session.state.migration))


class Sshd:
    """This machine's own sshd on a loopback port, with keys and a host key made here:
    a ``qemu+ssh://`` connection to a lab host is the real remote path (ssh, then
    ``nc -U`` to the instance's socket on the far side)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        d = self.dir
        for key in ("host_key", "id", "stranger"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True,
                           stdin=subprocess.DEVNULL)
        (d / "authorized_keys").write_text((d / "id.pub").read_text())
        host_key = (d / "host_key.pub").read_text().split()
        (d / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n")
        # libvirt runs `command=`: ssh that trusts only this sshd's host key (root's known_hosts untouched).
        (d / "ssh").write_text(f"#!/bin/sh\nexec ssh -o UserKnownHostsFile={d / 'known_hosts'}"
                               " -o StrictHostKeyChecking=yes -o BatchMode=yes \"$@\"\n")
        (d / "ssh").chmod(0o700)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        sshd = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin:/bin")
        assert sshd is not None, "sshd not found: apt-get install -y openssh-server netcat-openbsd"
        self.process = subprocess.Popen([sshd, "-D", "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")],
                                        stdin=subprocess.DEVNULL)

    def uri(self, host: Any, key: str = "id") -> str:
        return (f"qemu+ssh://root@127.0.0.1:{self.port}/system?socket={host.socket}&keyfile={self.dir / key}"
                f"&command={self.dir / 'ssh'}&no_tty=1")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    missing = [tool for tool in ("sshd", "nc", "ssh-keygen") if shutil.which(tool, path="/usr/sbin:/usr/bin") is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: apt-get install -y openssh-server netcat-openbsd", pytrace=False)
    server = Sshd(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_a_host_over_ssh_a_refused_key_and_libvirtd_killed(lab: LibvirtLab, sshd: Sshd, engine: Engine) -> None:
    lab.start_guest(GUEST, dirty_mib=4, disk_mib=16)
    name = f"remote/{GUEST}"
    # The remote path: libvirt's own qemu+ssh transport, through this machine's sshd.
    names = await engine.connect(sshd.uri(lab.a), "remote", (), Policy(), read_only=False, interval=0.5)
    assert names == [name], (names, [str(h.status.error) for h in engine.libvirt.values()])
    remote = await watched(engine, name)
    await until(lambda: remote.session.state.run_state is not None, 15, "the first poll over ssh")
    assert remote.session.state.run_state is not None and remote.session.state.run_state.running

    # A key sshd refuses: one line for that host; the other is unaffected.
    refused = sshd.uri(lab.a, key="stranger")
    assert await engine.connect(refused, "stranger", (), Policy(), read_only=False, interval=0.5) == []
    error = engine.libvirt[refused].status.error
    assert error is not None and "\n" not in str(error) and str(error).startswith("stranger: "), error
    assert remote.session.connected

    # libvirtd killed: nothing shown as live, the engine reconnects with back-off once it is back.
    generation = remote.session.generation
    assert lab.a.process is not None
    lab.a.process.send_signal(signal.SIGKILL)
    lab.a.process.wait()
    await until(lambda: not remote.session.connected, 30, "the loss seen", lambda: remote.session.status.label())
    assert "reconnecting" in str(remote.session.status.error), remote.session.status
    assert remote.last_controls is not None and remote.last_controls.actions["measure"].allowed is not True
    lab.a.start()  # the guest's QEMU outlived its libvirtd; the new one takes it up
    await until(lambda: remote.session.connected and remote.session.generation > generation, 60,
                "the reconnection", lambda: remote.session.status.label())
    await until(lambda: remote.session.state.run_state is not None, 15, "a poll after the reconnection")


async def test_a_uri_typo_exits_2_and_an_unreachable_host_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    typo = subprocess.run([sys.executable, "-m", "migtui", "status", "-c", "qmeu:///system"], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1 and "qmeu" in typo.stderr, typo.stderr
    uri = f"qemu+unix:///system?socket={tmp_path / 'none'}"
    gone = subprocess.run([sys.executable, "-m", "migtui", "status", "--json", "-c", f"h={uri}"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert gone.returncode == 1 and gone.stderr.startswith("migtui status: h: ") and gone.stderr.count("\n") == 1, \
        gone.stderr
    assert "is libvirtd (or virtqemud) running there" in gone.stderr, gone.stderr  # what to do, not only why
    snap = json.loads(gone.stdout)["monitors"][0]
    assert (snap["source"], snap["uri"], snap["ok"]) == ("libvirt", uri, False), snap
    # libvirt's own test driver answers, but has no QEMU: said as such, not as a QEMU that refused
    test = subprocess.run([sys.executable, "-m", "migtui", "status", "-c", "t=test:///default"], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert test.returncode == 1 and test.stderr.count("\n") == 1, test.stderr
    assert "test:///default is libvirt's TEST driver, not QEMU: migtui watches QEMU domains" in test.stderr, test.stderr


def end_engine(directory: Path) -> None:
    """Stop the engine a test's dashboard started in ``directory``, and remove the directory."""
    subprocess.run([sys.executable, "-m", "migtui", "engine", "stop", "--force", "--runtime-dir", str(directory)],
                   capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    shutil.rmtree(directory, ignore_errors=True)


async def test_in_tmux_an_unreachable_host_is_one_line_on_the_dashboard(tmp_path: Path) -> None:
    """``migtui -c URI`` whose host does not answer: the dashboard says so on its flash line
    (the engine decided it before this view subscribed: it says it again then)."""
    uri = f"qemu+unix:///system?socket={tmp_path / 'none'}"
    directory = short_runtime_dir()
    term = Tmux(f"lvnone-{os.getpid()}")
    try:
        term.migtui("--runtime-dir", str(directory), "-c", f"h={uri}")
        await until(lambda: "✗ h: " in term.screen(), 60, "the host's one line", term.screen)
        assert "✗ h: " in term.screen().splitlines()[-2], term.screen()  # the flash line
    finally:
        term.close()
        end_engine(directory)


class Collector(View):
    """A subscribed view: what the engine sends it."""

    def __init__(self, read_only: bool = False) -> None:
        super().__init__(read_only)
        self.subscribed = True
        self.messages: list[Any] = []

    def send(self, message: Any) -> None:
        self.messages.append(message)

    def unwatched(self) -> dict[str, str]:
        return {msg.name: msg.why for msg in self.messages if msg.OP == "unwatched"}


def slow_migration(lab: LibvirtLab, guest: Any) -> asyncio.Task[subprocess.CompletedProcess[str]]:
    """``virsh migrate --copy-storage-all`` at 1 MiB/s: still running when the test acts."""
    return asyncio.create_task(asyncio.to_thread(
        lab.a.virsh, "migrate", "--live", "--p2p", "--copy-storage-all", guest.name, lab.b.uri, "--migrateuri",
        "tcp://127.0.0.1", "--listen-address", "127.0.0.1", "--bandwidth", "1", "--xml", str(guest.dest_xml),
        timeout=120, check=False))


async def test_a_domain_destroyed_mid_migration_goes_in_one_line(lab: LibvirtLab, engine: Engine,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """``virsh destroy`` of the destination, then of the source, during a slow migration: each
    goes from the views with one line; the other domain on the host is unaffected."""
    guest = lab.start_guest(GUEST, dirty_mib=64, disk_mib=16)
    other = lab.start_guest("migtui-other", dirty_mib=4, disk_mib=16)
    view = Collector()
    engine.attach(view)
    await engine.connect(lab.a.uri, "a", (), Policy(), read_only=False, interval=0.5)
    await engine.connect(lab.b.uri, "b", (), Policy(), read_only=False, interval=0.5)
    src, bystander = await watched(engine, f"a/{GUEST}"), await watched(engine, f"a/{other.name}")
    name_src, name_dst = f"a/{GUEST}", f"b/{GUEST}"

    # The destination destroyed: it goes; the source's migration fails and it runs on.
    migrating = slow_migration(lab, guest)
    await until(lambda: src.session.state.migration_status == "active", 60, "the migration to run",
                lambda: src.session.state.migration_status)
    await watched(engine, name_dst)
    lab.b.virsh("destroy", GUEST)
    assert (await migrating).returncode != 0
    await until(lambda: name_dst not in engine.watched, 30, "the destination gone", lambda: str(view.unwatched()))
    assert view.unwatched() == {name_dst: f"{name_dst}: destroyed during its migration"}, view.unwatched()
    assert lab.domstate(lab.a, guest) == "running"
    await until(lambda: src.session.state.migration_status in ("failed", "cancelled"), 30, "the failure seen",
                lambda: src.session.state.migration_status)
    assert name_src in engine.watched and src.session.connected

    # The source destroyed: it goes, and the destination libvirt gives up with it.
    migrating = slow_migration(lab, guest)
    await until(lambda: src.session.state.migration_status == "active", 60, "the second migration to run",
                lambda: src.session.state.migration_status)
    await watched(engine, name_dst)
    lab.a.virsh("destroy", GUEST)
    assert (await migrating).returncode != 0
    await until(lambda: name_src not in engine.watched and name_dst not in engine.watched, 30, "both gone",
                lambda: f"{sorted(engine.watched)} {view.unwatched()}")
    assert view.unwatched()[name_src] == f"{name_src}: destroyed during its migration", view.unwatched()
    assert lab.domstate(lab.b, guest).startswith("(none"), lab.domstate(lab.b, guest)
    # `migtui status -c URI` lists neither; the other domain is watched and polled as before.
    [held] = engine.status_json([lab.a.uri])
    assert held is not None and [d["domain"] for d in held["domains"]] == [other.name], held
    assert sorted(engine.watched) == [f"a/{other.name}"]
    polls = bystander.session.polls
    await until(lambda: bystander.session.polls > polls, 15, "the other domain polled")
    assert bystander.session.connected
    # One line each, no traceback: what the engine log says.
    gone = [r for r in caplog.records if "no longer watched" in r.getMessage()]
    assert gone and all("\n" not in r.getMessage() for r in gone), [r.getMessage() for r in gone]
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"], \
        [(r.levelname, r.getMessage()) for r in caplog.records if r.exc_info or r.levelname == "ERROR"]
    # A domain that starts again is a new entry.
    lab.start_guest(GUEST, dirty_mib=4, disk_mib=16)
    again = await watched(engine, name_src)
    assert again is not src


async def test_read_only_the_pause_is_bounded_and_a_migrated_source_goes(lab: LibvirtLab, engine: Engine) -> None:
    """``--read-only``: libvirt gives no QEMU events, so the pause it drives is bounded by its
    own events (shown as a bound); the migrated-away source stays with its figures a while,
    then goes; the destination stays until it stops."""
    guest = lab.start_guest(GUEST, dirty_mib=4, disk_mib=16)
    view = Collector(read_only=True)
    engine.attach(view)
    engine.migrated_linger_s = 1.0
    await engine.connect(lab.a.uri, "a", (), Policy(), read_only=True, interval=0.5)
    await engine.connect(lab.b.uri, "b", (), Policy(), read_only=True, interval=0.5)
    assert not engine.libvirt[lab.a.uri].qemu_events
    src = await watched(engine, f"a/{GUEST}")
    await until(lambda: src.session.state.run_state is not None, 15, "the first poll")
    exact = Engine(persist=True)  # read-write beside it: QEMU's own events, the pause measured exactly
    try:
        await exact.connect(lab.a.uri, "a", (GUEST,), Policy(), read_only=False, interval=0.5)
        measured = await watched(exact, f"a/{GUEST}")
        await bounded_pause(lab, guest, engine, src, view, measured)
    finally:
        await exact.stop()


async def bounded_pause(lab: LibvirtLab, guest: Any, engine: Engine, src: Watched, view: Collector,
                        measured: Watched) -> None:
    clocks: list[Any] = []

    def on_change(session: Any, kinds: frozenset[str]) -> None:
        if src.last_pause is not None and src.last_pause.paused and src.last_pause.clock is not None:
            clocks.append(src.last_pause.clock)

    src.session.add_change_listener(on_change)
    migrated = await asyncio.to_thread(lab.migrate, guest, timeout=90)
    assert migrated.returncode == 0, migrated.stderr
    dst = await watched(engine, f"b/{GUEST}")
    await until(lambda: src.tracked is not None and src.tracked.result is not None, 30, "the pause's outcome",
                lambda: f"{src.tracked} {[(c.status, c.source) for c in src.session.state.status_changes]}")
    statuses = [(c.status, c.source) for c in src.session.state.status_changes]
    assert ("pre-switchover", "poll") in statuses, statuses  # never an "event": QEMU's are not heard
    # While paused, every view's clock said "at least / at most", never exact.
    assert clocks and not any(c.exact for c in clocks) and all(c.earliest is not None for c in clocks), clocks
    tracked = src.tracked
    assert tracked is not None and tracked.result is not None and tracked.pause_ms is None
    most = tracked.pause_at_most_ms
    info = domjobinfo(completed_job(lab.a) or completed_job(lab.b))
    assert most is not None and 0 < most <= number(info["Total downtime"]), (most, info)
    # The bound holds: QEMU's own timestamps, through the read-write connection, say no more.
    await until(lambda: measured.tracked is not None and measured.tracked.pause_ms is not None, 15,
                "the exact pause")
    assert measured.tracked is not None and measured.tracked.pause_ms is not None
    assert measured.tracked.pause_ms <= most, (measured.tracked.pause_ms, most)
    assert "paused before switchover ≤ " in tracked.result.reason and "libvirt resumed it" in tracked.result.reason, \
        tracked.result.reason

    # The source, migrated away, goes after its linger; the destination stays.
    await until(lambda: f"a/{GUEST}" not in engine.watched, 30, "the source gone", lambda: str(view.unwatched()))
    assert view.unwatched() == {f"a/{GUEST}": f"a/{GUEST}: migrated away"}
    assert dst.session.connected and f"b/{GUEST}" in engine.watched
    [held] = engine.status_json([lab.a.uri])
    assert held is not None and held["domains"] == [], held
    # The destination shut down: it goes at once.
    lab.b.virsh("destroy", GUEST)
    await until(lambda: f"b/{GUEST}" not in engine.watched, 30, "the destination gone", lambda: str(view.unwatched()))
    assert view.unwatched()[f"b/{GUEST}"] == f"b/{GUEST}: destroyed"


def monitor_list(screen: str) -> str:
    """The dashboard's monitor list: the left column at 80x24, above the flash line and footer."""
    return "\n".join(line.split("│")[0] for line in screen.splitlines()[:-2])


def engine_log_tail(directory: Path, lines: int = 40) -> str:
    """The last lines of the engine's log in its runtime directory (what it recorded)."""
    try:
        return "\n".join((directory / "engine.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError as err:
        return f"(no engine.log: {err})"


async def test_in_tmux_a_domain_that_stops_goes_from_the_dashboard(lab: LibvirtLab) -> None:
    """``migtui -c URI`` at 80x24, as an operator runs it: ``virsh destroy`` of one domain
    takes it off the list, the flash line says what happened, the other stays selected."""
    lab.start_guest(GUEST, dirty_mib=4, disk_mib=16)
    other = lab.start_guest("migtui-other", dirty_mib=4, disk_mib=16)
    directory = short_runtime_dir()
    term = Tmux(f"lvgone-{os.getpid()}")
    try:
        term.migtui("--runtime-dir", str(directory), "-c", f"a={lab.a.uri}")
        await until(lambda: f"a/{GUEST}" in monitor_list(term.screen()) and "a/migtui-other" in
                    monitor_list(term.screen()), 60, "both domains listed", term.screen)
        term.keys("j")  # a/migtui-lv, below a/migtui-other: the selection must stay on it
        await until(lambda: f"▸a/{GUEST}" in term.screen(), 15, "a/migtui-lv selected", term.screen)
        lab.a.virsh("destroy", other.name)
        await until(lambda: "a/migtui-other" not in monitor_list(term.screen()), 30, "the destroyed domain gone",
                    term.screen)
        screen = term.screen()
        assert f"▸a/{GUEST}" in monitor_list(screen), screen
        assert "a/migtui-other: destroyed" in screen.splitlines()[-2], screen  # the flash line
    finally:
        term.close()
        end_engine(directory)


async def test_in_tmux_two_hosts_show_a_copy_storage_migration_as_virsh_reports_it(lab: LibvirtLab) -> None:
    """Issue 15's "Done when", as an operator does it: ``migtui -c a=URI1 -c b=URI2`` at 80x24
    shows a ``virsh migrate --copy-storage-all`` live from start to completion, the source and
    its destination side by side in the list, the pause libvirt drove, and the final downtime
    ``virsh domjobinfo --completed`` gives; ``migtui status --json -c URI1`` says the same."""
    guest = lab.start_guest(GUEST, dirty_mib=4, disk_mib=16)
    directory = short_runtime_dir()
    term = Tmux(f"lvdone-{os.getpid()}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        term.migtui("--runtime-dir", str(directory), "-c", f"a={lab.a.uri}", "-c", f"b={lab.b.uri}")
        await until(lambda: f"a/{GUEST}" in monitor_list(term.screen()), 60, "the domain listed", term.screen)
        screens: list[str] = []
        # 32 MiB/s: a few seconds of copying, so the screen shows it under way.
        migration = asyncio.create_task(asyncio.to_thread(lab.migrate, guest, "--bandwidth", "32", timeout=120))
        while not migration.done():
            screens.append(await asyncio.to_thread(term.screen))
        migrated = await migration
        assert migrated.returncode == 0, f"virsh migrate failed: {migrated.stderr.strip()}"
        # Live: the source's copy was on screen while it ran (its pass and RAM left moving).
        live = [s for s in screens if " active " in s and f"▸a/{GUEST}" in s]
        assert live, screens[-1] if screens else "(no screen captured)"
        # The pause libvirt drove (tens of ms): said on the flash line as it ends (by its dialog if one opened).
        said = "(libvirt resumed it"
        await until(lambda: any(said in s for s in screens) or said in term.screen(), 30,
                    "the flash line saying libvirt ended the pause",
                    lambda: f"{term.screen()}\nengine.log:\n{engine_log_tail(directory)}")
        # Source and destination side by side in the list; the destination's final downtime.
        await until(lambda: f"a/{GUEST}" in monitor_list(term.screen()) and "b/migtui" in monitor_list(term.screen()),
                    30, "both hosts' entries", term.screen)  # (b's name cut with … at 80 columns)
        info = domjobinfo(completed_job(lab.b))
        downtime = f"downtime {format_ms(number(info['Total downtime']))}"  # a loaded machine's: "1.1 s"
        term.keys("j")  # the destination, below the source
        await until(lambda: "▸b/" in term.screen() and downtime in term.screen(), 30,
                    f"the destination selected, showing {downtime!r}", term.screen)
        status = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "migtui", "status", "--json", "--runtime-dir", str(directory),
                             "-c", lab.a.uri], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
            env=env)
        assert status.returncode == 0, status.stderr
        [source] = json.loads(status.stdout)["monitors"]
        assert source["name"] == f"a/{GUEST}" and source["pause"]["armed_by"] == "libvirt", source["pause"]
        assert source["migration"]["status"] == "completed", source["migration"]
        assert source["migration"]["downtime_ms"] == number(info["Total downtime"]), (source["migration"], info)
        # The advisor's word on the source that left by migration says what happened (not "monitor not
        # connected"), and the dashboard's Convergence panel says the same of it.
        said = source["migration"]["convergence"]
        left = f"migrated away to b/{GUEST}: migration completed in "
        assert said["verdict"] == "unknown" and said["remedies"] == [], said
        assert said["reason"].startswith(left) and said["reason"].endswith(downtime), said
        term.keys("k")  # the source
        await until(lambda: f"▸a/{GUEST}" in (s := term.screen()) and "Convergence: migrated away" in s
                    and left in main_text(s), 30, "the source's Convergence panel", term.screen)
        # Its chart's title says it is gone, as its header does (not "not connected").
        assert "Dirty vs sent · gone: the last figures seen" in term.screen(), term.screen()
    finally:
        term.close()
        subprocess.run([sys.executable, "-m", "migtui", "engine", "stop", "--force", "--runtime-dir", str(directory)],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=60, env=env)
        shutil.rmtree(directory, ignore_errors=True)


async def test_two_query_migrates_of_a_domain_never_interleave(lab: LibvirtLab, engine: Engine) -> None:
    """A poll's query-migrate and the one a finished status sets off (session._final_query)
    can run at once; each reads and sets the domain's job state across two jobStats() calls.
    Interleaved, the poll's stale "running" made the other's just-cancelled job a new one and
    its end a failure (the libvirt postcopy test, "the cancel seen"). They take turns."""
    lab.start_guest(GUEST, dirty_mib=4, disk_mib=16)
    await engine.connect(lab.a.uri, "a", (GUEST,), Policy(), read_only=False, interval=0.5)
    src = await watched(engine, f"a/{GUEST}")
    monitor = src.session.monitor
    assert monitor is not None
    host = engine.libvirt[lab.a.uri]
    calls: list[str] = []
    call = host.call

    async def traced(command: str, fn: Any, *args: Any) -> Any:
        task = asyncio.current_task()
        who = task.get_name() if task is not None else "?"
        calls.append(f"{who} in")
        try:
            return await call(command, fn, *args)
        finally:
            calls.append(f"{who} out")

    host.call = traced  # type: ignore[method-assign]
    try:
        await asyncio.gather(*(asyncio.create_task(monitor.execute("query-migrate"), name=f"q{n}")
                               for n in range(3)))
    finally:
        host.call = call  # type: ignore[method-assign]
    mine = [c for c in calls if c.split()[0] in ("q0", "q1", "q2")]
    assert mine, calls
    # Each query's jobStats() calls (one or two) come together: no other query's in between.
    order = [c.split()[0] for c in mine]
    assert all(order[i] == order[i + 1] or order[i + 1] not in order[:i + 1] for i in range(len(order) - 1)), mine
