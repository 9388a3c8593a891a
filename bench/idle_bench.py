"""Idle monitors: what the real ``migtui`` (view + engine) costs watching QEMUs with no
migration, side by side with htop in the same tmux, and how fast it answers a key.

    .venv/bin/python bench/idle_bench.py [--monitors 50,200] [--seconds 60] [--events] [--lab]
        [--tree NAME=PATH ...] [--rounds 1] [--qemu PATH] [--out FILE]

For each N of ``--monitors``, N ``qemu-system-x86_64 -M none -nodefaults -display none
-qmp unix:...,server=on,wait=off`` (no guest, no migration, the ``events`` capability
off as QEMU starts; ``--events`` turns it on first, as libvirt and arming do). Then, per
tree and round (trees alternate, forward then reverse, so each sees the same noisy
machine), one private tmux server at 80x24 with two windows:

- ``migtui --runtime-dir DIR MONITOR...`` (the view, and the engine it starts in DIR),
  run from that tree (``PYTHONPATH=PATH``; the engine inherits it);
- ``htop -d 10``, in the same session, at the same time.

After ``--warmup`` seconds (every connection made, the first polls done), over
``--seconds`` it counts the CPU time (each thread's, to the nanosecond:
/proc/PID/task/TID/schedstat; the ticks of /proc/PID/stat if a thread came or went) of
the view, the engine, htop and the tmux server that renders both. Then ``--keys`` keys
(down, up, down, ...; 0.4-0.6 s apart, at random) each timed from ``tmux send-keys``
to the first ``capture-pane`` that shows a changed screen (polled back to back, so the
figure includes a capture's few ms).

``--lab``: the same for the src + dst pair of a real lab migration that stays active
(``migtui lab``'s ``stuck`` scenario: dirty rate above bandwidth), over ``--seconds``.

``--tree NAME=PATH`` (repeatable; default: this checkout) runs the migtui of another
checkout, e.g. the commit before a change: ``git archive BASE | tar -x -C /tmp/before``.
``--profile DIR``: after each measurement, ``py-spy record`` (``--py-spy PATH``, e.g.
from ``pip install --target /tmp/pyspy py-spy``) samples the engine, then the view, for
``--profile-seconds`` each, into DIR as collapsed stacks (``*.engine.txt``, ``*.view.txt``).

Targets (issue "Keep, and cheaper"): 200 idle monitors <= 3 % of one core for view +
engine, a key answered in <= 100 ms; the lab pair <= 1 %.
Prints Markdown and appends it to ``--out`` (docs/benchmarks.md) when given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model
from term import alive, append, cpu_between, cpu_reading, loadavg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from migtui.lab.lab import Lab  # noqa: E402
from migtui.lab.qemu import find_qemu  # noqa: E402
from migtui.lab.scenarios import SCENARIOS  # noqa: E402

COLS, ROWS = 80, 24
SECTION = "## Idle monitors: migtui vs htop in the same tmux"
KEYS = {"down": "Down", "up": "Up"}


@dataclass
class Run:
    tree: str
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core
    keys_ms: list[float] = field(default_factory=list)

    @property
    def migtui(self) -> float:
        return self.cpu["view"] + self.cpu["engine"]


class Session:
    """A private tmux server: migtui in one window, htop in another, 80x24."""

    def __init__(self, tree: Path, monitors: list[str]) -> None:
        self.server = f"idle-bench-{os.getpid()}-{random.randrange(1 << 30)}"
        self.tmp = Path(tempfile.mkdtemp(prefix="mtidle", dir="/tmp"))
        self.runtime_dir = self.tmp / "rt"
        env = {"PYTHONPATH": str(tree), "TERM": "xterm-256color"}
        argv_file = self.tmp / "monitors"  # 200 sockets: a file, not tmux's command line
        argv_file.write_text(" ".join(monitors))
        # cwd = the tree: ``python -m`` puts the cwd first on sys.path, before PYTHONPATH.
        self.migtui = ["sh", "-c", f"cd {shlex.quote(str(tree))} && exec env -u COLUMNS -u LINES"
                       f" {' '.join(shlex.quote(f'{k}={v}') for k, v in env.items())}"
                       f" {shlex.quote(sys.executable)} -m migtui --runtime-dir {shlex.quote(str(self.runtime_dir))}"
                       f" $(cat {shlex.quote(str(argv_file))})"]

    def tmux(self, *args: str, check: bool = True) -> str:
        return subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True, timeout=30,
                              check=check, stdin=subprocess.DEVNULL).stdout

    def start(self) -> None:
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "bench", "-n", "migtui", "-x", str(COLS),
                  "-y", str(ROWS), *self.migtui)
        self.tmux("set-option", "-g", "remain-on-exit", "on")
        self.tmux("new-window", "-d", "-t", "bench", "-n", "htop", "htop", "-d", "10")

    def pid(self, window: str) -> int:
        return int(self.tmux("display-message", "-p", "-t", f"bench:{window}", "#{pane_pid}").strip())

    def size(self, window: str) -> str:
        return self.tmux("display-message", "-p", "-t", f"bench:{window}", "#{pane_width}x#{pane_height}").strip()

    def server_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "#{pid}").strip())

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "bench:migtui")

    def key(self, key: str) -> None:
        self.tmux("send-keys", "-t", "bench:migtui", key)

    def engine_pid(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError):
                return int((self.runtime_dir / "engine.pid").read_text().strip())
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: no engine within {timeout:.0f} s; screen:\n{self.screen()}")
            time.sleep(0.05)

    def stop(self) -> None:
        engine = None
        with contextlib.suppress(OSError, ValueError):
            engine = int((self.runtime_dir / "engine.pid").read_text().strip())
        self.tmux("kill-server", check=False)
        with contextlib.suppress(OSError):  # a killed server may leave its socket file behind
            (Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / self.server).unlink()
        if engine is not None and alive(engine):
            with contextlib.suppress(ProcessLookupError):
                os.kill(engine, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while alive(engine) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(engine):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(engine, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_screen(s: Session, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in s.screen():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {text!r} not on the screen within {timeout:.0f} s:\n{s.screen()}")
        time.sleep(0.1)


def profile(args: argparse.Namespace, label: str, pids: dict[str, int]) -> None:
    """py-spy's collapsed stacks of the engine and the view, one after the other."""
    args.profile.mkdir(parents=True, exist_ok=True)
    for who in ("engine", "view"):
        out = args.profile / f"{label}.{who}.txt"
        subprocess.run([args.py_spy, "record", "-p", str(pids[who]), "-d", str(int(args.profile_seconds)), "-r", "200",
                        "-f", "raw", "-o", str(out)], capture_output=True, check=False)
        print(f"  profile: {out}", file=sys.stderr, flush=True)


