"""migtui beside a real libvirt: a pause migtui does not own is not migtui's to resolve (issue 8).

Two libvirtd instances on this machine (tests/libvirt_lab.py) migrate a small guest
with ``virsh migrate --live --p2p --copy-storage-all``. libvirt turns on
pause-before-switchover and, at the pause, finishes its mirrors and sends
``migrate-continue`` itself within milliseconds. Meanwhile a migtui engine watches the
guest through a second QMP monitor on each side, with ``--auto-resume`` named
explicitly -- the strongest reason it could have to act -- and a real dashboard in tmux
is attached to that engine. The test proves, from QEMU's own ``handle_qmp_command``
trace, that migtui sent nothing but read-only queries, that the engine recognised
libvirt and left the pause to it, and that the screen says so.

Runs on every QEMU build of the suite (``qemu``): libvirt's capability probe
(``qom-list-types``) makes QEMU load all its modules, so scripts/qemu-10 unpacks the
GUI/spice/block module packages of the 10.0 build too (modules of another build abort it),
and the lab's <acpi/> keeps libvirt 9.0 from passing -no-acpi, which QEMU 9.0+ refuses.

Needs root, libvirt and tmux; when one is missing the test fails with the apt line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import until
from libvirt_lab import (
    INSTALL,
    LibvirtLab,
    LibvirtLabError,
    TracedCommand,
    commands_by_monitor,
    missing_tools,
    traced_commands,
)

from migtui.address import parse_addresses
from migtui.errors import MigtuiError
from migtui.protocol.messages import Pause, PolicyInfo
from migtui.protocol.runtime import RUNTIME_ENV, runtime
from migtui.transport.readonly import READ_ONLY_COMMANDS
from migtui.view.client import EngineClient
from migtui.view.remote import RemoteSession

REPO = Path(__file__).resolve().parents[2]
COLUMNS, ROWS = 100, 30
# What the dashboard shows when the engine leaves a pause to libvirt: the engine's notice
# that auto-resume stands down (a toast) or the dialog's note, if the dialog opened
# within libvirt's few milliseconds; then the dialog's outcome, when it did.
LIBVIRT_ON_SCREEN = ("libvirt drives this migration", "another client continued the migration")

pytestmark = [pytest.mark.timeout(120), pytest.mark.qemu]


def _environment() -> dict[str, str]:
    """The children's environment, always passed explicitly. Without COLUMNS/LINES: a child
    otherwise inherits the C environment, where GNU readline (loaded by something in the
    test process) may have set COLUMNS=80 LINES=24, and the dashboard would draw 80x24 in
    the 100x30 pane. Without $MIGTUI_RUNTIME_DIR (the conftest's per-test /tmp/mtrt-*):
    every child gets --runtime-dir, and the end-of-session sweep of any pytest run on this
    machine kills processes that carry a /tmp/mtrt-* one."""
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", RUNTIME_ENV)}


def _run(argv: list[str], timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                          env=_environment())


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path.name})"


# ---------------------------------------------------------------------- fixtures

@pytest.fixture
def libvirt(qemu_build: Any) -> Iterator[LibvirtLab]:
    missing = missing_tools()
    install = [INSTALL] if missing else []
    if shutil.which("tmux") is None:
        missing.append("tmux")
        install.append("apt-get install -y tmux")
    if missing:  # never skipped: the suite installs what it needs
        pytest.fail(f"{', '.join(missing)} not found: {' && '.join(install)}", pytrace=False)
    try:
        lab = LibvirtLab(qemu_build.path).__enter__()  # closes itself when it cannot start
    except LibvirtLabError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    # Short (sun_path is 108 bytes), and not /tmp/mtrt-*: the suite's end-of-session sweep
    # kills every engine there, which ends this one mid-test when another pytest run on
    # the machine finishes first (see _environment). This test stops its own engine.
    directory = Path(tempfile.mkdtemp(prefix="mtlv-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def engine_process(runtime_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``migtui engine --foreground`` in the private runtime directory; stopped at the end."""
    with open(runtime_dir / "engine.stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "migtui", "engine", "--foreground", "--runtime-dir",
                                 str(runtime_dir)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, cwd=REPO, env={**_environment(), "PYTHONFAULTHANDLER": "1"})
    try:
        deadline = time.monotonic() + 15
        while not (runtime_dir / "engine.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the engine did not start: {_tail(runtime_dir / 'engine.stderr')}", pytrace=False)
            time.sleep(0.01)
        yield proc
    finally:
        if proc.poll() is None:
            _run([sys.executable, "-m", "migtui", "engine", "stop", "--force", "--runtime-dir", str(runtime_dir)],
                 timeout=20)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Tmux:
    """A private tmux server (its own -L socket) running one dashboard at 100x30."""

    def __init__(self, directory: Path) -> None:
        self.server = f"migtui-lv-{uuid.uuid4().hex[:8]}"
        self.conf = directory / "tmux.conf"
        self.conf.write_text("set -g status off\nset -g remain-on-exit on\nset -g history-limit 0\n")
        self.captures: list[str] = []  # every distinct screen, in order
        self.pane_pid: int | None = None

    def argv(self, *args: str) -> list[str]:
        return ["tmux", "-L", self.server, "-f", str(self.conf), *args]

    def start(self, *command: str) -> None:
        result = _run(self.argv("new-session", "-d", "-s", "view", "-x", str(COLUMNS), "-y", str(ROWS),
                                "-c", str(REPO), *command))
        if result.returncode != 0:
            raise AssertionError(f"tmux new-session failed: {result.stderr.strip()}")
        pid = _run(self.argv("list-panes", "-t", "view", "-F", "#{pane_pid}")).stdout.strip()
        self.pane_pid = int(pid) if pid.isdigit() else None

    async def capture(self) -> str:
        proc = await asyncio.create_subprocess_exec(*self.argv("capture-pane", "-p", "-t", "view"),
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL, env=_environment())
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        if not self.captures or self.captures[-1] != text:
            self.captures.append(text)
        return text

    async def record(self, stop: asyncio.Event) -> None:
        """Keep every distinct screen (the dialog may last only as long as libvirt's pause)."""
        while not stop.is_set():
            await self.capture()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    def seen(self, *phrases: str) -> str | None:
        """The first phrase found on any screen so far (toasts wrap: words are compared)."""
        for screen in self.captures:
            flat = _words(screen)
            for phrase in phrases:
                if _plain(phrase) in flat:
                    return phrase
        return None

    def last_screen(self) -> str:
        return self.captures[-1] if self.captures else "(nothing captured)"

    def stop(self) -> None:
        _run(self.argv("kill-server"))
        if self.pane_pid is None:
            return
        deadline = time.monotonic() + 10  # the dashboard got SIGHUP: wait until it is gone
        while Path(f"/proc/{self.pane_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if Path(f"/proc/{self.pane_pid}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pane_pid, signal.SIGKILL)


_TOAST_EDGE = re.compile(r"▌[^▌]*$")


def _words(text: str) -> str:
    """A screen's words, toasts apart: a toast wraps its text over lines, each after a ▌
    edge with the dashboard to its left; its lines are read on their own, then the rest."""
    toast, rest = [], []
    for line in text.splitlines():
        edge = _TOAST_EDGE.search(line)
        if edge is not None:  # the dashboard's last column may show through on the right
            toast.append(re.sub(r"\s{2,}\S$", "", edge.group(0)[1:]))
            line = line[: edge.start()]
        rest.append(line)
    return _plain(" ".join(toast)) + " | " + _plain(" ".join(rest))


def _plain(text: str) -> str:
    """Words separated by one space; borders and box lines dropped."""
    return " ".join(re.findall(r"[^\s│▌╭╮╰╯─]+", text))


@pytest.fixture
def tmux(runtime_dir: Path) -> Iterator[Tmux]:
    server = Tmux(runtime_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(engine_process: subprocess.Popen[bytes], runtime_dir: Path) -> AsyncIterator[EngineClient]:
    c = EngineClient(runtime(runtime_dir), kind="test")
    try:
        await c.connect(start=False)
    except MigtuiError as err:
        alive = "running" if engine_process.poll() is None else f"exited ({engine_process.returncode})"
        pytest.fail(f"cannot attach to the engine ({alive}): {err}; its stderr: {_tail(runtime_dir / 'engine.stderr')}",
                    pytrace=False)
    try:
        yield c
    finally:
        await c.close()


# ---------------------------------------------------------------------- the trace

def _client_of(c: TracedCommand) -> str:
    if c.id is not None and c.id.startswith("libvirt-"):
        return "libvirt"
    if c.id is not None and c.id.startswith("__qmp#"):
        return "migtui"
    return f"unknown ({c.command} with id {c.id!r})"


def check_trace(log: Path, side: str, libvirt_sends: set[str]) -> dict[str, list[TracedCommand]]:
    """QEMU's handle_qmp_command trace of one side, split by monitor (its ``mon`` pointer).
    A monitor's client is told by its command ids: libvirt numbers its commands
    ``libvirt-N``; migtui's QMP library (qemu.qmp) ``__qmp#NNNNN``, after a
    ``qmp_capabilities`` without an id. Returns {"libvirt": [...], "migtui": [...]}."""
    commands = traced_commands(log.read_text(errors="replace"))
    assert commands, f"{side}: no handle_qmp_command trace in {log}"
    found: dict[str, list[TracedCommand]] = {}
    for mon, sent in commands_by_monitor(commands).items():
        clients = {_client_of(c) for c in sent if not (c.id is None and c.command == "qmp_capabilities")}
        assert len(clients) == 1, f"{side}: monitor {mon} has commands from {sorted(clients)}"
        client = clients.pop()
        assert client in ("libvirt", "migtui"), f"{side}: monitor {mon}: {client}"
        assert client not in found, f"{side}: two {client} monitors"
        found[client] = sent
    assert "libvirt" in found, f"{side}: libvirt's monitor is not in the trace"
    names = {c.command for c in found["libvirt"]}
    assert libvirt_sends <= names, f"{side}: libvirt's monitor lacks {sorted(libvirt_sends - names)}"
    assert "migtui" in found, f"{side}: migtui's monitor is not in the trace (did the engine connect?)"
    mine = [c.command for c in found["migtui"]]
    assert mine[0] == "qmp_capabilities" and "query-commands" in mine, f"{side}: migtui's monitor began {mine[:5]}"
    not_read_only = sorted({c for c in mine if c not in READ_ONLY_COMMANDS})
    assert not not_read_only, f"{side}: migtui sent commands outside READ_ONLY_COMMANDS: {not_read_only}"
    return found


def summary(found: dict[str, list[TracedCommand]]) -> str:
    parts = []
    for client, sent in sorted(found.items()):
        counts: dict[str, int] = {}
        for c in sent:
            counts[c.command] = counts.get(c.command, 0) + 1
        parts.append(f"{client} (mon {sent[0].mon}): " + ", ".join(f"{k} x{v}" for k, v in counts.items()))
    return "; ".join(parts)


# ---------------------------------------------------------------------- the test

async def test_libvirt_finishes_its_own_pause_and_migtui_only_watches(
    libvirt: LibvirtLab, engine_process: subprocess.Popen[bytes], client: EngineClient, tmux: Tmux,
    runtime_dir: Path
) -> None:
    started = time.monotonic()
    lab = libvirt
    guest = lab.start_guest(dirty_mib=4, disk_mib=16)
    monitors = [f"src={guest.source_monitor}", f"dst={guest.destination_monitor}"]

    def engine_state() -> str:
        alive = "running" if engine_process.poll() is None else f"EXITED ({engine_process.returncode})"
        return (f"engine {alive}; its log ends:\n{_tail(runtime_dir / 'engine.log')}\n"
                f"its stderr ends:\n{_tail(runtime_dir / 'engine.stderr')}")

    # The engine watches both sides from the start (the destination's QEMU only appears
    # when libvirt starts the migration: the engine retries), auto-resume named explicitly.
    await until(guest.source_monitor.exists, 15, "the source's migtui monitor")
    names = await client.watch(parse_addresses(monitors),
                               PolicyInfo(auto_resume=True, explicit=["auto_resume"]),
                               read_only=False, interval=0.5)
    assert names == ["src", "dst"]
    await client.subscribe()
    src: RemoteSession = client.sessions["src"]
    dst: RemoteSession = client.sessions["dst"]
    pauses: list[Pause] = []  # the engine's word on the pause as this view first saw it

    def on_change(session: Any, kinds: frozenset[str]) -> None:
        if src.pause.paused and not pauses:
            pauses.append(src.pause)

    src.add_change_listener(on_change)
    await until(lambda: src.connected and src.pause.owner == "libvirt", 20,
                "the engine to recognise libvirt", lambda: f"{src.status.label()}, pause {src.pause}\n{engine_state()}")

    # A real dashboard attached to the same engine, with the flags an operator would give.
    tmux.start(sys.executable, "-m", "migtui", "--runtime-dir", str(runtime_dir), "--auto-resume", *monitors)
    stop_recording = asyncio.Event()
    recorder = asyncio.create_task(tmux.record(stop_recording))
    try:
        await until(lambda: any("src" in s and "dst" in s for s in tmux.captures), 30, "the dashboard",
                    tmux.last_screen)

        # (a) libvirt's own migration completes: virsh exits 0, the guest runs on B.
        migrated = await asyncio.to_thread(lab.migrate, guest, timeout=60)
        assert migrated.returncode == 0, f"virsh migrate failed: {migrated.stderr.strip()}"
        assert lab.domstate(lab.b, guest) == "running"
        assert lab.domstate(lab.a, guest).startswith("(none")  # transient: gone from A

        # (c) the engine saw the pause, knew it was libvirt's, and only watched it end.
        await until(lambda: src.switchover.result is not None, 15, "the engine's word on the pause",
                    lambda: f"status {src.state.migration_status}, pause {src.pause}\n{engine_state()}")
        assert any(c.status == "pre-switchover" for c in src.state.status_changes), \
            f"the engine never saw the pause: {[c.status for c in src.state.status_changes]}"
        assert pauses and pauses[0].owner == "libvirt", f"owner at the pause: {pauses}"
        assert pauses[0].auto is False and "libvirt" in pauses[0].driver, pauses[0]
        assert pauses[0].deadline is None and "libvirt" in pauses[0].no_deadline, pauses[0]
        result = src.switchover.result
        assert result is not None and "another client continued the migration" in result.reason, result
        assert src.switchover.action is None and src.switchover.actor is None, \
            f"the engine acted: {src.switchover.action} by {src.switchover.actor}"
        await until(lambda: "libvirt" in str(src.pause.notes.get("auto", "")), 10,
                    "the engine's note that auto-resume stood down", lambda: str(src.pause))

        # ... and the dashboard said so.
        await until(lambda: tmux.seen(*LIBVIRT_ON_SCREEN), 15, "libvirt's pause on the dashboard",
                    lambda: "\n---- screen ----\n".join(tmux.captures[-3:]) + "\n" + engine_state())

        # The destination's monitor appeared with its QEMU; the engine reaches it (retrying).
        await until(lambda: dst.connected, 30, "the engine to reach the destination's monitor",
                    lambda: f"{dst.status.label()}\n{engine_state()}")
        b_log = lab.b.qemu_log(guest.name)
        await until(lambda: any(c.command == "query-migrate" and _client_of(c) == "migtui"
                                for c in traced_commands(b_log.read_text(errors="replace"))),
                    10, "the engine's first poll of the destination")
    finally:
        stop_recording.set()
        await recorder

    # (b) QEMU's trace: on either side migtui sent only read-only queries (libvirt did the rest).
    source = check_trace(lab.a.qemu_log(guest.name), "source", {"migrate", "block-job-cancel", "migrate-continue"})
    destination = check_trace(lab.b.qemu_log(guest.name), "destination", {"migrate-incoming"})
    print(f"\nsource trace: {summary(source)}\ndestination trace: {summary(destination)}"
          f"\non screen: {tmux.seen(*LIBVIRT_ON_SCREEN)!r}, the dialog opened:"
          f" {tmux.seen('src: paused before switchover') is not None} ({len(tmux.captures)} screens);"
          f" {time.monotonic() - started:.1f} s after the daemons were up")
