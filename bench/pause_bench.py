"""How long the guest waits in pre-switchover: the real ``migtui --auto-resume`` vs a direct client.

    .venv/bin/python bench/pause_bench.py [--runs 10] [--qemu PATH] [--out docs/benchmarks.md]

Each run is one fresh lab pair (a migration is one-shot) with a mirrored data disk,
armed with pause-before-switchover and a bandwidth limit of 1 GiB/s, migrated over a
unix socket, and one fresh client process:

- ``migtui``: ``migtui --auto-resume src=... dst=...`` in its own 100x30
  pseudo-terminal, with a private runtime directory, so it starts its own engine
  (one engine per run). The engine resumes the pause (one fresh query-block-jobs,
  the checklist, block-job-cancel, migrate-continue on BLOCK_JOB_COMPLETED) while the
  view renders the dashboard. The migration starts once the dashboard shows both
  monitors connected and the source armed, and one more second has passed.
- ``direct``: bench/direct_client.py, a minimal qemu.qmp client in its own process,
  doing the same steps on the event but knowing its mirror in advance (no query).
- ``engine`` (a diagnostic, not the target's subject): the same engine, started and
  asked to watch src and dst with --auto-resume by a client in this process that never
  subscribes, so no view is attached and nothing renders. It tells how much of
  migtui's pause is the engine's own work and how much the rendering view costs it.
- ``nice`` (a diagnostic, off by default): ``migtui`` with the view's threads
  reniced to 10 once its engine runs (the engine keeps priority 0).
- ``libvirt`` (with ``--libvirt N``): ``migtui`` as above, its engine also watching N idle
  libvirt domains on two real libvirt hosts (``-c a=URI -c b=URI``; bench/libvirt_idle.py,
  started once for the whole run): libvirt's event loop and calls must not cost the
  auto-resume its figure (issue 15).

The pause is measured from QEMU's own event timestamps (MIGRATION pre-switchover ->
MIGRATION device), read on the lab's control socket, so the client under test pays
nothing for the measurement. The QEMUs run with ``-trace handle_qmp_command``, so
each command's arrival in QEMU is known too (the breakdown table). Runs alternate
(forward, then reverse order). Target (issue 8): migtui's median <= 1.2 x the direct client's + 2 ms.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener

sys.path.insert(0, str(Path(__file__).resolve().parent))
from term import (
    READY,
    ROOT,
    Migtui,
    TracedLab,
    append,
    event_time,
    loadavg,
    machine,
    stop_engine,
)

from migtui.address import parse_addresses
from migtui.lab.lab import MIRROR_JOB
from migtui.protocol.messages import PolicyInfo, Status
from migtui.protocol.runtime import runtime
from migtui.view.client import EngineClient

RUN_TIMEOUT = 60.0
COLS, ROWS = 100, 30
SECTION = "## Pre-switchover pause: migtui --auto-resume vs a direct qemu.qmp client"
VARIANTS = ("migtui", "direct", "engine", "nice", "libvirt")
LIBVIRT_ARGS: list[str] = []  # -c a=URI -c b=URI of the idle libvirt domains (--libvirt N)
STEPS = ("query-block-jobs", "block-job-cancel", "BLOCK_JOB_COMPLETED", "migrate-continue", "device")


async def _until_end(listener: EventListener, out: dict[str, float]) -> None:
    """QEMU timestamps of each MIGRATION status and of the mirror's completion."""
    async for event in listener:
        if event["event"] == "BLOCK_JOB_COMPLETED":
            out.setdefault("BLOCK_JOB_COMPLETED", event_time(event))
            continue
        data: Any = event["data"]  # JSON
        status = data["status"]
        out.setdefault(status, event_time(event))
        if status in ("completed", "failed", "cancelled"):
            return


async def _migrate_with_migtui(lab: TracedLab, nice: int = 0, libvirt: bool = False) -> dict[str, Any]:
    app = Migtui([f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}", *(LIBVIRT_ARGS if libvirt else [])],
                 cols=COLS, rows=ROWS, options=["--auto-resume"])
    try:
        await app.wait_engine()
        await app.term.wait_for(lambda t: READY.search(t) is not None and "dst" in t, 20, "both monitors ready")
        if libvirt:
            await app.term.wait_for(lambda t: "lvidle" in t, 30, "the libvirt domains watched")
        if nice:
            app.renice_view(nice)
        await asyncio.sleep(1.0)  # the first polls and the first full paint are over
        since = len(app.term.text)
        stamps = await _migrate(lab)
        await app.term.wait_for(lambda t: "migration completed" in t[since:], 10, "the auto-resume's outcome")
        return stamps
    finally:
        await app.stop()


