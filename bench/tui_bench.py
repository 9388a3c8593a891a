"""Dashboard cost, measured side by side with htop in the same terminal size.

    .venv/bin/python bench/tui_bench.py [--seconds 60] [--monitors 50] [--out FILE]

One run does all of it, so both programs see the same (noisy) machine:

1. A real lab pair runs the ``stuck`` scenario (dirty rate above bandwidth, so the
   migration stays active for the whole measurement).
2. ``migtui src=...`` (default 1 s interval) and ``htop -d 10`` each run in their own
   pseudo-terminal of 100x30 at the same time. Over ``--seconds`` we count the CPU
   time of each process (/proc/PID/stat utime+stime) and every byte it writes to its
   terminal.
3. Startup to first frame: from spawning migtui to the first output that shows the
   monitor's name (median of 3 starts).
4. ``--monitors N``: N real QEMUs (the lab pair plus ``-M none`` instances) watched by
   one migtui; CPU over ``--seconds / 2`` and the delay from a key press (down arrow)
   to the first bytes the app writes back (median and max of 20 presses).

Prints a Markdown table and appends it to ``--out`` (docs/benchmarks.md) when given.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import platform
import pty
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from migtui.lab.command import SCENARIOS
from migtui.lab.lab import Lab

from machine import cpu_model  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
MIGTUI = [sys.executable, "-m", "migtui"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
COLS, ROWS = 100, 30


class PtyProcess:
    """A program in its own pseudo-terminal; counts every byte it writes to it."""

    def __init__(self, argv: list[str], cols: int = COLS, rows: int = ROWS) -> None:
        self.argv = argv
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        env.pop("NO_COLOR", None)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True, cwd=ROOT)
        os.close(slave)
        self.master = master
        os.set_blocking(master, False)
        self.total = 0
        self.buffer = bytearray()
        self.last_output = 0.0
        self.chunks: list[tuple[float, int]] = []

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: the child closed its terminal
            asyncio.get_running_loop().remove_reader(self.master)
            return
        now = time.monotonic()
        self.total += len(data)
        self.last_output = now
        self.chunks.append((now, len(data)))
        if len(self.buffer) < 4_000_000:
            self.buffer += data

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.master)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.close(self.master)


async def wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def measure_steady(procs: dict[str, PtyProcess], seconds: float) -> dict[str, tuple[float, float]]:
    """CPU % of one core and terminal bytes/s of each process over the same window."""
    start = {k: (p.cpu_seconds(), p.total) for k, p in procs.items()}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    return {k: (100 * (p.cpu_seconds() - start[k][0]) / dt, (p.total - start[k][1]) / dt)
            for k, p in procs.items()}


async def startup_time(loop: asyncio.AbstractEventLoop, argv: list[str], marker: bytes) -> float:
    p = PtyProcess(argv)
    p.attach(loop)
    try:
        await wait_for(lambda: marker in p.buffer, 10, "first frame")
        return p.last_output - p.started
    finally:
        p.stop(loop)


def start_idle_qemus(directory: Path, n: int) -> tuple[list[subprocess.Popen], list[Path]]:
    procs, socks = [], []
    for i in range(n):
        sock = directory / f"idle{i:02d}.qmp"
        procs.append(subprocess.Popen(
            ["qemu-system-x86_64", "-M", "none", "-nodefaults", "-display", "none",
             "-qmp", f"unix:{sock},server=on,wait=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        socks.append(sock)
    return procs, socks


async def key_latency(p: PtyProcess, presses: int) -> list[float]:
    """ms from writing a key to the first bytes the app writes after it."""
    delays = []
    for i in range(presses):
        await asyncio.sleep(0.4)
        seen = len(p.chunks)
        t0 = time.monotonic()
        p.send(b"\x1b[B" if i % 2 == 0 else b"\x1b[A")
        await wait_for(lambda: len(p.chunks) > seen, 5, "a reaction to a key")
        delays.append(1000 * (p.chunks[seen][0] - t0))
    return delays


def machine() -> str:
    cpu = cpu_model()
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return f"{os.cpu_count()} cores, {cpu}, {platform.python_implementation()} {platform.python_version()}, {qemu}"


async def main(args: argparse.Namespace) -> str:
    loop = asyncio.get_running_loop()
    scenario = SCENARIOS["stuck"]
    rows: list[str] = []
    async with Lab(memory_mib=128, dirty_mib=16, disk=False,
                   dirty_rate_mib_s=scenario.dirty_rate_mib_s) as lab:
        await lab.prepare(storage=False, pause=False,
                          max_bandwidth=int(scenario.bandwidth_mib_s * 1024 * 1024))
        await lab.migrate()
        accel = lab.accel
        watch = MIGTUI + [f"src={lab.src.qmp_path}"]

        starts = [await startup_time(loop, watch, b"src") for _ in range(3)]

        migtui = PtyProcess(watch)
        htop = PtyProcess(["htop", "-d", "10"])
        for p in (migtui, htop):
            p.attach(loop)
        await asyncio.sleep(5)  # warm-up: imports, first polls, first full paint
        steady = await measure_steady({"migtui": migtui, "htop": htop}, args.seconds)
        alive = migtui.proc.poll() is None
        for p in (migtui, htop):
            p.stop(loop)
        if not alive:
            raise SystemExit("bench: migtui exited during the measurement:\n"
                             + migtui.buffer[-2000:].decode(errors="replace"))

        rows.append(f"| watch 1 VM, active migration, {args.seconds:.0f} s | migtui | "
                    f"{steady['migtui'][0]:.2f} % | {steady['migtui'][1] / 1000:.2f} KB/s |")
        rows.append(f"| same window, same size | htop -d 10 | "
                    f"{steady['htop'][0]:.2f} % | {steady['htop'][1] / 1000:.2f} KB/s |")
        rows.append(f"| startup to first frame (median of 3) | migtui | {1000 * statistics.median(starts):.0f} ms | |")

        if args.monitors:
            tmp = Path(tempfile.mkdtemp(prefix="migtui-bench-"))
            idle, socks = start_idle_qemus(tmp, max(0, args.monitors - 2))
            try:
                deadline = time.monotonic() + 20
                while not all(s.exists() for s in socks) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                many = PtyProcess(MIGTUI + [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]
                                  + [str(s) for s in socks])
                many.attach(loop)
                await asyncio.sleep(8)  # 50 connections, first polls
                cpu = await measure_steady({"many": many}, args.seconds / 2)
                delays = await key_latency(many, 20)
                many.stop(loop)
            finally:
                for p in idle:
                    p.kill()
                for p in idle:
                    p.wait()
                shutil.rmtree(tmp, ignore_errors=True)
            rows.append(f"| watch {args.monitors} monitors, {args.seconds / 2:.0f} s | migtui | "
                        f"{cpu['many'][0]:.2f} % | {cpu['many'][1] / 1000:.2f} KB/s |")
            rows.append(f"| key press to answer, {args.monitors} monitors (median / max of 20) | migtui | "
                        f"{statistics.median(delays):.0f} / {max(delays):.0f} ms | |")

    head = [
        f"### Dashboard cost -- {time.strftime('%Y-%m-%d')}, {machine()}, accel {accel}",
        "",
        f"Terminal {COLS}x{ROWS}, `--interval 1`, command: "
        f"`.venv/bin/python bench/tui_bench.py --seconds {args.seconds:.0f} --monitors {args.monitors}`",
        "",
        "| what | program | CPU (one core) or time | terminal output |",
        "| --- | --- | --- | --- |",
    ]
    return "\n".join(head + rows) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--monitors", type=int, default=50)
    parser.add_argument("--out", type=Path, help="append the table to this file")
    a = parser.parse_args()
    if not shutil.which("htop"):
        raise SystemExit("bench: htop is missing: apt-get install -y htop")
    table = asyncio.run(main(a))
    print(table)
    if a.out:
        with a.out.open("a") as f:
            f.write("\n" + table)
