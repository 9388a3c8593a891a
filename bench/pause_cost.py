"""What the real ``migtui`` costs while a guest waits in pre-switchover: dialog open, then closed.

    .venv/bin/python bench/pause_cost.py [--runs 3] [--seconds 10] [--tree NAME=PATH ...]

Each run is one fresh lab pair armed with pause-before-switchover (bench/pause_bench.py's
storage migration) and one fresh ``migtui src=... dst=...`` (view + its own engine) in a
100x30 pseudo-terminal. Once QEMU pauses, the dialog opens by itself; the CPU time of the
view and of the engine is counted (per thread, schedstat) for ``--seconds`` with the dialog
open, then, after ``n`` closed it, for as long with only the dashboard's banner ticking.
While a guest is stopped both clocks tick every 0.1 s; this shows what a tick costs the
view with the dialog over the dashboard, and without. The pause is then aborted (``s``,
``x``, ``enter``), so the guest runs again.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from term import READY, ROOT, Migtui, TracedLab, cpu_between, cpu_reading, loadavg, machine

COLS, ROWS = 100, 30
MARKER = "paused before switchover"  # the dialog's title


async def measure(pids: dict[str, int], seconds: float) -> dict[str, float]:
    before = {who: cpu_reading(pid) for who, pid in pids.items()}
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.sleep(seconds)
    wall = loop.time() - start
    return {who: 100 * cpu_between(pid, before[who], cpu_reading(pid)) / wall for who, pid in pids.items()}


async def one_run(args: argparse.Namespace, tree: Path) -> tuple[dict[str, dict[str, float]], str]:
    """({phase: {process: % of one core}}, the machine)."""
    async with TracedLab(memory_mib=64, dirty_mib=4, disk_mib=16, accel=args.accel, qemu_binary=args.qemu) as lab:
        await lab.prepare(storage=True, pause=True, max_bandwidth=1 << 30, downtime_limit=500)
        app = Migtui([f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"], cols=COLS, rows=ROWS, tree=tree)
        try:
            pids = {"view": app.term.pid, "engine": await app.wait_engine()}
            term = app.term
            await term.wait_for(lambda t: READY.search(t) is not None and "dst" in t, 60, "both monitors ready")
            since = len(term.text)
            await lab.migrate()
            await term.wait_for(lambda t: MARKER in t[since:], 60, "the switchover dialog")
            await asyncio.sleep(1.0)  # its opening is over
            dialog = await measure(pids, args.seconds)
            term.send(b"n")
            await asyncio.sleep(1.0)
            banner = await measure(pids, args.seconds)
            for key in (b"s", b"x", b"\r"):  # abort: the source runs again
                term.send(key)
                await asyncio.sleep(0.5)
            return {"dialog open": dialog, "dialog closed": banner}, machine(lab)
        finally:
            await app.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    parser.add_argument("--qemu", help="the qemu-system-x86_64 to run (default: $MIGTUI_QEMU, else PATH's)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="a migtui checkout to run (repeatable; default: this one)")
    args = parser.parse_args()
    trees = [(name, Path(path)) for name, _, path in (t.partition("=") for t in args.tree)] or [("this tree", ROOT)]
    print(" ".join([".venv/bin/python", "bench/pause_cost.py", *map(shlex.quote, sys.argv[1:])]))
    print(f"load average before: {loadavg()}")
    runs: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name, _ in trees}
    host = ""
    for n in range(args.runs):
        for name, tree in trees if n % 2 == 0 else trees[::-1]:
            run, host = await one_run(args, tree)
            runs[name].append(run)
            print(f"run {n + 1}/{args.runs} {name}: " + "; ".join(
                f"{phase}: view {run[phase]['view']:.2f} %, engine {run[phase]['engine']:.2f} %"
                for phase in ("dialog open", "dialog closed")), flush=True)
    print(f"machine: {host}")
    print("| migtui from | phase | view (% of one core, median) | engine |")
    print("| --- | --- | --- | --- |")
    for name, _ in trees:
        for phase in ("dialog open", "dialog closed"):
            view = statistics.median(r[phase]["view"] for r in runs[name])
            engine = statistics.median(r[phase]["engine"] for r in runs[name])
            print(f"| {name} | {phase} | {view:.2f} % | {engine:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
