"""What the terminal benchmarks share: the real ``migtui`` in a pseudo-terminal, its
engine, a lab whose QEMUs log each QMP command they receive, and the machine line.

Every time here is ``time.time()``: the host's wall clock, the clock QEMU stamps its
events and trace lines with, so the two can be subtracted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import platform
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from machine import cpu_model  # bench/ is on sys.path when run as a script

from migtui.lab import qemu
from migtui.lab.lab import Lab, LabVm

ROOT = Path(__file__).resolve().parent.parent
MIGTUI = [sys.executable, "-m", "migtui"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
ESCAPES = re.compile(rb"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|P[^\x1b]*\x1b\\|[@-Z\\-_])")
# The dashboard's header once the engine has read the source's capabilities.
READY = re.compile(r"src\W+connected.*armed", re.S)
TRACE = re.compile(r"^\d+@(\d+\.\d+):handle_qmp_command mon (0x[0-9a-f]+) req: (.*)$")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads, those gone too), in seconds: in clock
    ticks (10 ms), which is +-0.025 % of a core over 40 s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid: int) -> dict[int, float] | None:
    """Each live thread's time on a CPU, in seconds, to the nanosecond (the scheduler's own
    count, /proc/PID/task/TID/schedstat); None if it cannot be read (a thread that ends
    while it is read, a kernel without schedstat)."""
    try:
        return {int(task.name): int((task / "schedstat").read_text().split()[0]) / 1e9
                for task in Path(f"/proc/{pid}/task").iterdir()}
    except (OSError, ValueError, IndexError):
        return None


def cpu_between(pid: int, before: tuple[float, dict[int, float] | None],
                after: tuple[float, dict[int, float] | None]) -> float:
    """CPU seconds between two ``(cpu_seconds, thread_cpu)`` readings: the threads' exact
    counts when the same threads lived at both (their sum misses a thread that ended), else
    the ticks."""
    ticks0, threads0 = before
    ticks1, threads1 = after
    if threads0 is not None and threads1 is not None and threads0.keys() == threads1.keys():
        return sum(threads1.values()) - sum(threads0.values())
    return ticks1 - ticks0


def cpu_reading(pid: int) -> tuple[float, dict[int, float] | None]:
    return cpu_seconds(pid), thread_cpu(pid)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class PtyProcess:
    """A program in its own pseudo-terminal of cols x rows. Keeps every byte count it
    writes, the text without escape sequences, and when each chunk arrived."""

    def __init__(self, argv: list[str], cols: int, rows: int, env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        full_env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows), **(env or {}))
        full_env.pop("NO_COLOR", None)
        self.argv = argv
        self.started = time.time()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=full_env, cwd=cwd,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.master = master
        os.set_blocking(master, False)
        self.total = 0  # bytes written to the terminal
        self.text = ""  # escape sequences removed
        self.arrivals: list[tuple[float, int, int]] = []  # (time, len(text) after, total bytes after)
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._read)
        self._reading = True

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        try:
            chunk = os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: the child closed its terminal
            self._unread()
            return
        now = time.time()
        self.total += len(chunk)
        self.text += ESCAPES.sub(b"", chunk).decode("utf-8", "replace")
        self.arrivals.append((now, len(self.text), self.total))
        self._changed.set()

    def _unread(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self.master)

    def send(self, data: bytes) -> float:
        """Write ``data`` as typed keys; returns the time just before the write."""
        now = time.time()
        os.write(self.master, data)
        return now

    async def wait_for(self, found: Callable[[str], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not found(self.text):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[2:4]} exited with {self.proc.returncode} while waiting"
                                   f" for {what}: {self.text[-500:]!r}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"no {what} on the screen within {timeout:.0f} s: {self.text[-500:]!r}") \
                        from None

    def first_arrival(self, text: str, since: int) -> float:
        """When the chunk that completed the first ``text`` after offset ``since`` arrived."""
        at = self.text.index(text, since) + len(text)
        return next(t for t, end, _ in self.arrivals if end >= at)

    def first_output_after(self, when: float) -> float | None:
        return next((t for t, _, _ in self.arrivals if t >= when), None)

    def stop(self) -> None:
        self._unread()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.close(self.master)


class Migtui:
    """``migtui [OPTIONS] MONITOR...`` in a terminal, with the engine it starts in its own
    (fresh, private, short) runtime directory; ``stop()`` ends both."""

    def __init__(self, monitors: list[str], *, cols: int, rows: int, options: Sequence[str] = (),
                 tree: Path = ROOT) -> None:
        self.runtime = Path(tempfile.mkdtemp(prefix="mtb", dir="/tmp"))
        self.runtime_dir = self.runtime / "rt"  # created 0700 by migtui itself
        self.term = PtyProcess([*MIGTUI, *options, "--runtime-dir", str(self.runtime_dir), *monitors], cols, rows,
                               env={"PYTHONPATH": str(tree)}, cwd=tree)
        self.engine_pid: int | None = None

    async def wait_engine(self, timeout: float = 15.0) -> int:
        """The engine's pid, once it serves (it writes engine.pid after listening)."""
        path = self.runtime_dir / "engine.pid"
        deadline = time.monotonic() + timeout
        while self.engine_pid is None:
            with contextlib.suppress(OSError, ValueError):
                self.engine_pid = int(path.read_text().strip())
                break
            if time.monotonic() > deadline or self.term.proc.poll() is not None:
                err = self.runtime_dir / "engine.err"
                why = err.read_text(errors="replace")[-500:] if err.exists() else ""
                raise RuntimeError(f"no engine.pid in {self.runtime_dir} within {timeout:.0f} s (view"
                                   f" {self.term.proc.poll()}, screen {self.term.text[-300:]!r}, engine.err {why!r})")
            await asyncio.sleep(0.02)
        return self.engine_pid

    def renice_view(self, niceness: int) -> None:
        """Lower the view's priority (every thread: Linux niceness is per thread); the
        engine it started keeps its own."""
        for task in Path(f"/proc/{self.term.pid}/task").iterdir():
            os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)

    async def stop(self) -> None:
        self.term.stop()
        await stop_engine(self.runtime_dir)
        shutil.rmtree(self.runtime, ignore_errors=True)


