"""Two real libvirtd instances on this machine, a small guest, and a libvirt migration.

Set up as /work/shared/reference/libvirt-lab.md describes (it installs nothing: the
test fails with the apt line when libvirt is missing). Each instance runs under
``unshare --mount --propagation private`` with its own directories bind-mounted over
/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt,
its own ``host_uuid`` and migration port range, and a ``qemu.conf`` that works in a
container (root, no cgroups, no namespaces, no security driver). QEMU's stderr goes
straight to ``/var/log/libvirt/qemu/NAME.log`` of its instance (``stdio_handler =
"file"``: no virtlogd to keep alive), which is where ``-trace handle_qmp_command`` writes.

The guest is the project's own (migtui/lab/guest.bin, a boot sector that dirties
memory) on a raw boot disk, plus a qcow2 data disk, 128 MiB, no ``<cpu>``; a second QMP
monitor for migtui comes from ``<qemu:commandline>``. ``close()`` destroys the domains,
kills the daemons (and any QEMU left) and removes every directory.

Every command is an argv list: nothing goes through a shell. Run as root.
This file is also the program that sets up an instance's mounts inside its namespace
(``python libvirt_lab.py _daemon ROOT LIBVIRTD``), so it imports only the standard
library at module level.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import grp
import json
import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

INSTALL = "apt-get install -y --no-install-recommends libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
# Inside an instance's namespace these are its own directories.
MOUNTS = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt",
          "log": "/var/log/libvirt", "cache": "/var/cache/libvirt"}
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
PR_SET_PDEATHSIG = 1
GUEST_MIB = 128
BOOT_DISK_BYTES = 1 << 20  # the 512-byte boot sector, padded to 1 MiB

ET.register_namespace("qemu", QEMU_NS)


class LibvirtLabError(RuntimeError):
    """The lab cannot be set up; one line that says why."""


def find_tool(name: str) -> str:
    path = shutil.which(name, path=SBIN_PATH)
    if path is None:
        raise LibvirtLabError(f"{name} not found: {INSTALL}")
    return path


def missing_tools() -> list[str]:
    """The programs this lab needs that are not installed."""
    return [n for n in ("libvirtd", "virsh", "unshare", "mount") if shutil.which(n, path=SBIN_PATH) is None]


def ensure_libvirt_qemu_user() -> None:
    """Debian's libvirtd looks up ``libvirt-qemu`` before it reads qemu.conf: create the
    system group and user when missing (the package that would, libvirt-daemon-system,
    pulls systemd)."""
    try:
        grp.getgrnam("libvirt-qemu")
    except KeyError:
        _run([find_tool("groupadd"), "--system", "libvirt-qemu"], ok=(0, 9))  # 9: exists (a race)
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        _run([find_tool("useradd"), "--system", "--gid", "libvirt-qemu", "--no-create-home",
              "--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", "libvirt-qemu"], ok=(0, 9))


def _run(argv: list[str], *, timeout: float = 30.0, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    if result.returncode not in ok:
        raise LibvirtLabError(f"{Path(argv[0]).name} {' '.join(argv[1:3])}... exited {result.returncode}:"
                              f" {_last_line(result.stderr or result.stdout)}")
    return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def _die_with_parent(prctl: Callable[..., int], parent: int) -> None:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


@dataclass
class Host:
    """One libvirtd instance with its private directories under ``root``."""

    name: str
    root: Path
    port_min: int
    host_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    process: subprocess.Popen[bytes] | None = None

    def dir(self, key: str) -> Path:
        return self.root / key

    @property
    def socket(self) -> Path:
        return self.dir("run") / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def images(self) -> Path:
        """What the instance sees as /var/lib/libvirt/images."""
        return self.dir("lib") / "images"

    def qemu_log(self, domain: str) -> Path:
        """What the instance sees as /var/log/libvirt/qemu/DOMAIN.log (QEMU's stderr)."""
        return self.dir("log") / "qemu" / f"{domain}.log"

    def daemon_log(self) -> str:
        parts = []
        for path in (self.dir("log") / "libvirtd.log", self.root / "libvirtd.stderr"):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def last_daemon_error(self) -> str:
        errors = [line for line in self.daemon_log().splitlines() if " error : " in line]
        return errors[-1].strip() if errors else _last_line(self.daemon_log())

    def virsh(self, *args: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [find_tool("virsh"), "-q", "-c", self.uri, *args]
        result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
        if check and result.returncode != 0:
            raise LibvirtLabError(f"host {self.name}: virsh {args[0]} exited {result.returncode}:"
                                  f" {_last_line(result.stderr or result.stdout)}")
        return result

    # ------------------------------------------------------------------ set-up

    def prepare(self, cache_from: Host | None = None) -> None:
        for key in MOUNTS:
            self.dir(key).mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in ("qemu", "images"):
            (self.dir("lib") / sub).mkdir(exist_ok=True)
        (self.dir("log") / "qemu").mkdir(exist_ok=True)
        self.dir("etc").joinpath("libvirtd.conf").write_text(
            f'host_uuid = "{self.host_uuid}"\n'
            'unix_sock_group = "root"\n'
            'unix_sock_ro_perms = "0700"\n'
            'unix_sock_rw_perms = "0700"\n'
            'auth_unix_ro = "none"\n'
            'auth_unix_rw = "none"\n'
            'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
        )
        self.dir("etc").joinpath("qemu.conf").write_text(
            'user = "root"\n'
            'group = "root"\n'
            "dynamic_ownership = 0\n"
            "remember_owner = 0\n"
            'security_driver = "none"\n'
            "cgroup_controllers = [ ]\n"
            "namespaces = [ ]\n"
            'stdio_handler = "file"\n'
            f"migration_port_min = {self.port_min}\n"
            f"migration_port_max = {self.port_min + 31}\n"
        )
        if cache_from is not None:  # the QEMU capabilities probe: ~8 s saved per start
            source = cache_from.dir("cache") / "qemu" / "capabilities"
            if source.is_dir():
                shutil.copytree(source, self.dir("cache") / "qemu" / "capabilities", dirs_exist_ok=True)

    def start(self, timeout: float = 60.0) -> None:
        argv = [find_tool("unshare"), "--mount", "--propagation", "private", "--",
                sys.executable, os.path.abspath(__file__), "_daemon", str(self.root), find_tool("libvirtd")]
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        with open(self.root / "libvirtd.stderr", "ab") as err:
            # One process all along (unshare and the mount step exec): it dies with us.
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                            process_group=0,
                                            preexec_fn=functools.partial(_die_with_parent, prctl, os.getpid()))
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise LibvirtLabError(f"host {self.name}: libvirtd exited ({self.process.returncode}):"
                                      f" {self.last_daemon_error()}")
            if self.socket.exists() and self.virsh("version", check=False, timeout=timeout).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise LibvirtLabError(f"host {self.name}: libvirtd did not answer within {timeout:g} s:"
                                      f" {self.last_daemon_error()}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ tear-down

    def qemu_pids(self) -> list[int]:
        pids = []
        # The guests', and the capabilities probe's (a daemon killed mid-probe leaves it running).
        probes = (self.dir("lib") / "qemu").glob("qmp-*/qmp.pid")
        for pid_file in [*(self.dir("run") / "qemu").glob("*.pid"), *probes]:
            try:
                pids.append(int(pid_file.read_text().strip()))
            except (OSError, ValueError):
                continue
        return pids

    def stop(self) -> None:
        """Destroy every domain, then stop libvirtd; kill whatever QEMU is left."""
        if self.process is not None and self.process.poll() is None and self.socket.exists():
            try:
                names = self.virsh("list", "--name", timeout=15, check=False).stdout.split()
                for name in names:
                    self.virsh("destroy", name, timeout=30, check=False)
            except subprocess.TimeoutExpired:
                pass
        leftovers = self.qemu_pids()
        if self.process is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if self.process.poll() is not None:
                    break
                self.process.send_signal(sig)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    continue
            self.process.wait()
        for pid in leftovers:
            _kill_qemu(pid)


def _kill_qemu(pid: int) -> None:
    """Kill ``pid`` if it is (still) a QEMU, and wait until it is gone."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return
    if "qemu" not in Path(exe).name:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
                return
            time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class Guest:
    name: str
    source_monitor: Path  # migtui's QMP socket on host A
    destination_monitor: Path  # ... and on host B, once the migration starts it
    dest_xml: Path


class LibvirtLab:
    """Hosts A and B, a guest on A, and ``virsh migrate`` from A to B."""

    def __init__(self, emulator: str, *, directory: Path | None = None) -> None:
        self.emulator = emulator
        self.root = directory or Path(tempfile.mkdtemp(prefix="migtui-libvirt-", dir="/tmp"))
        base = random.randrange(49200, 60000, 64)  # two runs at once pick apart
        self.a = Host("A", self.root / "a", base)
        self.b = Host("B", self.root / "b", base + 32)

    def __enter__(self) -> LibvirtLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def accel(self) -> str:
        return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"

    def start(self) -> None:
        missing = missing_tools()
        if missing:
            raise LibvirtLabError(f"{', '.join(missing)} not found: {INSTALL}")
        if os.geteuid() != 0:
            raise LibvirtLabError("the libvirt lab runs libvirtd as root: run the tests as root")
        ensure_libvirt_qemu_user()
        self.a.prepare()
        self.a.start()
        # Probe this emulator on A, so that B starts from A's capabilities cache.
        self.a.virsh("domcapabilities", "--emulatorbin", self.emulator, "--arch", "x86_64",
                     "--machine", "pc", "--virttype", self.accel, timeout=60)
        self.b.prepare(cache_from=self.a)
        self.b.start()

    def close(self) -> None:
        for host in (self.a, self.b):
            with contextlib.suppress(Exception):  # the other host and the directories must go anyway
                host.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ the guest

    def domain_xml(self, name: str, monitor: Path | None, memory_mib: int = GUEST_MIB) -> str:
        """``monitor``: migtui's second QMP socket (None: none, as libvirt's domains are in production)."""
        domain = ET.Element("domain", type=self.accel)
        ET.SubElement(domain, "name").text = name
        ET.SubElement(domain, "memory", unit="MiB").text = str(memory_mib)
        ET.SubElement(domain, "vcpu").text = "1"
        os_el = ET.SubElement(domain, "os")
        ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
        ET.SubElement(os_el, "boot", dev="hd")
        # ACPI on: without it libvirt 9.0 passes -no-acpi, which QEMU 9.0 and later refuse.
        ET.SubElement(ET.SubElement(domain, "features"), "acpi")
        ET.SubElement(domain, "on_poweroff").text = "destroy"
        ET.SubElement(domain, "on_crash").text = "destroy"
        devices = ET.SubElement(domain, "devices")
        ET.SubElement(devices, "emulator").text = self.emulator
        # The lab's layout (migtui/lab/qemu.py): boot sector on IDE, data disk on virtio-blk.
        for file, fmt, target, bus in ((f"{name}-boot.img", "raw", "hda", "ide"),
                                       (f"{name}-data.qcow2", "qcow2", "vda", "virtio")):
            disk = ET.SubElement(devices, "disk", type="file", device="disk")
            ET.SubElement(disk, "driver", name="qemu", type=fmt)
            ET.SubElement(disk, "source", file=f"/var/lib/libvirt/images/{file}")
            ET.SubElement(disk, "target", dev=target, bus=bus)
        serial = ET.SubElement(devices, "serial", type="file")  # the guest's sweep markers
        ET.SubElement(serial, "source", path=f"/var/log/libvirt/qemu/{name}-serial.log")
        ET.SubElement(devices, "controller", type="usb", model="none")
        ET.SubElement(devices, "memballoon", model="none")
        commandline = ET.SubElement(domain, f"{{{QEMU_NS}}}commandline")
        qmp = ("-qmp", f"unix:{monitor},server=on,wait=off") if monitor is not None else ()
        for arg in (*qmp, "-trace", "handle_qmp_command"):
            ET.SubElement(commandline, f"{{{QEMU_NS}}}arg", value=arg)
        return ET.tostring(domain, encoding="unicode")

    @staticmethod
    def serial(name: str, host: Host) -> Path:
        """Where the domain's serial port writes, seen from here (its guest's sweep markers)."""
        return host.dir("log") / "qemu" / f"{name}-serial.log"

    def swept(self, name: str, host: Host | None = None) -> bool:
        """Whether the guest has swept its range once (its 'A' on the serial port): a migration
        started before that moves a guest still in its BIOS (seconds under a nested KVM),
        mostly zero pages, and may end before a test can act on it."""
        serial = self.serial(name, host or self.a)
        return serial.exists() and serial.stat().st_size > 0

    def start_guest(self, name: str = "migtui-lv", *, dirty_mib: int = 4, disk_mib: int = 16,
                    qemu_img: str | None = None, qmp: bool = True, memory_mib: int = GUEST_MIB,
                    host: Host | None = None) -> Guest:
        """Start a transient guest on A (or ``host``); write the destination's XML and disks on
        the other host. ``qmp``: with migtui's second monitor (else libvirt's alone: no
        destination XML is needed to migrate it)."""
        here = host or self.a
        there = self.b if here is self.a else self.a
        from migtui.lab.guest import guest_image  # only the test process needs migtui

        qemu_img = qemu_img or find_tool("qemu-img")
        boot = guest_image(dirty_mib, memory_mib=memory_mib).ljust(BOOT_DISK_BYTES, b"\0")
        here.images.joinpath(f"{name}-boot.img").write_bytes(boot)
        for h in (here, there):  # the other's disks are the empty targets of --copy-storage-all
            _run([qemu_img, "create", "-q", "-f", "qcow2", str(h.images / f"{name}-data.qcow2"), f"{disk_mib}M"])
        with open(there.images / f"{name}-boot.img", "wb") as target:
            target.truncate(BOOT_DISK_BYTES)
        source_monitor = self.root / f"{name}-a.qmp"
        destination_monitor = self.root / f"{name}-b.qmp"
        for path in (source_monitor, destination_monitor):
            if len(os.fsencode(path)) > 107:
                raise LibvirtLabError(f"socket path too long for a unix socket: {path}")
        xml_path = self.root / f"{name}-a.xml"
        xml_path.write_text(self.domain_xml(name, source_monitor if qmp else None, memory_mib))
        self.serial(name, here).unlink(missing_ok=True)  # an earlier guest's markers would say it swept
        here.virsh("create", str(xml_path), timeout=60)
        dest_xml = self.root / f"{name}-b.xml"
        if not qmp:
            return Guest(name, source_monitor, destination_monitor, dest_xml)
        # The destination's definition: libvirt's own (addresses and all, so the ABI
        # check passes) with migtui's monitor moved to B's path.
        migratable = here.virsh("dumpxml", "--migratable", name).stdout
        dest_xml.write_text(_with_monitor(migratable, destination_monitor))
        return Guest(name, source_monitor, destination_monitor, dest_xml)

    def migrate(self, guest: Guest, *extra: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``virsh migrate`` A -> B, live, peer to peer, copying the storage (blocks);
        ``extra``: more of virsh migrate's options (``--bandwidth``, 32)."""
        return self.a.virsh("migrate", "--live", "--p2p", "--copy-storage-all", *extra, guest.name, self.b.uri,
                            "--migrateuri", "tcp://127.0.0.1", "--listen-address", "127.0.0.1",
                            "--xml", str(guest.dest_xml), timeout=timeout, check=False)

    def domstate(self, host: Host, guest: Guest) -> str:
        result = host.virsh("domstate", guest.name, check=False)
        return result.stdout.strip() if result.returncode == 0 else f"(none: {_last_line(result.stderr)})"


