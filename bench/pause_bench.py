"""How long the guest waits in pre-switchover: migtui --auto-resume vs a direct client.

    .venv/bin/python bench/pause_bench.py [--runs 10] [--out docs/benchmarks.md]

Each run is one fresh lab pair (a migration is one-shot) with a mirrored data disk,
armed with pause-before-switchover, migrated over a unix socket:

- ``migtui``: a Monitor + MonitorSession per VM (default 1 s poll interval) and
  AutoResume on the source, exactly as ``migtui --auto-resume`` runs them (without
  the screen): on the MIGRATION pre-switchover event one fresh query-block-jobs, the
  checklist, block-job-cancel, migrate-continue on BLOCK_JOB_COMPLETED.
- ``direct``: bench/direct_client.py, a minimal qemu.qmp client doing the same steps
  on the event, knowing its mirror in advance.

The pause is measured from QEMU's own event timestamps (MIGRATION pre-switchover ->
MIGRATION device), read on the lab's control socket, so the client under test pays
nothing for the measurement. Runs alternate (ABBA order) on the same machine in one
process. Target (issue 4): migtui's median <= 1.2 x the direct client's + 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener, QMPClient

from migtui.address import parse_address
from migtui.lab.lab import MIRROR_JOB, Lab
from migtui.transport import Monitor
from migtui.workflow.autoresume import AutoResume
from migtui.workflow.session import MonitorSession
from migtui.workflow.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent))
from direct_client import switchover_on_event  # noqa: E402
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 60.0
SECTION = "## Pre-switchover pause: migtui --auto-resume vs a direct qemu.qmp client"


async def _wait(session: MonitorSession, pred: Callable[[], bool], timeout: float = 15.0) -> None:
    await wait_until(session, pred, timeout)


async def _until_end(listener: EventListener) -> dict[str, float]:
    """QEMU timestamps of each MIGRATION status, until the migration ends."""
    stamps: dict[str, float] = {}
    while True:
        event = await listener.get()
        ts = event["timestamp"]
        status = event["data"]["status"]
        stamps.setdefault(status, ts["seconds"] + ts["microseconds"] / 1e6)
        if status in ("completed", "failed", "cancelled"):
            return stamps


async def _run_migtui(lab: Lab) -> None:
    sessions = [MonitorSession(Monitor(parse_address(f"{vm.name}={vm.qmp_path}"))) for vm in (lab.src, lab.dst)]
    src, dst = sessions
    auto = AutoResume(src, dst)
    auto.start()
    for session in sessions:
        session.start()
    try:
        for session in sessions:
            await _wait(session, lambda s=session: s.connected and s.polls > 0)
        await lab.migrate()
        await _wait(src, lambda: src.state.migration_status in ("completed", "failed", "cancelled"), RUN_TIMEOUT)
        result = await auto.task if auto.task is not None else None
        if result is None or not result.ok:
            raise RuntimeError(f"migtui did not complete: {auto.reports[-1].message if auto.reports else '?'}")
    finally:
        await asyncio.gather(*(s.stop() for s in sessions))


async def _run_direct(lab: Lab) -> None:
    client = QMPClient("direct")
    await client.connect(str(lab.src.qmp_path))
    try:
        ready = asyncio.Event()
        task = asyncio.create_task(switchover_on_event(client, [MIRROR_JOB], ready))
        await ready.wait()
        await lab.migrate()
        status = await asyncio.wait_for(task, RUN_TIMEOUT)
        if status != "completed":
            raise RuntimeError(f"direct client: migration {status}")
    finally:
        await client.disconnect()


async def one_run(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    async with Lab(memory_mib=args.memory, dirty_mib=args.dirty, disk_mib=args.disk, accel=args.accel) as lab:
        await lab.prepare(storage=True, pause=True, max_bandwidth=1 << 30, downtime_limit=500)
        observer = await lab.control(lab.src)
        listener = EventListener("MIGRATION")
        with observer.listen(listener):
            ending = asyncio.create_task(_until_end(listener))
            await (_run_migtui(lab) if variant == "migtui" else _run_direct(lab))
            stamps = await asyncio.wait_for(ending, RUN_TIMEOUT)
        info = await observer.execute("query-migrate")
        version = await observer.execute("query-version")
        return {
            "variant": variant,
            "pause_ms": (stamps["device"] - stamps["pre-switchover"]) * 1000,
            "downtime_ms": info.get("downtime"),
            "accel": lab.accel,
            "qemu": "{major}.{minor}.{micro}".format(**version["qemu"]),
        }


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return {"n": len(ordered), "median": statistics.median(ordered), "p90": p90,
            "min": ordered[0], "max": ordered[-1]}




def report(runs: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    by = {v: [r for r in runs if r["variant"] == v] for v in ("migtui", "direct")}
    pause = {v: summarize([r["pause_ms"] for r in rs]) for v, rs in by.items()}
    down = {v: summarize([r["downtime_ms"] for r in rs if r["downtime_ms"] is not None]) for v, rs in by.items()}
    m, d = pause["migtui"]["median"], pause["direct"]["median"]
    limit = 1.2 * d + 2.0
    verdict = "PASS" if m <= limit else "FAIL"
    first = runs[0]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### {date}",
        "",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model()}), {first['accel']}, QEMU {first['qemu']},"
        f" Python {platform.python_version()}, Linux {platform.release()}",
        f"- lab: {args.memory} MiB guest dirtying {args.dirty} MiB, {args.disk} MiB mirrored disk,"
        " unix-socket migration; runs alternated ABBA, one fresh lab pair per run",
        f"- command: `{command}`",
        "",
        "| client | runs | pause median | pause p90 | min | max | QEMU downtime median |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in ("migtui", "direct"):
        p, dt = pause[v], down[v]
        lines.append(f"| {v} | {p['n']} | {p['median']:.2f} ms | {p['p90']:.2f} ms | {p['min']:.2f} ms"
                     f" | {p['max']:.2f} ms | {dt['median']:.0f} ms |")
    lines += [
        "",
        f"Ratio of medians migtui/direct: **{m / d:.2f}x** ({m - d:+.2f} ms). Target: migtui median"
        f" <= 1.2 x direct + 2 ms = {limit:.2f} ms: **{verdict}**.",
        "",
        "Pauses (ms, in run order): " + "; ".join(
            f"{v}: " + ", ".join(f"{r['pause_ms']:.2f}" for r in by[v]) for v in ("migtui", "direct")),
        "",
    ]
    return "\n".join(lines)


INTRO = f"""{SECTION}

