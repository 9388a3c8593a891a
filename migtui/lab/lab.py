"""A real source/destination QEMU pair to migrate: the API tests and demos use.

Each VM has two QMP sockets: ``qmp_path`` is left free for the dashboard
(QEMU serves one client per socket), ``ctl_path`` is the lab's own, reached
through ``control()``. Everything lives in one private directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from qemu.qmp import ConnectError, EventListener, ExecuteError, QMPClient, QMPError

from migtui.errors import LabError
from migtui.model.coerce import as_mapping

from . import qemu
from .guest import guest_image

# Starting is judged by the work QEMU did, not the time it took: on a loaded machine it can
# wait long for a CPU. It fails once QEMU has had START_CPU_S of CPU time without getting
# there (TCG boots the guest in a fraction of a second), or after START_WALL_S however
# little CPU it got (a QEMU that is stopped or starved for good). Under a nested KVM that
# emulates the guest's instructions (this project's machine) SeaBIOS alone costs 5-7 s of CPU.
START_CPU_S = 30.0
START_WALL_S = 180.0
READY_TIMEOUT = 60.0  # mirror of an empty disk takes ~0.1 s
COMMAND_TIMEOUT = 10.0
MIRROR_JOB = "mirror-data0"
NBD_TARGET = "data0-target"
EXPORT = "data0"


ACCELS = ("auto", "kvm", "tcg")
ACCEL_ENV = "MIGTUI_LAB_ACCEL"


def default_accel() -> str:
    """The accelerator a lab runs on when none is asked for: $MIGTUI_LAB_ACCEL, else auto (KVM
    if it works, else TCG). A nested KVM that emulates the guest's instructions boots a lab in
    7-12 s of a core where TCG takes ~0.5 s (the test suite sets tcg: tests/conftest.py)."""
    value = os.environ.get(ACCEL_ENV, "").strip() or "auto"
    if value not in ACCELS:
        raise LabError(f"${ACCEL_ENV} must be auto, kvm or tcg, not {value!r}")
    return value


def _listening(path: Path) -> bool:
    """Whether a unix socket at path accepts connections (the probe closes at
    once; QEMU then serves the next client)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@dataclass
class LabVm:
    name: str  # "src" or "dst"
    qmp_path: Path  # dashboard socket: the lab never connects to it
    ctl_path: Path  # the lab's control socket
    serial_path: Path
    disk_path: Path | None
    boot_path: Path
    log_path: Path
    process: qemu.QemuProcess | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.process is not None, "lab not started"
        return self.process.pid

    @property
    def files(self) -> list[Path]:
        paths = [self.qmp_path, self.ctl_path, self.serial_path, self.boot_path, self.log_path]
        return paths + ([self.disk_path] if self.disk_path else [])


