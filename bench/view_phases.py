"""Where a watching view's CPU goes, phase by phase: the real ``migtui`` view in a terminal.

    .venv/bin/python bench/view_phases.py [--seconds 60] [--warmup 10] [--out FILE] -- MIGTUI-ARGS...

Run it in a terminal (tmux, a pty) in place of ``migtui``: it starts the real view with
those arguments (and the engine the view starts, or attaches to with ``--runtime-dir``)
and, after the warm-up, adds up for ``--seconds`` the CPU time (``time.thread_time``, the
view's main thread) spent in each phase: Textual's frames (compositor and output), the
panels' repaint on each batch of changes, decoding the engine's lines and folding them,
and the render of each widget. It writes the table to ``--out`` (default: stderr at exit)
and the main thread's and the process's total CPU over the same window.

Two of these at once, of two checkouts (``PYTHONPATH=TREE``), attached to one engine,
see the same migration at the same time: their figures compare side by side on a noisy
machine (docs/benchmarks.md, 2026-12-07). The wrappers cost ~1 us a call.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from collections.abc import Callable
from typing import Any

spent: collections.defaultdict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()
measuring = False


def timed(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by a wrapper that adds its thread CPU time to ``label``."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not measuring:
            return original(*args, **kwargs)
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - start
            calls[label] += 1

    setattr(owner, name, wrapper)


def instrument() -> None:
    from textual._compositor import Compositor
    from textual._styles_cache import StylesCache
    from textual.app import App
    from textual.screen import Screen

    from migtui.protocol import lines
    from migtui.tui.screens.dashboard import DashboardScreen
    from migtui.tui.widgets.advice_panel import AdvicePanel
    from migtui.tui.widgets.dirty_panel import DirtyPanel
    from migtui.tui.widgets.migration_panel import MigrationPanel
    from migtui.tui.widgets.monitor_list import MonitorList
    from migtui.view.client import EngineClient

    timed(Screen, "_compositor_refresh", "frame")
    timed(Compositor, "render_update", "  frame: compose the changed lines")
    timed(App, "_display", "  frame: write to the terminal")
    timed(Screen, "_refresh_layout", "layout")
    timed(DashboardScreen, "on_sessions_changed", "repaint the panels (a batch of changes)")
    for cls, method in ((MigrationPanel, "show"), (DirtyPanel, "show"), (AdvicePanel, "show"),
                        (MonitorList, "update_entry"), (DashboardScreen, "_refresh_actions")):
        timed(cls, method, f"  {cls.__name__}.{method}")
    timed(lines, "decode", "decode the engine's lines")
    timed(EngineClient, "_dispatch", "fold them into the sessions")
    original = StylesCache.render_widget

    def render_widget(self: StylesCache, widget: Any, crop: Any) -> Any:
        if not measuring:
            return original(self, widget, crop)
        start = time.thread_time()
        try:
            return original(self, widget, crop)
        finally:
            label = f"    render {type(widget).__name__}#{widget.id}"
            spent[label] += time.thread_time() - start
            calls[label] += 1

    setattr(StylesCache, "render_widget", render_widget)  # noqa: B010 -- a measurement hook (mypy rejects assigning to a method)


def report(window: float, thread: float, process: float, out: Callable[[str], None]) -> None:
    out(f"{window:.1f} s: view main thread {thread * 1000:.0f} ms ({thread / window * 100:.2f} % of a core),"
        f" process {process * 1000:.0f} ms ({process / window * 100:.2f} %)")
    for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        out(f"  {label:44s} {seconds * 1000:8.1f} ms {calls[label]:6d} calls"
            f" {seconds / calls[label] * 1e6:8.0f} us/call")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--out", help="write the table here (default: stderr, at exit)")
    parser.add_argument("migtui", nargs=argparse.REMAINDER, help="-- then migtui's own arguments")
    args = parser.parse_args()
    argv = args.migtui[1:] if args.migtui[:1] == ["--"] else args.migtui
    instrument()
    lines_out: list[str] = []
    real_run = asyncio.run

    def run(coro: Any, **kwargs: Any) -> Any:
        async def measured() -> Any:
            loop = asyncio.get_running_loop()
            marks: dict[str, float] = {}

            def start() -> None:
                global measuring
                measuring = True
                marks.update(thread=time.thread_time(), process=time.process_time(), wall=time.monotonic())

            def stop() -> None:
                global measuring
                measuring = False
                report(time.monotonic() - marks["wall"], time.thread_time() - marks["thread"],
                       time.process_time() - marks["process"], lines_out.append)
                if args.out:
                    with open(args.out, "w") as f:
                        f.write("\n".join(lines_out) + "\n")

            loop.call_later(args.warmup, start)
            loop.call_later(args.warmup + args.seconds, stop)
            return await coro
        return real_run(measured(), **kwargs)

    setattr(asyncio, "run", run)  # noqa: B010 -- the view's own asyncio.run, measured
    from migtui.commands.main import main as migtui_main
    try:
        return migtui_main(argv)
    finally:
        if not args.out:
            print("\n".join(lines_out), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