The guest is stopped for the whole pre-switchover pause, so it is pure downtime.
`bench/pause_bench.py` measures it from QEMU's own event timestamps (MIGRATION
pre-switchover -> MIGRATION device) for migtui's `--auto-resume` path (Monitor +
MonitorSession + AutoResume, as the app runs them, without the screen: one fresh
query-block-jobs, the checklist, block-job-cancel, migrate-continue on
BLOCK_JOB_COMPLETED) and for `bench/direct_client.py`, a minimal qemu.qmp client that
does the same steps on the event but knows its mirror in advance (no query).
Issue 4's target: migtui's median <= 1.2 x the direct client's + 2 ms.
"""


def append(path: Path, text: str) -> None:
    """Add ``text`` at the end of this benchmark's section (made if absent); other
    sections of the file are left as they are."""
    existing = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION not in existing:
        updated = existing.rstrip("\n") + "\n\n" + INTRO + "\n" + text
    else:
        at = existing.index(SECTION)
        nxt = existing.find("\n## ", at + len(SECTION))
        head, tail = (existing, "") if nxt < 0 else (existing[:nxt + 1], existing[nxt + 1:])
        updated = head.rstrip("\n") + "\n\n" + text + ("\n" + tail if tail else "")
    path.write_text(updated)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each client (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted runs of each first (default 1)")
    parser.add_argument("--memory", type=int, default=64, help="guest MiB (default 64)")
    parser.add_argument("--dirty", type=int, default=4, help="MiB the guest dirties (default 4)")
    parser.add_argument("--disk", type=int, default=16, help="mirrored disk MiB (default 16)")
    parser.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    command = " ".join([".venv/bin/python", "bench/pause_bench.py", *sys.argv[1:]])
    runs: list[dict[str, Any]] = []
    total = args.warmup + args.runs
    for i in range(total):
        order = ("migtui", "direct") if i % 2 == 0 else ("direct", "migtui")
        for variant in order:
            started = time.monotonic()
            run = await one_run(variant, args)
            counted = i >= args.warmup
            print(f"{'run' if counted else 'warm-up'} {i + 1}/{total} {variant:6}: pause {run['pause_ms']:7.2f} ms,"
                  f" downtime {run['downtime_ms']} ms ({time.monotonic() - started:.1f} s)", flush=True)
            if counted:
                runs.append(run)
    text = report(runs, args, command)
    print()
    print(text)
    if args.out is not None:
        append(args.out, text)
        print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
