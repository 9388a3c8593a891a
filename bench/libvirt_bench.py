"""Idle libvirt domains: what the real ``migtui -c URI -c URI`` (view + engine) costs watching
N idle domains on two libvirt hosts, side by side with htop in the same tmux at 80x24.

    .venv/bin/python bench/libvirt_bench.py [--domains 20] [--seconds 60] [--warmup 10] [--keys 20]
        [--tree NAME=PATH ...] [--profile DIR] [--out FILE]

Two real libvirt 9.0 daemons (tests/libvirt_lab.py: private directories, ports, host UUIDs),
N diskless 32 MiB domains spread over them (bench/libvirt_idle.py: SeaBIOS finds nothing
to boot and halts). One private tmux server (bench/idle_bench.py's ``Session``) with two
windows of 80x24: ``migtui --runtime-dir DIR -c a=URI_A -c b=URI_B`` (the view and the engine
it starts) and ``htop -d 10``. After ``--warmup`` seconds, over ``--seconds`` it counts the
CPU time (utime + stime, every thread) of the view, the engine, htop, the tmux server and
both libvirtd (what migtui's calls cost the daemons), then times ``--keys`` keys as
idle_bench.py does. The issue's claim: watched by events, a job polled only while it runs,
idle domains cost next to nothing. ``--tree NAME=PATH`` (repeatable; default: this checkout)
measures the migtui of each checkout in turn on the same domains, e.g. the commit before a
change (``git archive BASE | tar -x -C /tmp/before``). ``--profile DIR``: py-spy the engine
and the view after each.
Prints Markdown and appends it to ``--out`` (docs/benchmarks.md) when given.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle_bench import COLS, ROWS, Session, cpu_percent, key_answers, profile, wait_screen
from libvirt_idle import connections, open_lab, start_idle
from machine import cpu_model
from term import ROOT, alive, append, loadavg

SECTION = "## Idle libvirt domains: migtui -c vs htop in the same tmux"


def measure(tree: tuple[str, Path], lab_args: list[str], args: argparse.Namespace,
            daemons: dict[str, int]) -> tuple[dict[str, float], list[float]]:
    s = Session(tree[1], lab_args)
    try:
        s.start()
        wait_screen(s, "lvidle", 60)
        pids = {"view": s.pid("migtui"), "engine": s.engine_pid(), "htop": s.pid("htop"), "tmux": s.server_pid(),
                **daemons}
        assert s.size("migtui") == f"{COLS}x{ROWS}" and s.size("htop") == f"{COLS}x{ROWS}", s.size("migtui")
        time.sleep(args.warmup)
        cpu = cpu_percent(pids, args.seconds)
        keys = key_answers(s, args.keys)
        screen = s.screen()
        if not alive(pids["view"]) or not alive(pids["engine"]):
            raise SystemExit(f"bench: migtui ended during the measurement:\n{screen}")
        print(screen, file=sys.stderr)
        if args.profile is not None:
            profile(args, f"libvirt{args.domains}-{tree[0].replace(' ', '_')}", pids)
    finally:
        s.stop()
    return cpu, keys


def main(args: argparse.Namespace) -> str:
    trees = [(name, Path(path).resolve()) for name, path in (t.split("=", 1) for t in args.tree)] or \
        [("this tree", ROOT)]
    load = loadavg()
    results = []
    lab = open_lab()
    try:
        names = start_idle(lab, args.domains)
        assert lab.a.process is not None and lab.b.process is not None
        daemons = {"libvirtd a": lab.a.process.pid, "libvirtd b": lab.b.process.pid}
        version = lab.a.virsh("version").stdout
        libvirt = next((line.split()[-1] for line in version.splitlines() if "libvirt" in line.lower()), "?")
        qemu = next((line.split()[-1] for line in version.splitlines() if "hypervisor" in line.lower()), "?")
        accel = lab.accel
        for tree in trees:
            cpu, keys = measure(tree, connections(lab), args, daemons)
            print(f"  {len(names)} idle domains, {tree[0]}: {cpu} keys median"
                  f" {statistics.median(keys) if keys else 0:.0f} ms", file=sys.stderr)
            results.append((tree[0], cpu, keys))
    finally:
        lab.close()
    command = " ".join([".venv/bin/python", "bench/libvirt_bench.py", *map(shlex.quote, sys.argv[1:])])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for name, cpu, keys in results:
        keys_text = f"{statistics.median(keys):.0f} / {max(keys):.0f} ms" if keys else ""
        rows.append(f"| {args.domains} idle libvirt domains, 2 hosts, {args.seconds:g} s | {name}"
                    f" | **{cpu['view'] + cpu['engine']:.2f} %** (view {cpu['view']:.2f}, engine {cpu['engine']:.2f})"
                    f" | {cpu['htop']:.2f} % | {cpu['tmux']:.2f} % | {cpu['libvirtd a'] + cpu['libvirtd b']:.2f} %"
                    f" | {keys_text} |")
    return "\n".join([
        f"### {when}, libvirt {libvirt}, QEMU {qemu}",
        "",
        f"- machine: {os.cpu_count()} CPUs ({cpu_model()}), {accel}, Python {platform.python_version()},"
        f" Linux {platform.release()}; load average before the run {load}",
        f"- {args.domains} idle domains ({os.path.basename(__file__)}: diskless, 32 MiB, halted in SeaBIOS) on two"
        " libvirtd (tests/libvirt_lab.py), half on each; `migtui -c a=URI -c b=URI` and `htop -d 10` in two"
        f" windows of one tmux session at {COLS}x{ROWS}, measured at the same time; warm-up {args.warmup:g} s,"
        f" {args.seconds:g} s counted, then {args.keys} keys",
        f"- trees: {', '.join(f'{n} = {shlex.quote(str(p))}' for n, p in trees)}",
        f"- command: `{command}`",
        "",
        "| what | migtui from | view + engine (% of one core) | htop | tmux server | libvirtd a + b | key to answer"
        " (median / max) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="a migtui checkout to run (repeatable; default: this one)")
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file's section")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the engine and the view after the run")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or str(ROOT / ".venv/bin/py-spy"), metavar="PATH")
    a = parser.parse_args()
    if not shutil.which("htop"):
        raise SystemExit("bench: htop is missing: apt-get install -y htop")
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        raise SystemExit("bench: the libvirt lab runs libvirtd as root")
    table = main(a)
    print(table)
    if a.out:
        append(a.out, SECTION, table)
        print(f"appended to {a.out}")
