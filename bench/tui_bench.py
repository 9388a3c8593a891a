"""Dashboard cost: the real ``migtui`` (view + engine) side by side with htop in the same terminal size.

    .venv/bin/python bench/tui_bench.py [--seconds 60] [--monitors 50] [--qemu PATH] [--out FILE]

One run does all of it, so both programs see the same (noisy) machine:

1. A real lab pair runs the ``stuck`` scenario (dirty rate above bandwidth, so the
   migration stays active for the whole measurement).
2. ``migtui src=... dst=...`` (default 1 s interval; it starts its own engine in a
   private runtime directory) and ``htop -d 10`` each run in their own 100x30
   pseudo-terminal at the same time. After 5 s of warm-up, over ``--seconds`` we count
   the CPU time of the view, of the engine and of htop (/proc/PID/stat utime+stime)
   and every byte each terminal receives.
3. Startup to first frame: from spawning migtui (no engine running: it starts one) to
   the output that shows the source's name (median of 3 starts).
4. ``--monitors N``: N real QEMUs (the lab pair plus ``-M none`` instances) watched by
   one migtui; CPU of view + engine over ``--seconds / 2`` and the delay from a key
   press (down arrow) to the first bytes the view writes back (median and max of 20).

Targets (issue 8): view + engine <= 2 % of one core, terminal bytes <= htop's.
Prints a Markdown block and appends it to ``--out`` (docs/benchmarks.md) when given.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from term import Migtui, PtyProcess, append, cpu_seconds, loadavg, machine

from migtui.lab.lab import Lab
from migtui.lab.qemu import find_qemu
from migtui.lab.scenarios import SCENARIOS

COLS, ROWS = 100, 30
SECTION = "## Dashboard cost: migtui vs htop in the same terminal"


async def wait_until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def startup_time(monitors: list[str]) -> float:
    app = Migtui(monitors, cols=COLS, rows=ROWS)
    try:
        await app.term.wait_for(lambda t: "src" in t, 20, "first frame")
        return app.term.first_arrival("src", 0) - app.term.started
    finally:
        await app.stop()


def start_idle_qemus(binary: str, directory: Path, n: int) -> tuple[list[subprocess.Popen], list[Path]]:
    procs, socks = [], []
    for i in range(n):
        sock = directory / f"idle{i:02d}.qmp"
        procs.append(subprocess.Popen(
            [binary, "-M", "none", "-nodefaults", "-display", "none", "-qmp", f"unix:{sock},server=on,wait=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        socks.append(sock)
    return procs, socks


async def key_latency(term: PtyProcess, presses: int) -> list[float]:
    """ms from writing a key to the first bytes the view writes after it."""
    delays = []
    for i in range(presses):
        await asyncio.sleep(0.4)
        seen = len(term.arrivals)
        pressed = term.send(b"\x1b[B" if i % 2 == 0 else b"\x1b[A")
        await wait_until(lambda seen=seen: len(term.arrivals) > seen, 5, "a reaction to a key")
        delays.append(1000 * (term.arrivals[seen][0] - pressed))
    return delays


async def steady(app: Migtui, htop: PtyProcess | None, seconds: float) -> dict[str, float]:
    """CPU (% of one core) of the view, the engine and htop, and terminal bytes/s, over one window."""
    assert app.engine_pid is not None
    pids = {"view": app.term.pid, "engine": app.engine_pid}
    if htop is not None:
        pids["htop"] = htop.pid
    terms = {"migtui": app.term, **({"htop": htop} if htop is not None else {})}
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    bytes0 = {k: t.total for k, t in terms.items()}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    out = {f"{k}_cpu": 100 * (cpu_seconds(p) - cpu0[k]) / dt for k, p in pids.items()}
    out.update({f"{k}_bps": (t.total - bytes0[k]) / dt for k, t in terms.items()})
    out["migtui_cpu"] = out["view_cpu"] + out["engine_cpu"]
    if app.term.proc.poll() is not None:
        raise SystemExit("bench: migtui exited during the measurement:\n" + app.term.text[-2000:])
    return out


async def main(args: argparse.Namespace) -> str:
    scenario = SCENARIOS["stuck"]
    assert scenario.bandwidth_mib_s is not None  # "stuck" caps the bandwidth below the dirty rate
    binary = find_qemu(args.qemu)
    rows: list[str] = []
    load = loadavg()
    async with Lab(memory_mib=128, dirty_mib=16, disk=False, dirty_rate_mib_s=scenario.dirty_rate_mib_s,
                   qemu_binary=args.qemu) as lab:
        await lab.prepare(storage=False, pause=False, max_bandwidth=int(scenario.bandwidth_mib_s * 1024 * 1024))
        await lab.migrate()
        pair = [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]

        starts = [await startup_time(pair) for _ in range(3)]

        app = Migtui(pair, cols=COLS, rows=ROWS)
        htop = PtyProcess(["htop", "-d", "10"], COLS, ROWS)
        try:
            await app.wait_engine()
            await asyncio.sleep(5)  # warm-up: imports, first polls, first full paint
            s = await steady(app, htop, args.seconds)
        finally:
            htop.stop()
            await app.stop()
        cpu_ok = "PASS" if s["migtui_cpu"] <= 2.0 else "FAIL"
        bytes_ok = "PASS" if s["migtui_bps"] <= s["htop_bps"] else "FAIL"
        rows += [
            f"| watch src + dst, active migration, {args.seconds:.0f} s | migtui (view + engine) |"
            f" **{s['migtui_cpu']:.2f} %** (view {s['view_cpu']:.2f}, engine {s['engine_cpu']:.2f}) |"
            f" **{s['migtui_bps'] / 1000:.2f} KB/s** |",
            f"| same window, same size | htop -d 10 | {s['htop_cpu']:.2f} % | {s['htop_bps'] / 1000:.2f} KB/s |",
            f"| targets | | <= 2 %: **{cpu_ok}** | <= htop's: **{bytes_ok}** |",
            f"| startup to first frame, engine started too (median of 3) | migtui |"
            f" {1000 * statistics.median(starts):.0f} ms | |",
        ]

        if args.monitors:
            tmp = Path(tempfile.mkdtemp(prefix="mtbq", dir="/tmp"))
            idle, socks = start_idle_qemus(binary, tmp, max(0, args.monitors - 2))
            try:
                await wait_until(lambda: all(s.exists() for s in socks), 20, "the idle QEMUs' sockets")
                many = Migtui(pair + [str(s) for s in socks], cols=COLS, rows=ROWS)
                try:
                    await many.wait_engine()
                    await asyncio.sleep(8)  # 50 connections, first polls
                    m = await steady(many, None, args.seconds / 2)
                    delays = await key_latency(many.term, 20)
                finally:
                    await many.stop()
            finally:
                for p in idle:
                    p.kill()
                for p in idle:
                    p.wait()
                shutil.rmtree(tmp, ignore_errors=True)
            rows += [
                f"| watch {args.monitors} monitors, {args.seconds / 2:.0f} s | migtui (view + engine) |"
                f" {m['migtui_cpu']:.2f} % (view {m['view_cpu']:.2f}, engine {m['engine_cpu']:.2f}) |"
                f" {m['migtui_bps'] / 1000:.2f} KB/s |",
                f"| key press to answer, {args.monitors} monitors (median / max of 20) | migtui |"
                f" {statistics.median(delays):.0f} / {max(delays):.0f} ms | |",
            ]
        mach = machine(lab)

    command = " ".join([".venv/bin/python", "bench/tui_bench.py", *map(shlex.quote, sys.argv[1:])])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        f"### {when}, QEMU {mach.split('QEMU ')[1].split(',')[0]}",
        "",
        f"- machine: {mach}; load average before the run {load}",
        f"- terminal {COLS}x{ROWS}, `--interval 1` (the default), one engine per migtui started",
        f"- command: `{command}`",
        "",
        "| what | program | CPU (% of one core) or time | terminal output |",
        "| --- | --- | --- | --- |",
    ]
    return "\n".join(head + rows) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--monitors", type=int, default=50, help="0 skips the many-monitor part")
    parser.add_argument("--qemu", help="the qemu-system-x86_64 to run (default: $MIGTUI_QEMU, else PATH's)")
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file's section")
    a = parser.parse_args()
    if not shutil.which("htop"):
        raise SystemExit("bench: htop is missing: apt-get install -y htop")
    table = asyncio.run(main(a))
    print(table)
    if a.out:
        append(a.out, SECTION, table)
        print(f"appended to {a.out}")
