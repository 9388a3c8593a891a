"""``migtui lab``: start a real QEMU source/destination pair to watch with migtui.

The scenarios and why the guest is paced: ``migtui/lab/scenarios.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import time
from typing import Any

from qemu.qmp import EventListener, QMPClient, QMPError

from ..errors import LabError, LabUsageError, MigtuiError
from ..format import format_ms
from ..lab.lab import Lab, LabVm
from ..lab.scenarios import Scenario, setup_scenario
from ..model.coerce import as_mapping
from .options import LabSettings, add_lab_arguments, lab_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_lab_arguments(parser, default="converge")
    parser.add_argument("--start", action="store_true", help="start the migration right after setup")
    parser.add_argument("--no-disk", action="store_true", help="no data disk (no storage migration)")
    parser.add_argument("--dir", default=None, metavar="DIR",
                        help="directory for sockets, serial logs and images (default: a new private one)")


def run(args: argparse.Namespace) -> int:
    try:
        settings = lab_settings(args)
    except LabUsageError as err:
        print(f"migtui lab: {err}", file=sys.stderr, flush=True)
        return 2
    try:
        return asyncio.run(_main(args, settings))
    except MigtuiError as err:
        print(f"migtui lab: {err}", file=sys.stderr, flush=True)
        return 1


def _say(text: str) -> None:
    print(text, flush=True)


class _Runner:
    """Owns one lab session: setup, triggers, event reports, shutdown."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.stop = asyncio.Event()
        self.started = False
        self.t0 = time.monotonic()
        self.tasks: list[asyncio.Task[None]] = []
        self.failed = False
        self.ready = False
        self.pending: str | None = None
        self.incoming_ended = False  # a cancelled/failed migration: the destination may exit

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.t0:7.2f}s]"

    def trigger(self, source: str) -> None:
        if not self.ready:  # asked during setup: start as soon as it is done
            self.pending = source
            return
        if self.started:
            _say(f"{self.stamp()} migration already started ({source} ignored)")
            return
        self.started = True
        self.tasks.append(asyncio.create_task(self.start_migration(source)))

    async def start_migration(self, source: str) -> None:
        try:
            await self.lab.migrate()
            _say(f"{self.stamp()} migration started ({source})")
        except LabError as err:
            _say(f"{self.stamp()} could not start the migration: {err}")

    async def report(self, vm: LabVm) -> None:
        client = await self.lab.control(vm)
        names = ("MIGRATION", "MIGRATION_PASS", "STOP", "RESUME", "BLOCK_JOB_READY",
                 "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_ERROR")
        listener = EventListener(names)
        with client.listen(listener):
            async for event in listener:
                await self.describe(vm, client, event)

    async def describe(self, vm: LabVm, client: QMPClient, event: Any) -> None:
        name, data = event["event"], event.get("data", {})
        who = "source" if vm is self.lab.src else "destination"
        if name == "MIGRATION":
            status = data.get("status")
            if status in ("cancelling", "cancelled", "failed"):
                self.incoming_ended = True  # the destination QEMU exits now, as QEMU does
            line = f"{who}: migration {status}"
            if vm is self.lab.src and status == "pre-switchover":
                line += " - guest stopped; finish it from migtui (every second here is downtime)"
            if vm is self.lab.src and status in ("completed", "failed"):
                line += await self.outcome(client)
            _say(f"{self.stamp()} {line}")
        elif name == "MIGRATION_PASS" and vm is self.lab.src:
            _say(f"{self.stamp()} source: pass {data.get('pass')}")
        elif name in ("STOP", "RESUME"):
            _say(f"{self.stamp()} {who}: guest {'stopped' if name == 'STOP' else 'running'}")
        elif name.startswith("BLOCK_JOB"):
            what = name.removeprefix("BLOCK_JOB_").lower()
            error = f" ({data['error']})" if data.get("error") else ""
            _say(f"{self.stamp()} {who}: disk mirror {data.get('device')} {what}{error}")

    async def outcome(self, client: QMPClient) -> str:
        with contextlib.suppress(QMPError, asyncio.TimeoutError):
            info = as_mapping(await asyncio.wait_for(client.execute("query-migrate"), 5.0))
            if info.get("status") == "failed":
                return f": {info.get('error-desc', 'no reason given')}"
            parts = []
            if "total-time" in info:
                parts.append(f"total {format_ms(info['total-time'])}")
            if "downtime" in info:
                parts.append(f"downtime {format_ms(info['downtime'])}")
            passes = info.get("ram", {}).get("dirty-sync-count")
            if passes:
                parts.append(f"{passes} passes")
            return f" ({', '.join(parts)})" if parts else ""
        return ""

    async def watch_processes(self) -> None:
        """A QEMU that dies on its own ends the lab (with exit status 1) -- except the
        destination after a cancelled or failed incoming migration: QEMU exits then by
        design, and the source guest runs on (an abort must not take the lab down)."""
        watched = [self.lab.src, self.lab.dst]
        while not self.stop.is_set():
            for vm in list(watched):
                assert vm.process is not None
                if vm.process.running():
                    continue
                if vm is self.lab.dst and self.incoming_ended:
                    _say(f"{self.stamp()} destination QEMU exited after the migration ended without it"
                         " (QEMU does that); the source runs on; Ctrl-C ends the lab")
                    watched.remove(vm)
                    continue
                _say(f"{self.stamp()} {vm.name} QEMU exited unexpectedly: {vm.process.last_error()}")
                self.failed = True
                self.stop.set()
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.25)