def _with_monitor(xml: str, monitor: Path) -> str:
    domain = ET.fromstring(xml)
    args = domain.findall(f"{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}arg")
    replaced = 0
    for arg in args:
        if arg.get("value", "").startswith("unix:") and "server=on" in arg.get("value", ""):
            arg.set("value", f"unix:{monitor},server=on,wait=off")
            replaced += 1
    if replaced != 1:
        raise LibvirtLabError(f"the domain XML has {replaced} migtui monitors, not 1")
    return ET.tostring(domain, encoding="unicode")


# ---------------------------------------------------------------------- QEMU's trace

TRACE = re.compile(r"handle_qmp_command mon (0x[0-9a-fA-F]+|\(nil\)) req: (\{.*\})\s*$")


@dataclass(frozen=True)
class TracedCommand:
    mon: str  # the monitor's pointer in QEMU: one per -qmp/-mon
    command: str
    id: str | None


def traced_commands(log_text: str) -> list[TracedCommand]:
    """Every QMP command QEMU logged with ``-trace handle_qmp_command``, in order."""
    found = []
    for line in log_text.splitlines():
        match = TRACE.search(line)
        if match is None:
            continue
        try:
            request = json.loads(match.group(2))
        except ValueError:
            continue
        command = request.get("execute", request.get("exec-oob"))
        if isinstance(command, str):
            rid = request.get("id")
            found.append(TracedCommand(match.group(1), command, rid if isinstance(rid, str) else None))
    return found