def measure(tree_name: str, tree: Path, monitors: list[str], first: str, *, warmup: float, seconds: float,
            keys: int, args: argparse.Namespace | None = None, label: str = "") -> Run:
    s = Session(tree, monitors)
    run = Run(tree_name)
    try:
        s.start()
        wait_screen(s, first, 30)
        pids = {"view": s.pid("migtui"), "engine": s.engine_pid(), "htop": s.pid("htop"), "tmux": s.server_pid()}
        assert s.size("migtui") == f"{COLS}x{ROWS}" and s.size("htop") == f"{COLS}x{ROWS}", s.size("migtui")
        time.sleep(warmup)
        run.cpu = cpu_percent(pids, seconds)
        run.keys_ms = key_answers(s, keys)
        if not alive(pids["view"]) or not alive(pids["engine"]):
            raise SystemExit(f"bench: migtui ended during the measurement:\n{s.screen()}")
        if args is not None and args.profile is not None:
            profile(args, f"{label}-{tree_name.replace(' ', '_')}", pids)
    finally:
        s.stop()
    return run


def cpu_percent(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process's CPU time over the next ``seconds``, in % of one core."""
    before = {k: cpu_reading(p) for k, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    return {k: 100 * cpu_between(p, before[k], cpu_reading(p)) / dt for k, p in pids.items()}


def key_answers(s: Session, keys: int) -> list[float]:
    """``keys`` keys (down, up, ...; 0.4-0.6 s apart), each timed from send-keys to the
    first capture that shows a changed screen, in ms."""
    answers: list[float] = []
    for i in range(keys):
        time.sleep(random.uniform(0.4, 0.6))
        shown = s.screen()
        pressed = time.monotonic()
        s.key("Down" if i % 2 == 0 else "Up")
        while s.screen() == shown:
            if time.monotonic() - pressed > 5:
                raise SystemExit(f"bench: no answer to a key within 5 s:\n{shown}")
        answers.append(1000 * (time.monotonic() - pressed))
    return answers


def start_idle_qemus(binary: str, directory: Path, n: int) -> tuple[list[subprocess.Popen], list[Path]]:
    procs, socks = [], []
    for i in range(n):
        sock = directory / f"idle{i:03d}.qmp"
        procs.append(subprocess.Popen(
            [binary, "-M", "none", "-nodefaults", "-display", "none", "-qmp", f"unix:{sock},server=on,wait=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        socks.append(sock)
    deadline = time.monotonic() + 60
    while not all(s.exists() for s in socks):
        if time.monotonic() > deadline:
            raise SystemExit("bench: the idle QEMUs' sockets did not appear within 60 s")
        time.sleep(0.1)
    return procs, socks


async def enable_events(socks: list[Path]) -> None:
    """Turn on the ``events`` capability of each QEMU (as libvirt does, and as arming does)."""
    from qemu.qmp import QMPClient

    for sock in socks:
        client = QMPClient("idle-bench")
        await client.connect(str(sock))
        try:
            events_on = {"capabilities": [{"capability": "events", "state": True}]}
            await client.execute("migrate-set-capabilities", events_on)
        finally:
            await client.disconnect()


def order(trees: list[tuple[str, Path]], rounds: int) -> list[tuple[str, Path]]:
    out = []
    for r in range(rounds):
        out += trees if r % 2 == 0 else list(reversed(trees))
    return out


def rows_for(label: str, runs: list[Run], trees: list[tuple[str, Path]], keys: bool) -> list[str]:
    out = []
    for name, _ in trees:
        mine = [r for r in runs if r.tree == name]
        med = lambda k, mine=mine: statistics.median(r.cpu[k] for r in mine)  # noqa: E731
        migtui = statistics.median(r.migtui for r in mine)
        all_keys = [k for r in mine for k in r.keys_ms]
        key_text = f"{statistics.median(all_keys):.0f} / {max(all_keys):.0f} ms" if keys and all_keys else ""
        per_run = ", ".join(f"{r.migtui:.2f}" for r in mine)
        out.append(f"| {label} | {name} | **{migtui:.2f} %** (view {med('view'):.2f}, engine {med('engine'):.2f})"
                   f" | {med('htop'):.2f} % | {med('tmux'):.2f} % | {key_text} | {per_run} |")
    return out


def idle_part(args: argparse.Namespace, trees: list[tuple[str, Path]], binary: str) -> list[str]:
    rows: list[str] = []
    for n in args.monitors:
        tmp = Path(tempfile.mkdtemp(prefix="mtidleq", dir="/tmp"))
        procs, socks = start_idle_qemus(binary, tmp, n)
        runs: list[Run] = []
        try:
            if args.events:
                asyncio.run(enable_events(socks))
            for name, path in order(trees, args.rounds):
                run = measure(name, path, [str(p) for p in socks], "idle000", warmup=args.warmup + n / 25,
                              seconds=args.seconds, keys=args.keys, args=args, label=f"idle{n}")
                print(f"  {n} idle monitors, {name}: view+engine {run.migtui:.2f} % {run.cpu}"
                      f" keys median {statistics.median(run.keys_ms):.0f} ms max {max(run.keys_ms):.0f} ms",
                      file=sys.stderr, flush=True)
                runs.append(run)
        finally:
            for p in procs:
                p.kill()
            for p in procs:
                p.wait()
            shutil.rmtree(tmp, ignore_errors=True)
        events = "on" if args.events else "off"
        rows += rows_for(f"{n} idle monitors (`events` {events}), {args.seconds:.0f} s", runs, trees, keys=True)
    return rows


async def lab_part(args: argparse.Namespace, trees: list[tuple[str, Path]]) -> tuple[list[str], str]:
    scenario = SCENARIOS["stuck"]
    async with Lab(memory_mib=128, dirty_mib=16, disk=False, dirty_rate_mib_s=scenario.dirty_rate_mib_s,
                   qemu_binary=args.qemu) as lab:
        bandwidth = scenario.bandwidth_mib_s or 4.0  # the stuck scenario names its own
        await lab.prepare(storage=False, pause=False, max_bandwidth=int(bandwidth * 1024 * 1024))
        await lab.migrate()
        if args.lab_age:
            # An operator watches a migration that has run for minutes: its history full (the
            # chart's 300 samples), one sample leaving it at every poll.
            await asyncio.sleep(args.lab_age)
        pair = [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]
        runs = []
        for name, path in order(trees, args.rounds):
            run = await asyncio.to_thread(measure, name, path, pair, "src", warmup=args.warmup,
                                          seconds=args.seconds, keys=0, args=args, label="lab")
            print(f"  lab pair, {name}: view+engine {run.migtui:.2f} % {run.cpu}", file=sys.stderr, flush=True)
            runs.append(run)
        mach = f"QEMU {lab.qemu_version}, {lab.accel}"
    age = f", migrating {args.lab_age:.0f} s first" if args.lab_age else ""
    return rows_for(f"lab src + dst, active migration{age}, {args.seconds:.0f} s", runs, trees, keys=False), mach


def qemu_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return out.split("version", 1)[1].split()[0] if "version" in out else "?"


def main(args: argparse.Namespace) -> str:
    trees = [(name, Path(path).resolve()) for name, path in (t.split("=", 1) for t in args.tree)] or \
        [("this tree", ROOT)]
    binary = find_qemu(args.qemu)
    load = loadavg()
    rows = idle_part(args, trees, binary) if args.monitors else []
    lab_machine = ""
    if args.lab:
        lab_rows, lab_machine = asyncio.run(lab_part(args, trees))
        rows += lab_rows
    command = " ".join([".venv/bin/python", "bench/idle_bench.py", *map(shlex.quote, sys.argv[1:])])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mach = (f"{os.cpu_count()} CPUs ({cpu_model()}), QEMU {qemu_version(binary)}"
            f"{' (lab: ' + lab_machine + ')' if lab_machine else ''}, Python {platform.python_version()},"
            f" Linux {platform.release()}")
    head = [
        f"### {when}, QEMU {qemu_version(binary)}",
        "",
        f"- machine: {mach}; load average before the run {load}",
        f"- tmux {COLS}x{ROWS}, migtui and `htop -d 10` in two windows of one session; {args.rounds} round(s),"
        f" trees alternating; warm-up {args.warmup:g} s + N/25 s; {args.keys} keys per run",
        f"- trees: {', '.join(f'{n} = {shlex.quote(str(p))}' for n, p in trees)}",
        f"- command: `{command}`",
        "",
        "| what | migtui from | view + engine (% of one core) | htop | tmux server | key to answer"
        " (median / max) | view + engine per run |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    return "\n".join(head + rows) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=lambda t: [int(x) for x in t.split(",") if x], default=[50, 200],
                        help="comma-separated N (empty: skip)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--events", action="store_true",
                        help="turn on the idle QEMUs' events capability first (as libvirt and arming do)")
    parser.add_argument("--lab", action="store_true", help="also the src + dst pair of an active lab migration")
    parser.add_argument("--lab-age", type=float, default=0.0, metavar="SECONDS",
                        help="let the lab migrate this long before the first run (a migration of minutes)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="a migtui checkout to run (repeatable; default: this one)")
    parser.add_argument("--qemu", help="the qemu-system-x86_64 to run (default: $MIGTUI_QEMU, else PATH's)")
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file's section")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the engine and the view after each run")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", metavar="PATH")
    a = parser.parse_args()
    if not shutil.which("htop"):
        raise SystemExit("bench: htop is missing: apt-get install -y htop")
    table = main(a)
    print(table)
    if a.out:
        append(a.out, SECTION, table)
        print(f"appended to {a.out}")