async def stop_engine(runtime_dir: Path) -> None:
    """SIGTERM the engine of ``runtime_dir`` (it leaves the VMs as they are), then SIGKILL."""
    try:
        pid = int((runtime_dir / "engine.pid").read_text().strip())
    except (OSError, ValueError):
        return  # never started, or already gone
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class TracedLab(Lab):
    """A lab whose QEMUs log every QMP command as they parse it (``-trace
    handle_qmp_command``, stamped with the wall clock by ``-msg timestamp=on``) to
    their log file. migtui/lab/qemu.py builds the command line; this adds two options."""

    async def start(self) -> None:
        plain = qemu.qemu_argv

        def traced(*args: Any, **kwargs: Any) -> list[str]:
            return [*plain(*args, **kwargs), "-trace", "handle_qmp_command", "-msg", "timestamp=on"]

        qemu.qemu_argv = traced
        try:
            await super().start()
        finally:
            qemu.qemu_argv = plain

    def commands(self, vm: LabVm) -> list[tuple[float, str, dict[str, Any]]]:
        """(when QEMU parsed it, command, arguments) for each QMP command vm received."""
        out = []
        for line in vm.log_path.read_text(errors="replace").splitlines():
            m = TRACE.match(line)
            if m:
                with contextlib.suppress(ValueError):
                    req = json.loads(m.group(3))
                    out.append((float(m.group(1)), str(req.get("execute")), req.get("arguments") or {}))
        return out


def event_time(event: Mapping[str, Any]) -> float:
    ts: Any = event["timestamp"]
    return ts["seconds"] + ts["microseconds"] / 1e6


def machine(lab: Lab) -> str:
    return (f"{os.cpu_count()} CPUs ({cpu_model()}), {lab.accel}, QEMU {lab.qemu_version}, Python"
            f" {platform.python_version()}, Linux {platform.release()}")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def append(path: Path, section: str, text: str) -> None:
    """Add ``text`` at the end of ``section`` of a Markdown file (the section is made at
    the end of the file if absent); the other sections stay as they are."""
    existing = path.read_text() if path.exists() else "# Benchmarks\n"
    if section not in existing:
        updated = existing.rstrip("\n") + "\n\n" + section + "\n\n" + text
    else:
        at = existing.index(section)
        nxt = existing.find("\n## ", at + len(section))
        head, tail = (existing, "") if nxt < 0 else (existing[:nxt + 1], existing[nxt + 1:])
        updated = head.rstrip("\n") + "\n\n" + text + ("\n" + tail if tail else "")
    path.write_text(updated)
