"""The dashboard's own cost, in process, on recorded data (no QEMU, no terminal).

    .venv/bin/python bench/pilot_bench.py [--runs 5] [--out FILE]

Two figures the test suite used to assert and no longer does (a busy CI machine made
them flake; tests check behaviour, this measures time):

The dashboard runs as production runs it, a view of an engine (``view_run.view_main``),
here both in this process with the engine watching recorded QEMUs on sockets, through
Textual's headless driver (``App.run_test``): the tests' ``conftest.app_for``.

1. Startup to first frame: from starting the engine and the view on a recorded storage
   migration (source + destination) to the view's first frame at 100x30 with both
   monitors connected and polled. Wall time, median of ``--runs``.
2. CPU per key with 50 monitors: 25 recorded pairs, their pause dialogs closed, 49
   presses of the down arrow (first monitor to last), CPU time of this process per key
   (``time.process_time``: Pilot sleeps between keys waiting for the app to go idle, so
   wall time would measure the sleeps). The engine's polls of the 50 recorded monitors
   (once a second) meanwhile are counted too. Median of ``--runs``.

bench/tui_bench.py measures the real program in a pseudo-terminal against real QEMU
(first frame on the terminal, key to answer); this one isolates migtui's and Textual's
own work from process start-up, real QEMU and the terminal.

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the recorded runs and the tests' view helpers

from conftest import app_for  # noqa: E402
from machine import cpu_model  # noqa: E402  (bench/ is on sys.path when run as a script)
from replay import recorded, recorded_pairs  # noqa: E402
from tui_util import close_dialogs  # noqa: E402

KEYS = 49


async def first_frame() -> float:
    """Seconds from starting engine and view to the first frame with both monitors
    connected and polled, on a recorded pre-switchover pause."""
    scene = recorded("storage", 16.9)
    started = time.perf_counter()
    async with app_for(scene, size=(100, 30)) as view:
        took = time.perf_counter() - started
        assert view.app.dashboard.selected is view.sessions[0]
    return took


async def cpu_per_key() -> float:
    """CPU seconds per down-arrow press with 50 monitors."""
    async with app_for(recorded_pairs("storage", 25, 1.0)) as view:
        await close_dialogs(view)  # the paused monitors' dialogs, which open by themselves
        await view.pilot.pause()
        started = time.process_time()
        for _ in range(KEYS):
            await view.press("down")
        took = (time.process_time() - started) / KEYS
        assert view.app.dashboard.selected is view.sessions[-1]
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
        f"| engine and view started to first frame, 100x30, 2 monitors | {1000 * statistics.median(starts):.0f} ms"
        f" | {ms(starts)} |",
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