class Lab:
    """Start with ``async with Lab(...) as lab:`` (or ``await lab.start()``)."""

    def __init__(
        self,
        *,
        memory_mib: int = 128,
        dirty_mib: int = 16,
        disk: bool = True,
        disk_mib: int = 64,
        directory: Path | str | None = None,
        dirty_rate_mib_s: float | None = None,
        keep_files: bool = False,
        accel: str | None = None,
        qemu_binary: str | None = None,
        dirty_ring: int = 0,
        paused_destination: bool = False,
    ) -> None:
        if memory_mib < 16:
            raise LabError(f"--memory must be at least 16 MiB, not {memory_mib}")
        if disk and disk_mib < 1:
            raise LabError(f"--disk-size must be at least 1 MiB, not {disk_mib}")
        # Validates the range against the memory size before anything starts.
        self._image = guest_image(dirty_mib, rate_mib_s=dirty_rate_mib_s, memory_mib=memory_mib)
        self.memory_mib = memory_mib
        self.dirty_mib = dirty_mib
        self.dirty_rate_mib_s = dirty_rate_mib_s
        self.disk = disk
        self.disk_mib = disk_mib
        self.keep_files = keep_files
        accel = accel if accel is not None else default_accel()
        if accel not in ACCELS:
            raise LabError(f"accelerator must be auto, kvm or tcg, not {accel!r}")
        self.requested_accel = accel
        qemu.check_dirty_ring(dirty_ring, accel)
        self.requested_dirty_ring = dirty_ring
        self.paused_destination = paused_destination  # -S: it waits for cont after its migration
        self.dirty_ring = 0  # entries of KVM's dirty ring once started (0: none, or TCG)
        self.requested_qemu = qemu_binary  # None: $MIGTUI_QEMU, else PATH's
        self.qemu_path = "?"  # the binary run, once started
        self.qemu_version = "?"  # from query-version once started
        self._requested_dir = Path(directory) if directory is not None else None
        self._created_dir = False
        self.directory = self._requested_dir or Path()
        self.accel = "?"  # "kvm" or "tcg" once started
        self._clients: dict[str, QMPClient] = {}
        self._started = False
        self.listening = False  # the destination ran migrate-incoming (else it waits on -incoming defer)

    # -- layout -----------------------------------------------------------------

    def _vm(self, name: str) -> LabVm:
        d = self.directory
        return LabVm(
            name=name,
            qmp_path=d / f"{name}.qmp",
            ctl_path=d / f"{name}-ctl.qmp",
            serial_path=d / f"{name}.serial",
            disk_path=d / f"{name}-data.qcow2" if self.disk else None,
            boot_path=d / f"{name}-boot.img",
            log_path=d / f"{name}.log",
        )

    @property
    def migration_uri(self) -> str:
        return f"unix:{self.directory / 'migrate.sock'}"

    @property
    def nbd_path(self) -> Path:
        return self.directory / "nbd.sock"

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _make_directory(self) -> None:
        if self._requested_dir is None:
            self.directory = Path(tempfile.mkdtemp(prefix="migtui-lab-"))
            self._created_dir = True
        elif not self._requested_dir.exists():
            self._requested_dir.mkdir(mode=0o700, parents=True)
            self.directory = self._requested_dir.resolve()
            self._created_dir = True
        elif not self._requested_dir.is_dir():
            raise LabError(f"--dir {self._requested_dir} exists and is not a directory")
        else:  # the caller's own directory: used as it is
            self.directory = self._requested_dir.resolve()
            return
        os.chmod(self.directory, 0o700)  # the sockets inside give full control of the VMs

    async def start(self) -> None:
        binary = qemu.find_qemu(self.requested_qemu)
        qemu_img = qemu.find_qemu_img(binary) if self.disk else None
        self.qemu_path = binary
        self._make_directory()
        self.src, self.dst = self._vm("src"), self._vm("dst")
        self._started = True
        try:
            for path in (self.nbd_path, self.directory / "migrate.sock"):
                qemu.check_socket_path(path)
            for vm in (self.src, self.dst):
                qemu.check_socket_path(vm.ctl_path)
                vm.boot_path.write_bytes(self._image)
                if vm.disk_path is not None and qemu_img is not None:
                    qemu.create_disk(qemu_img, vm.disk_path, self.disk_mib)
                vm.process = qemu.QemuProcess(
                    vm.name,
                    qemu.qemu_argv(
                        binary,
                        memory_mib=self.memory_mib,
                        boot_path=vm.boot_path,
                        serial_path=vm.serial_path,
                        monitors=[vm.qmp_path, vm.ctl_path],
                        disk_path=vm.disk_path,
                        incoming=vm is self.dst,
                        accel=self.requested_accel,
                        dirty_ring=self.requested_dirty_ring,
                        paused=vm is self.dst and self.paused_destination,
                    ),
                    vm.log_path,
                )
                vm.process.start()
            for vm in (self.src, self.dst):
                await self._connect(vm)
            await self._wait_for_guest(self.src)
            kvm = await self._execute(self.src, "query-kvm")
            self.accel = "kvm" if kvm.get("enabled") else "tcg"
            # A kernel without KVM's dirty ring makes QEMU warn and use the bitmap.
            no_ring = "dirty ring not available" in self.src.log_path.read_text(errors="replace")
            self.dirty_ring = self.requested_dirty_ring if self.accel == "kvm" and not no_ring else 0
            version = await self._execute(self.src, "query-version")
            q = version.get("qemu", {})
            self.qemu_version = f"{q.get('major')}.{q.get('minor')}.{q.get('micro')}"
        except BaseException:
            await self.stop()
            raise

    async def _connect(self, vm: LabVm) -> QMPClient:
        """Connect the control client once QEMU listens, failing fast if QEMU
        exits. A plain socket probes first: QEMU binds the path a moment before
        it listens, and qemu.qmp would log every refused attempt."""
        assert vm.process is not None
        deadline = time.monotonic() + START_WALL_S
        while True:
            if not vm.process.running():
                raise vm.process.exit_error()
            if _listening(vm.ctl_path):
                client = QMPClient(f"lab-{vm.name}")
                try:
                    await asyncio.wait_for(client.connect(str(vm.ctl_path)), max(deadline - time.monotonic(), 10.0))
                except (TimeoutError, ConnectError) as err:
                    # Usually QEMU hung up because it is exiting on a bad option.
                    if await vm.process.wait(3.0):
                        raise vm.process.exit_error() from err
                    raise LabError(f"{vm.name} QEMU did not answer on {vm.ctl_path}: {err}") from err
                self._clients[vm.name] = client
                return client
            if _start_failed(vm, deadline):
                raise LabError(f"{vm.name} QEMU did not create {vm.ctl_path} ({_spent(vm)}):"
                               f" {vm.process.last_error()}")
            await asyncio.sleep(0.02)

    async def _wait_for_guest(self, vm: LabVm) -> None:
        """Until the guest's first 'A': it has booted and filled its range."""
        assert vm.process is not None
        deadline = time.monotonic() + START_WALL_S
        while self.serial_size(vm) == 0:
            if not vm.process.running():
                raise vm.process.exit_error()
            if _start_failed(vm, deadline):
                raise LabError(f"{vm.name} guest wrote nothing to its serial port ({_spent(vm)})")
            await asyncio.sleep(0.02)

    async def control(self, vm: LabVm) -> QMPClient:
        """The connected QMPClient on vm's control socket (one per VM, cached)."""
        client = self._clients.get(vm.name)
        if client is None:
            client = await self._connect(vm)
        return client

    async def _execute(self, vm: LabVm, command: str, arguments: dict[str, Any] | None = None) -> Any:
        client = await self.control(vm)
        try:
            return await asyncio.wait_for(client.execute(command, arguments), COMMAND_TIMEOUT)
        except ExecuteError as err:
            raise LabError(f"{vm.name}: {command} failed: {err.error.error.desc}") from err
        except TimeoutError as err:
            raise LabError(f"{vm.name}: {command} got no answer within {COMMAND_TIMEOUT:.0f} s") from err
        except QMPError as err:
            raise LabError(f"{vm.name}: {command} failed: the control connection broke ({err})") from err

    async def stop(self) -> None:
        """quit over QMP, then SIGTERM, then SIGKILL; remove the lab's files."""
        if not self._started:
            return
        self._started = False
        vms = [vm for vm in (getattr(self, "src", None), getattr(self, "dst", None)) if vm is not None]
        await asyncio.gather(*(self._stop_vm(vm) for vm in vms))
        if not self.keep_files:
            if self._created_dir:
                shutil.rmtree(self.directory, ignore_errors=True)
            else:
                for path in [p for vm in vms for p in vm.files] + [self.nbd_path, self.directory / "migrate.sock"]:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    async def _stop_vm(self, vm: LabVm) -> None:
        client = self._clients.pop(vm.name, None)
        if client is not None:
            if vm.process is not None and vm.process.running():
                # QEMU closes the socket as it quits: any outcome is fine.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.execute("quit"), 2.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)
        if vm.process is not None and not await vm.process.wait(3.0):
            await vm.process.terminate()

    # -- migration --------------------------------------------------------------

    async def prepare(
        self,
        *,
        storage: bool,
        pause: bool = True,
        max_bandwidth: int | None = None,
        downtime_limit: int | None = None,
        incoming: bool = True,
    ) -> None:
        """Make the pair ready so that only ``migrate`` remains.

        With storage, the destination exports its data disk over NBD and the
        source mirrors into it; this returns once the mirror is in sync. Without
        ``incoming`` the destination keeps waiting on ``-incoming defer`` (a start
        from migtui runs migrate-incoming itself; ``migrate`` here runs it first).
        """
        if storage and not self.disk:
            raise LabError("storage migration needs the data disk: drop --no-disk")
        events = {"capability": "events", "state": True}
        await self._execute(self.dst, "migrate-set-capabilities", {"capabilities": [events]})
        if storage:
            await self._execute(self.dst, "nbd-server-start",
                                {"addr": {"type": "unix", "data": {"path": str(self.nbd_path)}}})
            await self._execute(self.dst, "block-export-add",
                                {"type": "nbd", "id": EXPORT, "node-name": "data0", "name": EXPORT, "writable": True})
        if incoming:
            await self._listen()
        if storage:
            await self._execute(self.src, "blockdev-add", {
                "driver": "nbd", "node-name": NBD_TARGET, "export": EXPORT,
                "server": {"type": "unix", "path": str(self.nbd_path)},
            })
            await self._mirror()
        capabilities = [events]
        if pause:
            capabilities.append({"capability": "pause-before-switchover", "state": True})
        await self._execute(self.src, "migrate-set-capabilities", {"capabilities": capabilities})
        parameters: dict[str, int] = {}
        if max_bandwidth is not None:
            parameters["max-bandwidth"] = int(max_bandwidth)
        if downtime_limit is not None:
            parameters["downtime-limit"] = int(downtime_limit)
        if parameters:
            await self._execute(self.src, "migrate-set-parameters", parameters)

    async def _mirror(self) -> None:
        client = await self.control(self.src)
        listener = EventListener(("BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_ERROR"),
                                 lambda ev: as_mapping(ev.get("data")).get("device") == MIRROR_JOB)
        with client.listen(listener):  # registered before the job can emit anything
            await self._execute(self.src, "blockdev-mirror",
                                {"job-id": MIRROR_JOB, "device": "data0", "target": NBD_TARGET, "sync": "full"})
            try:
                event = await asyncio.wait_for(listener.get(), READY_TIMEOUT)
            except TimeoutError as err:
                raise LabError(f"disk mirror did not get in sync within {READY_TIMEOUT:.0f} s") from err
        if event["event"] != "BLOCK_JOB_READY":
            detail = as_mapping(event.get("data")).get("error", event["event"])
            raise LabError(f"disk mirror to the destination failed: {detail}")

    async def _listen(self) -> None:
        await self._execute(self.dst, "migrate-incoming", {"uri": self.migration_uri})
        self.listening = True

    async def migrate(self) -> None:
        if not self.listening:
            await self._listen()
        await self._execute(self.src, "migrate", {"uri": self.migration_uri})

    # -- guest helpers ----------------------------------------------------------

    async def write_pattern(self, vm: LabVm, offset: int, length: int, byte: int) -> None:
        """Write ``length`` bytes of ``byte`` at ``offset`` into vm's data disk the
        way the guest's own writes go: through its virtio-blk device's block backend
        (HMP ``qemu-io -d <its QOM path>``), so they pass the mirror's filter like guest I/O.
        (Writing to node data0 bypasses that filter: QEMU 10 does not mirror it.)"""
        if not self.disk:
            raise LabError("write_pattern needs the data disk")
        if not (0 <= byte <= 255 and offset >= 0 and length > 0):
            raise LabError(f"bad pattern: offset={offset} length={length} byte={byte}")
        line = f'qemu-io -d {qemu.DATA_BACKEND} "write -P {byte:#04x} {int(offset)} {int(length)}"'
        # HMP answers "" on success: qemu-io's own report goes to QEMU's stdout
        # (the VM's log file); anything the monitor says is an error.
        output = str(await self._execute(vm, "human-monitor-command", {"command-line": line})).strip()
        if output:
            raise LabError(f"{vm.name}: qemu-io write failed: {output.splitlines()[-1]}")

    def serial_size(self, vm: LabVm) -> int:
        try:
            return vm.serial_path.stat().st_size
        except FileNotFoundError:
            return 0


def _start_failed(vm: LabVm, deadline: float) -> bool:
    """QEMU had its CPU time to start and did not, or the wall-clock backstop passed."""
    assert vm.process is not None
    return vm.process.cpu_seconds() >= START_CPU_S or time.monotonic() >= deadline


def _spent(vm: LabVm) -> str:
    assert vm.process is not None
    return f"after {vm.process.cpu_seconds():.1f} s of CPU time, at most {START_CPU_S:g}, or {START_WALL_S:g} s in all"
