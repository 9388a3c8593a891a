"""How close the convergence advisor's ETA lands to the real switchover.

    .venv/bin/python bench/eta_bench.py [--runs 5] [--qemu PATH]... [--out docs/benchmarks.md]

Each run: a fresh lab pair of the ``converge`` scenario (128 MiB guest dirtying 16 MiB at
2.8 MiB/s, max-bandwidth 4 MiB/s, downtime-limit 300 ms), a fresh engine (started as a view
starts it, in a private runtime directory) watched by a view over the engine protocol at
1 s polls, then ``migrate``. The view records every ``convergence`` message; the actual end
is QEMU's own MIGRATION completed stamp. Reported per run: the first ETA once 2 passes are
done (the advisor gives none before: it needs the RAM left at two syncs after the bulk copy)
against the time QEMU actually took from then, and the worst of every later ETA (errors
relative to the time that was left; ETAs under 1 s left out, where a poll's second is the
whole error).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from term import append, loadavg, machine, stop_engine  # bench/ is on sys.path when run as a script

from migtui.address import parse_addresses
from migtui.lab.lab import Lab
from migtui.lab.scenarios import SCENARIOS
from migtui.model.advisor import CONVERGING, NOT_CONVERGING, Advice
from migtui.protocol.messages import PolicyInfo
from migtui.protocol.runtime import runtime
from migtui.view.client import EngineClient

MiB = 1024 * 1024
SECTION = "## Convergence advisor: ETA against the real switchover"


async def one_run(qemu_binary: str | None) -> dict[str, Any]:
    scenario = SCENARIOS["converge"]
    assert scenario.bandwidth_mib_s is not None
    lab = Lab(memory_mib=128, dirty_mib=16, disk=False, dirty_rate_mib_s=scenario.dirty_rate_mib_s,
              qemu_binary=qemu_binary)
    directory = Path(tempfile.mkdtemp(prefix="mteta", dir="/tmp"))
    client = EngineClient(runtime(directory / "rt"), kind="eta_bench")
    try:
        await lab.start()
        await lab.prepare(storage=False, pause=False, max_bandwidth=int(scenario.bandwidth_mib_s * MiB))
        await client.connect(start=True)
        names = await client.watch(parse_addresses([f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]),
                                   PolicyInfo(), read_only=False, interval=1.0)
        await client.subscribe()
        src = client.sessions[names[0]]
        while not (src.connected and src.polls):
            await asyncio.sleep(0.05)
        seen: list[Advice] = []
        src.add_change_listener(lambda _s, _k: seen.append(src.convergence.advice)
                                if not seen or seen[-1] != src.convergence.advice else None)
        await lab.migrate()
        while src.state.migration_status not in ("completed", "failed", "cancelled"):
            await asyncio.sleep(0.05)
        if src.state.migration_status != "completed":
            raise RuntimeError(f"the migration ended {src.state.migration_status}")
        while not any(c.status == "completed" and c.source == "event" for c in src.state.status_changes):
            await asyncio.sleep(0.05)
        done = next(c.time for c in src.state.status_changes if c.status == "completed" and c.source == "event")
        etas = [a for a in seen if a.verdict == CONVERGING and a.eta_s is not None and a.at is not None]
        if not etas:
            raise RuntimeError("no ETA was given")
        first = etas[0]
        assert first.at is not None and first.eta_s is not None
        later = [abs(a.eta_s - (done - a.at)) / (done - a.at) for a in etas[1:]
                 if a.at is not None and a.eta_s is not None and done - a.at >= 1.0]
        return {
            "qemu": lab.qemu_version,
            "machine": machine(lab),
            "eta": first.eta_s,
            "actual": done - first.at,
            "error": abs(first.eta_s - (done - first.at)) / (done - first.at),
            "later_worst": max(later) if later else None,
            "passes": src.state.migration.pass_number,
            "total_s": (src.state.migration.total_time or 0) / 1000,
            "not_converging": any(a.verdict == NOT_CONVERGING for a in seen),
        }
    finally:
        await client.close()
        await stop_engine(directory / "rt")
        shutil.rmtree(directory, ignore_errors=True)
        await lab.stop()


def report(runs: list[dict[str, Any]], command: str, load: str) -> str:
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machines = "; ".join(dict.fromkeys(r["machine"] for r in runs))
    lines = [f"### {date}", "", f"- machine: {machines}; load average before the run {load}",
             "- lab: the `converge` scenario, 128 MiB guest dirtying 16 MiB at 2.8 MiB/s, max-bandwidth 4 MiB/s,"
             " downtime-limit 300 ms; one fresh lab pair and one fresh engine per run; polls every 1 s",
             f"- command: `{command}`", "",
             "| QEMU | run | first ETA (2 passes done) | actual | error | worst later ETA error | passes | total |"
             " called not-converging |",
             "|---|---|---|---|---|---|---|---|---|"]
    counts: dict[str, int] = {}
    for r in runs:
        counts[r["qemu"]] = i = counts.get(r["qemu"], 0) + 1
        later = f"{r['later_worst']:.0%}" if r["later_worst"] is not None else "--"
        lines.append(f"| {r['qemu']} | {i} | {r['eta']:.1f} s | {r['actual']:.1f} s | {r['error']:.0%} | {later}"
                     f" | {r['passes']} | {r['total_s']:.1f} s | {'yes' if r['not_converging'] else 'no'} |")
    for version in sorted({r["qemu"] for r in runs}):
        errors = [r["error"] for r in runs if r["qemu"] == version]
        lines.append("")
        lines.append(f"QEMU {version}: first-ETA error median {statistics.median(errors):.0%}, worst"
                     f" {max(errors):.0%} over {len(errors)} runs (target: within 30 %).")
    lines.append("")
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per QEMU (default 5)")
    parser.add_argument("--qemu", action="append", default=[], help="a qemu-system-x86_64 (repeatable; default PATH's)")
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file's section")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python", "bench/eta_bench.py", *map(shlex.quote, sys.argv[1:])])
    load = loadavg()
    runs = []
    for binary in args.qemu or [None]:
        for i in range(args.runs):
            started = time.monotonic()
            run = await one_run(binary)
            runs.append(run)
            print(f"QEMU {run['qemu']} run {i + 1}/{args.runs}: ETA {run['eta']:.1f} s, actual {run['actual']:.1f} s,"
                  f" error {run['error']:.0%} ({time.monotonic() - started:.0f} s)", flush=True)
    text = report(runs, command, load)
    print(text)
    if args.out is not None:
        append(args.out, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
