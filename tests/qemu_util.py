"""Start a bare real QEMU with one QMP unix socket, for transport tests.

``-M none`` boots nothing and starts in ~50 ms; pass ``machine="pc"`` (64 MiB) when a
test needs migration commands to act on a real machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Self

import pytest
from libvirt_lab import TracedCommand, traced_commands

from migtui.lab.lab import Lab


def qemu_binary() -> str:
    """The QEMU build this test runs on (conftest sets $MIGTUI_QEMU per build)."""
    return os.environ.get("MIGTUI_QEMU") or shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"


class QemuProcess:
    def __init__(
        self, socket_path: Path | str, machine: str = "none", extra_sockets: int = 0
    ) -> None:
        self.socket_path = Path(socket_path)
        self.machine = machine
        # More QMP monitors on the same QEMU: vm.qmp.1, vm.qmp.2, ... (events go to all).
        self.extra_sockets = [
            self.socket_path.with_name(f"{self.socket_path.name}.{i}")
            for i in range(1, extra_sockets + 1)
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.socket_path.with_name(self.socket_path.name + ".log")

    def argv(self) -> list[str]:
        argv = [qemu_binary(), "-nodefaults", "-display", "none", "-accel", "kvm", "-accel", "tcg"]
        argv += ["-M", "none"] if self.machine == "none" else ["-M", self.machine, "-m", "64"]
        for path in [self.socket_path, *self.extra_sockets]:
            argv += ["-qmp", f"unix:{path},server=on,wait=on"]  # see start()
        return argv

    def start(self, timeout: float = 60.0) -> Self:
        """Start QEMU and wait until its monitors are ready: each greeted a first client.

        QEMU listens before its monitor is ready: it makes the socket early and moves the
        monitor's handlers to its I/O thread later (a bottom half). With ``wait=off`` a
        client that connects before that move can be accepted by QEMU's main loop, and is
        then sent an event first, the greeting twice, no greeting, or has its first command
        read in two parts -- and the socket can stay that way for later clients (7.2 and
        10.0; a few connects in a thousand under load, at the ``mon`` fixture's first
        message in a CI run). ``wait=on`` is QEMU's own order for it: QEMU accepts a first
        client on each socket while it starts, before it runs its main loop, and greets it
        once the monitor has moved; here that client closes after the greeting, and every
        later one is served by the monitor's thread. It writes nothing (nothing shows in a
        traced QEMU's command log), and the monitor stays never negotiated."""
        old = _socket_identity(self.socket_path)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        firsts: list[socket.socket] = []
        try:
            # QEMU makes the sockets one after the other, each once the one before has its
            # first client. It unlinks a stale socket and binds a new one: wait for a *new*
            # socket file, and for listen(2), which can lag bind(2) by a few ms.
            for path in [self.socket_path, *self.extra_sockets]:
                while (path == self.socket_path and _socket_identity(path) in (None, old)) or not _listening(path):
                    self._starting(deadline, f"QEMU did not create {path}")
                    time.sleep(0.005)
                first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                firsts.append(first)
                first.connect(str(path))
            for path, first in zip([self.socket_path, *self.extra_sockets], firsts, strict=True):
                first.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    greeting = json.loads(first.makefile("rb").readline() or b"null")
                except (OSError, ValueError) as err:
                    greeting = err
                if not (isinstance(greeting, dict) and "QMP" in greeting):
                    self._starting(0.0, f"QEMU's monitor {path} did not greet ({greeting!r})")
        finally:
            for first in firsts:
                first.close()
        return self

    def _starting(self, deadline: float, failure: str) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"QEMU exited with {self.proc.returncode}: {self.log()}")
        if time.monotonic() > deadline:
            self.kill()
            raise RuntimeError(f"{failure}: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace").strip()[-2000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, like a crash: the socket file stays behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


def _socket_identity(path: Path) -> tuple[int, int] | None:
    # Inode numbers get reused at once; (inode, ctime) tells a rebound socket apart.
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_ctime_ns) if stat.S_ISSOCK(st.st_mode) else None


_SO_ACCEPTCON = 0x10000


def _listening(path: Path) -> bool:
    """Whether some process listens on unix socket ``path`` (from /proc/net/unix)."""
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return True  # not Linux: the file's existence has to do
    want = str(path)
    for line in lines:
        parts = line.split(None, 7)
        if len(parts) == 8 and parts[7] == want and int(parts[3], 16) & _SO_ACCEPTCON:
            return True
    return False


class TracedQemu(QemuProcess):
    """A bare QEMU whose every QMP command is in its log (``-trace handle_qmp_command``)."""

    def argv(self) -> list[str]:
        return [*super().argv(), "-trace", "handle_qmp_command"]

    def commands(self) -> list[TracedCommand]:
        try:
            return traced_commands(self.log_path.read_text(errors="replace"))
        except OSError:
            return []


def qemu_io_reads(image: Path | None, byte: int, offset: int, length: int) -> bool:
    """Whether a (stopped VM's) qcow2 image holds ``byte`` at ``offset`` for ``length`` bytes."""
    assert image is not None, "a lab without a disk"
    out = subprocess.run(
        ["qemu-io", "-r", "-f", "qcow2", "-c", f"read -P {byte:#04x} {offset} {length}", str(image)],
        capture_output=True, text=True, check=False,
    )
    return out.returncode == 0 and "verification failed" not in out.stdout + out.stderr


requires_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")


def disks_differ(lab: Lab) -> str:
    """"" when a stopped lab's source and destination data disks hold the same data, else
    what ``qemu-img compare`` says."""
    images = [str(lab.src.disk_path), str(lab.dst.disk_path)]
    compare = subprocess.run(["qemu-img", "compare", *images], capture_output=True, text=True, check=False)
    return "" if compare.returncode == 0 else compare.stdout + compare.stderr