async def _migrate_with_engine(lab: TracedLab) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="mtb", dir="/tmp"))
    client = EngineClient(runtime(directory / "rt"), kind="pause_bench")
    try:
        await client.connect(start=True)  # starts the engine as a view would
        addresses = parse_addresses([f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"])
        policy = PolicyInfo(auto_resume=True, explicit=["auto_resume"])
        await client.watch(addresses, policy, read_only=False, interval=1.0)
        deadline = time.monotonic() + 20
        while True:  # both connected and polled, the source's capabilities read
            reply = await client.call(Status, addresses=[a.absolute().display for a in addresses])
            monitors = reply.monitors
            if all(m and m.get("ok") for m in monitors) and len(monitors) == 2 \
                    and monitors[0].get("capabilities", {}).get("pause-before-switchover"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not get ready: {monitors}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        return await _migrate(lab)
    finally:
        await client.close()
        await stop_engine(directory / "rt")
        shutil.rmtree(directory, ignore_errors=True)


async def _migrate_with_direct(lab: TracedLab) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "direct_client.py"), str(lab.src.qmp_path), MIRROR_JOB,
        stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        if line.strip() != b"listening":
            raise RuntimeError(f"direct client: {line!r}")
        stamps = await _migrate(lab)
        out = (await asyncio.wait_for(proc.stdout.read(), RUN_TIMEOUT)).decode().strip()
        if await proc.wait() != 0:
            raise RuntimeError(f"direct client: migration {out}")
        return stamps
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _migrate(lab: TracedLab) -> dict[str, float]:
    observer = await lab.control(lab.src)
    listener = EventListener(("MIGRATION", "BLOCK_JOB_COMPLETED"))
    stamps: dict[str, float] = {}
    with observer.listen(listener):
        ending = asyncio.create_task(_until_end(listener, stamps))
        await lab.migrate()
        await asyncio.wait_for(ending, RUN_TIMEOUT)
    if "completed" not in stamps:
        raise RuntimeError(f"migration ended {sorted(stamps)}")
    return stamps


async def one_run(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    async with TracedLab(memory_mib=args.memory, dirty_mib=args.dirty, disk_mib=args.disk, accel=args.accel,
                         qemu_binary=args.qemu) as lab:
        await lab.prepare(storage=True, pause=True, max_bandwidth=1 << 30, downtime_limit=500)
        if variant == "nice":
            stamps = await _migrate_with_migtui(lab, nice=10)
        elif variant == "libvirt":
            stamps = await _migrate_with_migtui(lab, libvirt=True)
        else:
            run: dict[str, Callable[[TracedLab], Awaitable[dict[str, Any]]]] = {
                "migtui": _migrate_with_migtui, "direct": _migrate_with_direct, "engine": _migrate_with_engine}
            stamps = await run[variant](lab)
        info: Any = await (await lab.control(lab.src)).execute("query-migrate")  # JSON
        commands = lab.commands(lab.src)
        paused = stamps["pre-switchover"]
        migrate_at = next(t for t, c, _ in commands if c == "migrate")
        steps = {"device": stamps["device"] - paused,
                 "BLOCK_JOB_COMPLETED": stamps.get("BLOCK_JOB_COMPLETED", float("nan")) - paused}
        for t, c, _ in commands:
            if t >= paused and c in STEPS and c not in steps:
                steps[c] = t - paused
        return {
            "variant": variant,
            "pause_ms": (stamps["device"] - paused) * 1000,
            "to_pause_ms": (paused - migrate_at) * 1000,
            "steps_ms": {k: v * 1000 for k, v in steps.items()},
            "downtime_ms": info.get("downtime"),
            "machine": machine(lab),
        }


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return {"n": len(ordered), "median": statistics.median(ordered), "p90": p90,
            "min": ordered[0], "max": ordered[-1]}


def report(runs: list[dict[str, Any]], args: argparse.Namespace, command: str, load: str,
           failures: list[str]) -> str:
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in runs)]
    by = {v: [r for r in runs if r["variant"] == v] for v in variants}
    pause = {v: summarize([r["pause_ms"] for r in rs]) for v, rs in by.items()}
    down = {v: summarize([r["downtime_ms"] for r in rs if r["downtime_ms"] is not None]) for v, rs in by.items()}
    to_pause = summarize([r["to_pause_ms"] for r in runs])
    m, d = pause["migtui"]["median"], pause["direct"]["median"]
    limit = 1.2 * d + 2.0
    verdict = "PASS" if m <= limit else "FAIL"
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### {date}, QEMU {runs[0]['machine'].split('QEMU ')[1].split(',')[0]}",
        "",
        f"- machine: {runs[0]['machine']}; load average before the run {load}",
        f"- lab: {args.memory} MiB guest dirtying {args.dirty} MiB, {args.disk} MiB mirrored disk, max-bandwidth"
        f" 1 GiB/s, unix-socket migration; `migrate` -> pre-switchover median {to_pause['median']:.0f} ms"
        f" (max {to_pause['max']:.0f} ms)",
        "- runs alternated (forward, then reverse order), one fresh lab pair and one fresh client process per"
        f" run (migtui: the view in a {COLS}x{ROWS} pseudo-terminal + the engine it starts; engine: the same"
        " engine with no view)",
        f"- command: `{command}`",
        *([f"- libvirt: migtui --auto-resume whose engine also watches {args.libvirt} idle libvirt domains on two"
           " libvirt 9.0 hosts (bench/libvirt_idle.py)"] if args.libvirt else []),
        "",
        "| client | runs | pause median | pause p90 | min | max | QEMU downtime median |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        p, dt = pause[v], down[v]
        lines.append(f"| {v} | {p['n']} | {p['median']:.2f} ms | {p['p90']:.2f} ms | {p['min']:.2f} ms"
                     f" | {p['max']:.2f} ms | {dt['median']:.0f} ms |")
    lines += [
        "",
        f"Ratio of medians migtui/direct: **{m / d:.2f}x** ({m - d:+.2f} ms). Target: migtui median"
        f" <= 1.2 x direct + 2 ms = {limit:.2f} ms: **{verdict}**.",
        *(["", f"With {args.libvirt} idle libvirt domains watched by the same engine: median"
               f" **{pause['libvirt']['median']:.2f} ms** against {m:.2f} ms without them"
               f" ({pause['libvirt']['median'] - m:+.2f} ms; p90 {pause['libvirt']['p90']:.2f} against"
               f" {pause['migtui']['p90']:.2f} ms)."] if "libvirt" in pause else []),
        "",
        "Where the pause goes (median ms after QEMU's pre-switchover stamp: a command when QEMU parsed it,"
        " an event by QEMU's stamp):",
        "",
        "| client | " + " | ".join(STEPS) + " |",
        "|---|" + "---|" * len(STEPS),
    ]
    for v in variants:
        cells = []
        for step in STEPS:
            values = [r["steps_ms"][step] for r in by[v] if step in r["steps_ms"]]
            cells.append(f"{statistics.median(values):.2f}" if values else "--")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Pauses (ms, in run order): " + "; ".join(
            f"{v}: " + ", ".join(f"{r['pause_ms']:.2f}" for r in by[v]) for v in variants) + ".",
        "",
    ]
    if failures:
        lines += [f"Runs repeated after a failure: {len(failures)} ({'; '.join(failures)}).", ""]
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each client (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted runs of each first (default 1)")
    parser.add_argument("--memory", type=int, default=64, help="guest MiB (default 64)")
    parser.add_argument("--dirty", type=int, default=4, help="MiB the guest dirties (default 4)")
    parser.add_argument("--disk", type=int, default=16, help="mirrored disk MiB (default 16)")
    parser.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    parser.add_argument("--qemu", help="the qemu-system-x86_64 to run (default: $MIGTUI_QEMU, else PATH's)")
    parser.add_argument("--variants", default="migtui,direct,engine",
                        help="clients to alternate (default migtui,direct,engine; engine and nice are diagnostics)")
    parser.add_argument("--libvirt", type=int, default=0, metavar="N",
                        help="also run migtui whose engine watches N idle libvirt domains (the libvirt variant)")
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file's section")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.libvirt and "libvirt" not in args.variants:
        args.variants.append("libvirt")
    if not {"migtui", "direct"} <= set(args.variants) <= set(VARIANTS):
        parser.error(f"--variants: migtui and direct, optionally engine and nice (of {', '.join(VARIANTS)})")
    command = " ".join([".venv/bin/python", "bench/pause_bench.py", *map(shlex.quote, sys.argv[1:])])
    load = loadavg()
    libvirt_lab = None
    if "libvirt" in args.variants:
        if not args.libvirt:
            parser.error("the libvirt variant needs --libvirt N")
        from libvirt_idle import connections, open_lab, start_idle

        libvirt_lab = open_lab()
        start_idle(libvirt_lab, args.libvirt)
        LIBVIRT_ARGS[:] = connections(libvirt_lab)
    try:
        return await _runs(args, command, load)
    finally:
        if libvirt_lab is not None:
            libvirt_lab.close()


async def _runs(args: argparse.Namespace, command: str, load: str) -> int:
    runs: list[dict[str, Any]] = []
    failures: list[str] = []
    total = args.warmup + args.runs
    for i in range(total):
        order = args.variants if i % 2 == 0 else args.variants[::-1]
        for variant in order:
            started = time.monotonic()
            for attempt in range(3):  # a busy machine sometimes misses a start-up deadline
                try:
                    run = await one_run(variant, args)
                    break
                except (RuntimeError, OSError) as err:
                    print(f"  {variant}: run failed ({err}); {'again' if attempt < 2 else 'giving up'}", flush=True)
                    failures.append(f"{variant}: {str(err)[:200]}")
                    if attempt == 2:
                        raise
            counted = i >= args.warmup
            steps = " ".join(f"{k.split('-')[-1].lower()[:8]}={v:.2f}" for k, v in run["steps_ms"].items())
            print(f"{'run' if counted else 'warm-up'} {i + 1}/{total} {variant:6}: pause {run['pause_ms']:6.2f} ms"
                  f" (migrate->pause {run['to_pause_ms']:.0f} ms; {steps}) ({time.monotonic() - started:.1f} s)",
                  flush=True)
            if counted:
                runs.append(run)
    text = report(runs, args, command, load, failures)
    print()
    print(text)
    if args.out is not None:
        append(args.out, SECTION, text)
        print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
