"""``migtui status``: a one-shot snapshot of each monitor, for scripts and no-TTY use.

Always read-only. The user's engine answers for the monitors it holds (QEMU serves one
client per QMP socket); the others are queried directly. When the engine is there but
cannot be asked (stopped, hung, its directory refused), a monitor that does not greet is
most likely held by it: its error says so, and why the engine could not be asked. Exit 0
if all answered, 1 if any did not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap
import time
from typing import Any

from .. import format as fmt
from ..address import CONNECT, LIBVIRT, MonitorAddress, parse_addresses
from ..engine.engine import Engine
from ..errors import AddressError, MigtuiError
from ..logfile import setup_logging
from ..model.blockjobs import parse_block_jobs
from ..model.migration import MigrationInfo
from ..model.vmstate import is_armed
from ..protocol.messages import Status
from ..protocol.runtime import runtime
from ..view.client import EngineClient, EngineNotRunning
from ..workflow.policy import Policy
from ..workflow.status import Snapshot, collect, snapshot_of
from .options import MONITOR_HELP, add_connect_arguments, add_runtime_argument, split_targets


async def collect_via_engine(addresses: list[MonitorAddress], timeout: float,
                             runtime_dir: str | None) -> list[Snapshot]:
    """Ask the user's engine for the monitors it watches (QEMU serves one client per
    socket: the engine's connection would block ours); query the others directly."""
    answers: list[dict[str, Any] | None] = [None] * len(addresses)
    rt = runtime(runtime_dir)
    client = EngineClient(rt, read_only=True, kind="migtui status")
    problem: str | None = None  # why the engine that is there could not be asked
    try:
        await asyncio.wait_for(client.connect(start=False), timeout)
        reply = await client.call(Status, addresses=[a.absolute().display for a in addresses], timeout=timeout)
        if reply.ok:
            answers = list(reply.monitors)[: len(addresses)]
            answers += [None] * (len(addresses) - len(answers))
    except EngineNotRunning:
        pass  # no engine: every monitor directly
    except TimeoutError:
        problem = f"the migtui engine in {rt.directory} did not answer within {timeout:g} s"
    except (MigtuiError, OSError) as err:  # stopped, hung, its directory refused...
        problem = str(err)
    finally:
        await client.close()
    direct = [a for a, answer in zip(addresses, answers, strict=True) if answer is None]
    fetched = iter(await collect(direct, timeout))
    snaps = [Snapshot.from_json(a, answer) if answer is not None else next(fetched)
             for a, answer in zip(addresses, answers, strict=True)]
    if problem is not None:
        for s in snaps:
            if s.held:  # not "another client": most likely the engine that could not be asked
                s.error = (f"{s.address.name}: no QMP greeting: the monitor is held, most likely by the migtui"
                           f" engine, which could not be asked: {problem}")
    return snaps


async def collect_libvirt(connections: list[MonitorAddress], timeout: float,
                          runtime_dir: str | None) -> list[Snapshot]:
    """Every domain of these libvirt connections: from the user's engine where it holds
    the connection (it knows the domains that left too, with their final figures), else
    each running domain once polled through the engine's own path, read-only, in an
    engine of this process stopped at the end."""
    held = await _engine_domains([str(c.path) for c in connections], timeout, runtime_dir)
    snaps = [snap for c in connections for snap in held.get(str(c.path), [])]
    rest = [c for c in connections if str(c.path) not in held]
    return snaps + (await _libvirt_here(rest, timeout) if rest else [])


async def _engine_domains(uris: list[str], timeout: float, runtime_dir: str | None) -> dict[str, list[Snapshot]]:
    client = EngineClient(runtime(runtime_dir), read_only=True, kind="migtui status")
    found: dict[str, list[Snapshot]] = {}
    try:
        await asyncio.wait_for(client.connect(start=False), timeout)
        reply = await client.call(Status, addresses=uris, timeout=timeout)
        for uri, answer in zip(uris, reply.monitors if reply.ok else [], strict=False):
            if isinstance(answer, dict) and isinstance(answer.get("domains"), list):
                found[uri] = [Snapshot.from_json(MonitorAddress(str(d.get("name")), LIBVIRT, uri, d.get("domain")), d)
                              for d in answer["domains"] if isinstance(d, dict)]
    except (MigtuiError, OSError, TimeoutError):
        pass  # no engine (or none that answers): the connections are opened here
    finally:
        await client.close()
    return found


