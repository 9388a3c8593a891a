"""Start and stop the lab's qemu-system-x86_64 processes (argv lists, never a shell).

Orphans are ruled out twice: each QEMU runs in its own process group with
PR_SET_PDEATHSIG=SIGKILL, so it dies with the process that started it even if
that process is SIGKILLed; and stop() escalates quit -> SIGTERM -> SIGKILL.
PDEATHSIG fires when the *thread* that forked exits, so start QEMU from the
thread that lives as long as the lab (the event loop's).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from migtui.errors import LabError

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
# The QEMU the lab runs when --qemu is not given (tests name each build this way).
QEMU_ENV = "MIGTUI_QEMU"
INSTALL_HINT = "install it with `apt-get install -y qemu-system-x86 qemu-utils`"
DATA_DEVICE = "data0-dev"  # qdev id of the guest's data disk (virtio-blk-pci)
# Its virtio-blk backend holds the BlockBackend that the guest's writes go through.
DATA_BACKEND = f"/machine/peripheral/{DATA_DEVICE}/virtio-backend"
PR_SET_PDEATHSIG = 1
# KVM's per-vCPU dirty ring (entries): QEMU wants a power of two, 1024 or more; its docs
# suggest 4096. The vCPU dirty limit (set-vcpu-dirty-limit) works only with one.
MIN_DIRTY_RING = 1024
MAX_DIRTY_RING = 65536
# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


def find_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LabError(f"{name} not found on PATH: {INSTALL_HINT}")
    return path


def find_qemu(requested: str | None) -> str:
    """The qemu-system-x86_64 to run: --qemu, else $MIGTUI_QEMU, else the one on PATH."""
    chosen = requested or os.environ.get(QEMU_ENV) or None
    if chosen is None:
        return find_binary(QEMU)
    path = shutil.which(chosen) if os.sep not in chosen else chosen
    if path is None or not os.path.isfile(path) or not os.access(path, os.X_OK):
        via = "--qemu" if requested else f"${QEMU_ENV}"
        raise LabError(f"{via} {chosen}: no such executable; give the path of a qemu-system-x86_64")
    return path


def find_qemu_img(qemu_binary: str) -> str:
    """The qemu-img of the same build: beside the chosen QEMU if there is one, else PATH's."""
    sibling = os.path.join(os.path.dirname(qemu_binary), QEMU_IMG)
    if os.path.isfile(sibling) and os.access(sibling, os.X_OK):
        return sibling
    return find_binary(QEMU_IMG)


def check_dirty_ring(entries: int, accel: str) -> None:
    """A dirty ring QEMU accepts (0: none), under an accelerator that can have one."""
    if not entries:
        return
    if entries < MIN_DIRTY_RING or entries > MAX_DIRTY_RING or entries & (entries - 1):
        raise LabError(f"--dirty-ring must be a power of two from {MIN_DIRTY_RING} to {MAX_DIRTY_RING} entries"
                       f" (4096 is a good start), not {entries}")
    if accel == "tcg":
        raise LabError("--dirty-ring is KVM's: drop --accel tcg")


def _opt(value: str | Path) -> str:
    """Escape a value for QEMU's key=value option syntax (',' doubles)."""
    return str(value).replace(",", ",,")


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise LabError(f"socket path too long for a unix socket ({len(str(path))} bytes): {path}; use a shorter --dir")


def create_disk(qemu_img: str, path: Path, size_mib: int) -> None:
    """A fresh, empty qcow2 image of size_mib MiB."""
    argv = [qemu_img, "create", "-q", "-f", "qcow2", str(path), f"{size_mib}M"]
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise LabError(f"qemu-img create failed: {_last_line(result.stderr)}")


def qemu_argv(
    binary: str,
    *,
    memory_mib: int,
    boot_path: Path,
    serial_path: Path,
    monitors: list[Path],
    disk_path: Path | None,
    incoming: bool,
    accel: str = "auto",
    dirty_ring: int = 0,
    paused: bool = False,
) -> list[str]:
    """The command line of one lab VM. Source and destination differ only in
    file names and ``-incoming defer``, so their device layouts match. ``dirty_ring``:
    KVM's per-vCPU dirty ring in entries (0: KVM's dirty bitmap); under ``auto`` a host
    without KVM still falls back to TCG, which has none. ``paused``: ``-S``, the guest
    waits for ``cont`` (a destination so stays paused after its migration, as libvirt's)."""
    accels = ["kvm", "tcg"] if accel == "auto" else [accel]
    argv = [binary]
    for name in accels:  # QEMU uses the first that initialises
        argv += ["-accel", f"{name},dirty-ring-size={dirty_ring}" if name == "kvm" and dirty_ring else name]
    argv += [
        "-machine", "pc",
        "-nodefaults", "-display", "none", "-vga", "none",
        "-m", str(memory_mib),
        # Boot sector: each VM has its own copy, so no image locks clash and no
        # snapshot overlay is written outside the lab directory.
        "-blockdev", f"driver=file,node-name=boot-file,filename={_opt(boot_path)}",
        "-blockdev", "driver=raw,node-name=boot0,file=boot-file",
        "-device", "ide-hd,drive=boot0,bus=ide.0,unit=0,bootindex=0",
        "-chardev", f"file,id=serial0,path={_opt(serial_path)}",
        "-serial", "chardev:serial0",
    ]
    for index, path in enumerate(monitors):
        argv += [
            "-chardev", f"socket,id=qmp{index},path={_opt(path)},server=on,wait=off",
            "-mon", f"chardev=qmp{index},mode=control",
        ]
    if disk_path is not None:
        argv += [
            "-blockdev", f"driver=file,node-name=data0-file,filename={_opt(disk_path)}",
            "-blockdev", "driver=qcow2,node-name=data0,file=data0-file",
            # share-rw: the destination's writable NBD export writes beside its device.
            "-device", f"virtio-blk-pci,drive=data0,id={DATA_DEVICE},share-rw=on",
        ]
    if incoming:
        argv += ["-incoming", "defer"]
    if paused:
        argv.append("-S")
    return argv


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def _child_setup(prctl: Callable[..., int], parent_pid: int) -> None:
    # Runs in the child between fork and exec: die with the parent, and if the
    # parent already died before prctl took effect, do not outlive it.
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


@dataclass
class QemuProcess:
    """One running QEMU; stderr and stdout go to log_path."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                process_group=0,
                preexec_fn=functools.partial(_child_setup, prctl, os.getpid()),
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_seconds(self) -> float:
        """CPU time the QEMU has had so far (user + system): how far it got, whatever the load."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def last_error(self) -> str:
        try:
            return _last_line(self.log_path.read_text(errors="replace"))
        except OSError:
            return "(no log)"

    def exit_error(self) -> LabError:
        assert self.process is not None
        code = self.process.returncode
        return LabError(f"{self.name} QEMU exited (status {code}) while starting: {self.last_error()}")

    async def wait(self, timeout: float) -> bool:
        """Wait up to timeout seconds for the process to exit; True if it did."""
        if self.process is None:
            return True
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def terminate(self, timeout: float = 3.0) -> None:
        """SIGTERM, then SIGKILL; always reaps the process."""
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            if await self.wait(timeout):
                return
        self.process.wait()

    def kill_now(self) -> None:
        """Synchronous last resort (e.g. from a failing __init__ path)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