def migtui_command() -> str:
    """How to run this same migtui from a shell: plain ``migtui`` only if that is on PATH."""
    me = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    on_path = shutil.which("migtui")
    if on_path and os.path.realpath(on_path) == me:
        return "migtui"
    if os.path.basename(me) == "migtui" and os.access(me, os.X_OK):
        return shlex.quote(os.path.relpath(me) if not os.path.relpath(me).startswith("..") else me)
    return f"{shlex.quote(sys.executable)} -m migtui"


def _banner(lab: Lab, scenario_name: str, scenario: Scenario, bandwidth: float | None,
            downtime: int | None, tty: bool) -> None:
    src, dst = lab.src, lab.dst
    rate = lab.dirty_rate_mib_s
    rate_text = f"{rate:g} MiB/s" if rate else "as fast as it can"
    _say(f"migtui lab: scenario {scenario_name} ({scenario.summary})")
    _say(f"  qemu         {lab.qemu_version} ({lab.qemu_path})")
    ring = f" with a dirty ring of {lab.dirty_ring}" if lab.dirty_ring else ""
    _say(f"  accelerator  {lab.accel}{ring}; guest {lab.memory_mib} MiB, dirtying {lab.dirty_mib} MiB at {rate_text}")
    _say(f"  migration    max-bandwidth {f'{bandwidth:g} MiB/s' if bandwidth else 'QEMU default'}, "
         f"downtime-limit {f'{downtime} ms' if downtime is not None else 'QEMU default'}")
    _say(f"  source       pid {src.pid}  monitor {src.qmp_path}")
    _say(f"  destination  pid {dst.pid}  monitor {dst.qmp_path}")
    if scenario.storage:
        _say("  disk         data0 mirrored into the destination's NBD export: in sync")
    _say(f"  files        {lab.directory}")
    _say("")
    # One argument a line (a shell continuation): a path is never cut at the terminal's edge.
    _say(f"watch:  {migtui_command()} \\\n          {shlex.quote(f'src={src.qmp_path}')} \\\n"
         f"          {shlex.quote(f'dst={dst.qmp_path}')}")
    how = "press Enter here, or run: " if tty else "run: "
    if scenario_name == "none":  # the destination waits on -incoming defer: migtui's m sets it all up
        _say("start:  m in migtui (pick the options, disks too), or " + how.replace("press", "with the lab's own:"
                                                                             " press", 1) + f"kill -USR1 {os.getpid()}")
    else:
        _say(f"start:  {how}kill -USR1 {os.getpid()}")
    _say("stop:   Ctrl-C (or kill the lab); both QEMUs stop and the files go")
    _say("")


async def _main(args: argparse.Namespace, settings: LabSettings) -> int:
    scenario, bandwidth, rate = settings.scenario, settings.bandwidth, settings.rate
    lab = Lab(memory_mib=args.memory, dirty_mib=args.dirty, disk=not args.no_disk, disk_mib=args.disk_size,
              directory=args.dir, dirty_rate_mib_s=rate, accel=settings.accel, qemu_binary=args.qemu,
              dirty_ring=args.dirty_ring)
    loop = asyncio.get_running_loop()
    tty = sys.stdin is not None and sys.stdin.isatty()
    runner = _Runner(lab)
    # Signals first: a SIGTERM during setup must still stop both QEMUs cleanly,
    # and a SIGUSR1 then must not kill the lab (its default action).
    interrupted: list[int] = []  # Ctrl+C ends the lab as it ends every migtui command: exit 130

    def stop(sig: int) -> None:
        interrupted.append(sig)
        runner.stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop, sig)
    loop.add_signal_handler(signal.SIGUSR1, runner.trigger, "SIGUSR1")
    try:
        setup = asyncio.create_task(setup_scenario(lab, scenario, bandwidth, args.downtime_limit,
                                                   say=lambda line: _say(f"migtui lab: {line}")))
        waiter = asyncio.create_task(runner.stop.wait())
        await asyncio.wait({setup, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not setup.done():  # stopped during setup
            setup.cancel()
            with contextlib.suppress(asyncio.CancelledError, MigtuiError):
                await setup
            return 130 if signal.SIGINT in interrupted else 0
        setup.result()  # raises LabError if setup failed
        _banner(lab, args.scenario, scenario, bandwidth, args.downtime_limit, tty)
        if tty:
            loop.add_reader(sys.stdin.fileno(), _on_stdin, runner, loop)
        runner.tasks += [asyncio.create_task(runner.report(vm)) for vm in (lab.src, lab.dst)]
        runner.ready = True
        if args.start or runner.pending:
            runner.trigger("--start" if args.start else runner.pending or "")
        await runner.watch_processes()
        _say(f"{runner.stamp()} stopping")
        for task in runner.tasks:
            task.cancel()
        await asyncio.gather(*runner.tasks, return_exceptions=True)
        return 1 if runner.failed else 130 if signal.SIGINT in interrupted else 0
    finally:
        if tty:
            with contextlib.suppress(Exception):
                loop.remove_reader(sys.stdin.fileno())
        await lab.stop()


def _on_stdin(runner: _Runner, loop: asyncio.AbstractEventLoop) -> None:
    line = sys.stdin.readline()
    if not line:  # EOF: stop listening, keep running
        loop.remove_reader(sys.stdin.fileno())
        return
    runner.trigger("Enter")