async def _libvirt_here(connections: list[MonitorAddress], timeout: float) -> list[Snapshot]:
    engine = Engine(connect_timeout=timeout, command_timeout=timeout)
    try:
        for c in connections:
            await engine.connect(str(c.path), c.name or None, tuple(filter(None, (c.host or "").split(","))),
                                 Policy(), read_only=True, interval=1.0)
        sessions = [w.session for w in engine.watched.values()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(s.connected and s.polls == 0 for s in sessions) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        snaps = [snapshot_of(w.session, w.address, w.journal.reply("query-block-jobs"))
                 for w in engine.watched.values()]
        for host in engine.libvirt.values():  # a host that did not answer: its one line
            if host.status.error is not None and not host.monitors:
                address = MonitorAddress(host.name, CONNECT, host.uri)
                snaps.append(Snapshot(address, error=str(host.status.error)))
        return snaps
    finally:
        await engine.stop()


def render_table(snaps: list[Snapshot]) -> str:
    """One short row per monitor (what it is and does), then its figures indented below:
    the RAM, each block job. Fits 80 columns (a 126-column row wrapped there)."""
    header = ("NAME", "QEMU", "RUN", "MIGRATION", "DIRTY")
    rows: list[tuple[str, ...]] = [header]
    details: list[list[str]] = [[]]
    for s in snaps:
        if not s.ok:
            rows.append((s.address.name, "-", "-", "unreachable", "-"))
            details.append([])
            continue
        mig = s.migration
        dirty = "-"
        if s.stopped and mig is not None and mig.dirty_rate_bytes_per_s is not None:
            dirty = "- (stopped)"  # QEMU's last figure, not a live rate
        elif mig is not None and mig.dirty_rate_bytes_per_s is not None:
            dirty = fmt.format_rate(mig.dirty_rate_bytes_per_s)
        armed = " (armed)" if is_armed(s.capabilities) else ""
        rows.append((s.address.name, s.qemu or "?", s.run_state or "?", (mig.status if mig else "?") + armed, dirty))
        ram = ram_text(mig) if mig is not None else "-"
        policy = s.converge_policy
        details.append(([f"RAM {ram}"] if ram != "-" else [])
                       + [f"block job {_job_summary(j)}" for j in parse_block_jobs(s.block_jobs)]
                       + [line for line in (pause_line(s, time.time()),) if line]
                       + ([f"converge policy: {policy['line']}"] if policy and policy.get("active") else []))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for row, below in zip(rows, details, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines += [part for line in below for part in textwrap.wrap(line, 78, initial_indent="  ",
                                                                   subsequent_indent="    ")]
    return "\n".join(lines)


def pause_line(s: Snapshot, now: float) -> str:
    """``paused before switchover for 12.0 s (QEMU's stamp); deadline: abort in 48.0 s; armed by
    migtui; driven by the operator`` -- the pause as the dialog shows it; "" when not paused."""
    pause = s.pause_facts()  # with no engine watching: "no deadline: no migtui engine watches this monitor"
    if not pause or not pause.get("paused"):
        return ""
    start = pause.get("start")
    if start is None:
        since = "since when unknown"
    elif pause.get("start_exact"):
        since = f"for {fmt.format_duration(now - start)} (QEMU's stamp)"
    else:
        earliest = pause.get("start_earliest")
        most = f", at most {fmt.format_duration(now - earliest)}" if earliest is not None else ""
        since = f"for at least {fmt.format_duration(now - start)}{most}"
    deadline = pause.get("deadline")
    then = (f"deadline: {deadline['action']} in {fmt.format_duration(max(0.0, deadline['at'] - now))}"
            if deadline else f"no deadline: {pause.get('no_deadline') or 'none'}")
    who = [f"armed by {pause['armed_by']}"] if pause.get("armed_by") else []
    who += [f"driven by {pause['driven_by']}"] if pause.get("driven_by") else []
    return "; ".join([f"paused before switchover {since}", then, *who])


def ram_text(mig: MigrationInfo) -> str:
    """``97.6% · left 3.1 of 128.5 MiB · sent 209 MiB · zero 75.4 MiB``, the figures of
    the dashboard's migration panel: progress is what is left of the RAM; sent counts
    re-sent pages, so it can pass the RAM size and is said apart, never as a fraction of
    it; zero pages (virsh's "constant pages") go as a flag each, not in sent."""
    ram = mig.ram
    if ram is None or not ram.total:
        return "-"
    zero = [f"zero {fmt.format_bytes_short(ram.zero_bytes)}"] if ram.zero_bytes is not None else []
    return " · ".join((fmt.format_percent(mig.ram_progress),
                       f"left {fmt.format_left_of_total(ram.remaining, ram.total)}",
                       f"sent {fmt.format_bytes_short(ram.transferred)}", *zero))


def _job_summary(job: Any) -> str:
    state = "ready" if job.ready else (job.status or "?")
    pct = f" {job.progress:.0%}" if job.progress is not None else ""
    return f"{job.device} {job.type or '?'} {state}{pct}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("monitors", nargs="*", metavar="MONITOR",
                        help=MONITOR_HELP + "; with -c, a bare word is a DOMAIN of its hosts")
    add_connect_arguments(parser)
    parser.add_argument("--json", action="store_true", help='print one JSON object {"monitors": [...]}')
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="connect and per-command timeout in seconds (default 5)")
    add_runtime_argument(parser)


def run(args: argparse.Namespace) -> int:
    try:
        connections, words = split_targets(args)
        addresses = parse_addresses(words)
    except AddressError as exc:
        print(f"migtui status: {exc}", file=sys.stderr)
        return 2
    if not addresses and not connections:
        print("migtui status: give MONITOR... (QMP sockets) or -c URI (a libvirt connection)", file=sys.stderr)
        return 2

    setup_logging(None)  # each error is its monitor's one line below, never a log record on stderr

    async def both() -> list[Snapshot]:
        snaps = await collect_via_engine(addresses, args.timeout, args.runtime_dir) if addresses else []
        return snaps + (await collect_libvirt(connections, args.timeout, args.runtime_dir) if connections else [])

    snaps = asyncio.run(both())
    for s in snaps:
        if s.error is not None:
            # Monitor errors already start with the monitor's name.
            line = s.error if s.error.startswith(f"{s.address.name}: ") else f"{s.address.name}: {s.error}"
            print(f"migtui status: {line}", file=sys.stderr)
    if args.json:
        json.dump({"monitors": [s.to_json() for s in snaps]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_table(snaps))
    sys.stdout.flush()
    return 0 if all(s.ok for s in snaps) else 1
