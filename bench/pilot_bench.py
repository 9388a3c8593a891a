"""The dashboard's own cost, in process, on recorded data (no QEMU, no terminal).

    .venv/bin/python bench/pilot_bench.py [--runs 5] [--out FILE]

Two figures the test suite used to assert and no longer does (a busy CI machine made
them flake; tests check behaviour, this measures time):

1. Startup to first frame: from building the app (``make_app``) on a recorded storage
   migration (source + destination) to its first frame at 100x30, through Textual's
   headless driver (``App.run_test``). Wall time, median of ``--runs``.
2. CPU per key with 50 monitors: 25 recorded pairs, 49 presses of the down arrow
   (first monitor to last), CPU time of this process per key (``time.process_time``:
   Pilot sleeps between keys waiting for the app to go idle, so wall time would
   measure the sleeps). Median of ``--runs``.

bench/tui_bench.py measures the real program in a pseudo-terminal against real QEMU
(first frame on the terminal, key to answer); this one isolates migtui's and Textual's
own work from process start-up, QMP and the terminal.

Prints a Markdown table and appends it to ``--out`` (docs/benchmarks.md) when given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the recorded runs and their replay helper

from machine import cpu_model  # noqa: E402  (bench/ is on sys.path when run as a script)
from replay import replayed, replayed_pairs  # noqa: E402

from migtui.tui.app import MigtuiApp, make_app  # noqa: E402
from migtui.workflow.session import MonitorSession  # noqa: E402

KEYS = 49


def app_for(sessions: list[MonitorSession], now: float) -> MigtuiApp:
    return make_app(sessions=sessions, clock=lambda: now, tz=UTC, term="xterm-256color")


async def first_frame() -> float:
    """Seconds from make_app to the first frame, on a recorded pre-switchover pause."""
    sessions, now = replayed("storage", 16.9)
    started = time.perf_counter()
    app = app_for(sessions, now)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        took = time.perf_counter() - started
        assert app.dashboard.selected is sessions[0]
    return took


async def cpu_per_key() -> float:
    """CPU seconds per down-arrow press with 50 monitors."""
    sessions, now = replayed_pairs("storage", 25, 1.0)
    app = app_for(sessions, now)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        started = time.process_time()
        for _ in range(KEYS):
            await pilot.press("down")
        took = (time.process_time() - started) / KEYS
        assert app.dashboard.selected is sessions[-1]
    return took


def machine() -> str:
    import textual

    return (f"{os.cpu_count()} cores, {cpu_model()}, {platform.python_implementation()} "
            f"{platform.python_version()}, textual {textual.__version__}")


async def main(runs: int) -> str:
    starts = [await first_frame() for _ in range(runs)]
    keys = [await cpu_per_key() for _ in range(runs)]

    def ms(values: list[float]) -> str:
        return ", ".join(f"{1000 * v:.0f}" for v in values)

    return "\n".join([
        f"### Dashboard in process -- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}",
        "",
        f"Recorded runs, Textual's headless driver, command: `.venv/bin/python bench/pilot_bench.py --runs {runs}`",
        "",
        "| what | median | all runs (ms) |",
        "| --- | --- | --- |",
        f"| make_app to first frame, 100x30, 2 monitors | {1000 * statistics.median(starts):.0f} ms | {ms(starts)} |",
        f"| CPU per down-arrow key, 50 monitors ({KEYS} keys) | {1000 * statistics.median(keys):.1f} ms | {ms(keys)} |",
        "",
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, help="append the table to this file")
    args = parser.parse_args()
    table = asyncio.run(main(args.runs))
    print(table)
    if args.out:
        with args.out.open("a") as f:
            f.write("\n" + table)