def commands_by_monitor(commands: list[TracedCommand]) -> dict[str, list[TracedCommand]]:
    by_mon: dict[str, list[TracedCommand]] = {}
    for c in commands:
        by_mon.setdefault(c.mon, []).append(c)
    return by_mon


# ---------------------------------------------------------------------- in the namespace

def _daemon(root: str, libvirtd: str) -> None:
    """Inside ``unshare --mount``: this instance's directories over libvirt's, then libvirtd."""
    mount = find_tool("mount")
    for key, target in MOUNTS.items():
        os.makedirs(target, exist_ok=True)
        subprocess.run([mount, "--bind", os.path.join(root, key), target], check=True)
    # The pid file would be /run/libvirtd.pid, shared by both instances: keep it in ours.
    os.execv(libvirtd, [libvirtd, "--pid-file", "/run/libvirt/libvirtd.pid"])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_daemon":
        _daemon(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: libvirt_lab.py _daemon ROOT LIBVIRTD (started by LibvirtLab)")


def lab_hosts() -> Iterator[LibvirtLab]:
    """The two hosts for a test module's fixture (``yield from lab_hosts()``): a missing tool or a
    lab that cannot start fails the test with the line that says why (never skipped: the suite
    installs what it needs)."""
    import pytest

    from migtui.errors import MigtuiError
    from migtui.libvirt.binding import load

    missing = missing_tools()
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: {INSTALL}", pytrace=False)
    try:
        load()
    except MigtuiError as err:
        pytest.fail(str(err), pytrace=False)
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None
    try:
        with LibvirtLab(qemu) as lab:  # its own directories and ports: beside any other lab
            yield lab
    except LibvirtLabError as err:
        pytest.fail(str(err), pytrace=False)


def clear_hosts(hosts: LibvirtLab, *, undefine: bool = False) -> None:
    """After a test: destroy whatever it left running on either host (``undefine``: and what it
    left defined, a migration's PERSIST_DEST)."""
    for host in (hosts.a, hosts.b):
        if host.process is None or host.process.poll() is not None:
            continue
        for name in host.virsh("list", "--name", check=False).stdout.split():
            host.virsh("destroy", name, check=False)
        if undefine:
            for name in host.virsh("list", "--all", "--name", check=False).stdout.split():
                host.virsh("undefine", name, check=False)
