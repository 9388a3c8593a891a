"""Shared fixtures and helpers, and the QEMU builds the real-QEMU tests run on.

Every test marked ``qemu`` runs once per build given with ``--qemu=PATH`` (repeatable;
default: the qemu-system-x86_64 on PATH), its id ending in the version
(``[qemu-10.0.2]``). The build is handed to the code under test as ``$MIGTUI_QEMU``,
which the lab and ``tests/qemu_util.py`` read. A test that is not marked gets a
``$MIGTUI_QEMU`` that cannot run, so one that starts QEMU without the marker fails
instead of quietly testing one version only.

The helpers every kind of test shares (tests import them: ``from conftest import ...``):

- ``until``: wait on a condition (never sleep, then assert);
- ``app_for``: the dashboard as production runs it -- a view of an engine. An ``Engine``
  and its server run in this process in a runtime directory of their own, and the view
  attaches through ``view_main`` (``EngineClient`` and its ``RemoteSession`` mirrors),
  headless under Textual's Pilot. The engine watches real QEMU monitors, or recorded
  QEMUs (``replay.recorded``: a recorded real QMP exchange served on a socket) for
  screens that need a fixed state;
- ``screen_text``: what the terminal shows, every screen on the stack composited.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from engine_util import SUITE_ENV, EngineProcess, engine_pids, short_runtime_dir, suite_leftovers
from replay import Recorded
from textual._context import active_app
from textual.pilot import Pilot
from tmux_util import Tmux

from migtui.address import parse_addresses
from migtui.engine.engine import Engine
from migtui.engine.server import EngineServer
from migtui.engine.wire import policy_from
from migtui.errors import LabError
from migtui.lab.lab import Lab
from migtui.lab.qemu import QEMU_ENV, find_qemu_img
from migtui.lab.scenarios import SCENARIOS
from migtui.protocol.messages import PolicyInfo
from migtui.protocol.runtime import RUNTIME_ENV, runtime
from migtui.transport.readonly import is_read_only
from migtui.tui.app import MigtuiApp
from migtui.tui.view_run import view_main
from migtui.view.client import EngineClient
from migtui.view.remote import RemoteSession
from migtui.workflow.session import MonitorSession

# Labs run under TCG unless a test asks for KVM (its dirty ring, for the dirty limit): under a
# nested KVM that emulates the guest's instructions, as on this project's machine, each lab's
# SeaBIOS boot costs 7-12 s of a core, under TCG ~0.5 s -- it was most of the suite's time.
# `migtui lab` and `migtui demo` run by the tests inherit it. What the tests check is QEMU's
# migration and QMP and migtui, the same under both (the lab's figures: migtui/lab/scenarios.py).
# MIGTUI_LAB_ACCEL=kvm ./scripts/test runs them under KVM.
os.environ.setdefault("MIGTUI_LAB_ACCEL", "tcg")

# replay's ``version`` fixture (each recorded QEMU version in turn), for every test module:
# imported into each instead, it shadows itself in the tests' parameters (ruff F811).
pytest_plugins = ["replay"]

UNMARKED = "/nonexistent/mark-this-test-with-pytest.mark.qemu/qemu-system-x86_64"
INSTALL = "apt-get install -y qemu-system-x86 qemu-utils"


@dataclass(frozen=True)
class QemuBuild:
    path: str
    version: str  # "7.2.22"; "missing" when the binary cannot run

    @property
    def id(self) -> str:
        return f"qemu-{self.version}"


def pytest_addoption(parser: pytest.Parser) -> None:
    # Write it --qemu=PATH: pytest reads a bare PATH after an option it does not know
    # yet as a test path, before it has loaded this file.
    parser.addoption("--qemu", action="append", default=[], metavar="PATH",
                     help="a qemu-system-x86_64 to run the real-QEMU tests on; repeat for several "
                          "(default: the one on PATH)")


def _version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "missing"
    found = re.search(r"version (\d+\.\d+\.\d+)", out)
    return found.group(1) if found else "missing"


def qemu_builds(config: pytest.Config) -> list[QemuBuild]:
    builds = getattr(config, "_migtui_qemu_builds", None)
    if builds is None:
        paths = config.getoption("--qemu") or [shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"]
        builds = [QemuBuild(path, _version(path)) for path in paths]
        versions = [b.version for b in builds]
        if len(set(versions)) != len(versions):
            raise pytest.UsageError(f"--qemu names the same version twice: {versions}")
        config._migtui_qemu_builds = builds  # type: ignore[attr-defined]
    return builds


def pytest_report_header(config: pytest.Config) -> str:
    return "real-QEMU tests run on: " + ", ".join(f"QEMU {b.version} ({b.path})" for b in qemu_builds(config))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("qemu")
    if marker is not None:
        builds = qemu_builds(metafunc.config)
        if marker.kwargs.get("one_build"):  # what it tests is the terminal's, not QEMU's: the newest build
            builds = [max(builds, key=_version_key)]
        metafunc.parametrize("qemu_build", builds, ids=[b.id for b in builds], indirect=True)


def _version_key(build: QemuBuild) -> list[int]:
    return [int(p) if p.isdigit() else -1 for p in build.version.split(".")]


@pytest.fixture(autouse=True)
def qemu_build(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[QemuBuild | None]:
    build: QemuBuild | None = getattr(request, "param", None)
    if build is None:
        monkeypatch.setenv(QEMU_ENV, UNMARKED)
        yield None
        return
    if build.version == "missing":  # real-QEMU tests never skip quietly
        pytest.fail(f"{build.path} cannot run: {INSTALL}", pytrace=False)
    try:
        find_qemu_img(build.path)
    except LabError as err:
        pytest.fail(str(err), pytrace=False)
    monkeypatch.setenv(QEMU_ENV, build.path)
    yield build


_outcomes: Counter[tuple[str, str]] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    found = re.search(r"\[(?:.*-)?qemu-([\w.]+)\]$", report.nodeid)
    if found and (report.when == "call" or report.outcome != "passed"):
        # pytest reports an expected failure as "skipped": say it as what it is (it ran).
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _outcomes[(found.group(1), outcome)] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    versions = sorted({v for v, _ in _outcomes}, key=lambda v: [int(p) if p.isdigit() else 0 for p in v.split(".")])
    for version in versions:
        parts = ", ".join(f"{n} {outcome}" for (v, outcome), n in sorted(_outcomes.items()) if v == version)
        terminalreporter.write_line(f"real-QEMU tests on QEMU {version}: {parts}")


@pytest.fixture(autouse=True)
def private_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own engine runtime directory: it never meets a user's engine
    (nor another test's). An engine a test left behind is ended here."""
    directory = short_runtime_dir()
    monkeypatch.setenv(RUNTIME_ENV, str(directory))
    yield directory
    for pid in engine_pids(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    # Set before pytest-xdist starts its workers: they, and all they start, inherit it.
    os.environ.setdefault(SUITE_ENV, uuid.uuid4().hex)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite leaves nothing running: an engine, view, QEMU, tmux server or libvirt
    daemon any test started (found by the suite's token in its environment, so also under
    pytest-xdist and after a detaching fork) fails the run, and is killed."""
    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller checks once all workers are done
    token = os.environ[SUITE_ENV]
    left = suite_leftovers(token)
    patience = time.monotonic() + 10  # a process told to stop in the last test may still be exiting
    while left and time.monotonic() < patience:
        time.sleep(0.2)
        left = suite_leftovers(token)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if left:
        lines = "".join(f"\n  {pid}: {argv}" for pid, argv in left)
        print(f"\nFAILED: processes the tests started are still running after the suite (killed now):{lines}",
              file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def engine() -> Iterator[EngineProcess]:
    """A real `migtui engine --foreground` in a runtime directory of its own."""
    proc = EngineProcess(short_runtime_dir()).start()
    try:
        yield proc
    finally:
        proc.cleanup()


# The fixtures' guests dirty their 4 MiB at 8 MiB/s (the stuck scenario's rate): above the
# 1 and 4 MiB/s max-bandwidth a test holds a migration active with (each pass finds the whole
# range dirty again, as with an unpaced guest), far below the 128 MiB/s default and the 1 GiB/s
# a test lets one complete at. Paced, a guest halts between its writes: a few % of a core
# instead of a whole one spinning for the test's length (an unpaced guest, ``dirty_rate_mib_s``
# None, is still started by tests/lab/test_lab.py and test_status_cli.py).
FIXTURE_RATE = SCENARIOS["stuck"].dirty_rate_mib_s


@pytest.fixture
async def storage_lab(tmp_path: Path, qemu_build: QemuBuild | None) -> AsyncIterator[Lab]:
    """A started lab pair (the destination on -incoming defer) whose files outlive its QEMUs, so the
    disk images can be compared after stopping."""
    lab = Lab(memory_mib=64, dirty_mib=4, disk_mib=16, directory=tmp_path / "lab", keep_files=True,
              dirty_rate_mib_s=FIXTURE_RATE)
    await lab.start()
    try:
        yield lab
    finally:
        await lab.stop()


@pytest.fixture
async def lab(qemu_build: QemuBuild | None) -> AsyncIterator[Lab]:
    """A started real QEMU pair: 64 MiB guests dirtying 4 MiB at 8 MiB/s (``FIXTURE_RATE``:
    a plain migration completes in well under a second, one held to 1 or 4 MiB/s never
    converges), with a 16 MiB data disk. Both QEMUs stop and the lab's private directory
    goes at teardown."""
    async with Lab(memory_mib=64, dirty_mib=4, disk_mib=16, dirty_rate_mib_s=FIXTURE_RATE) as started:
        yield started


@pytest.fixture
async def stuck(qemu_build: QemuBuild | None) -> AsyncIterator[Callable[..., Any]]:
    """Labs of the ``stuck`` scenario (16 MiB dirtied at 8 MiB/s against 4 MiB/s: it never
    converges by itself); ``capabilities`` switched on on both sides before the start (the
    destination's before it listens); ``dirty_ring``: under KVM with its dirty ring of that
    many entries; all stopped at teardown."""
    labs: list[Lab] = []

    async def start(*capabilities: str, pause: bool = False, downtime_limit: int | None = None,
                    dirty_ring: int = 0) -> Lab:
        s = SCENARIOS["stuck"]
        lab = Lab(memory_mib=128, dirty_mib=16, disk=False, dirty_rate_mib_s=s.dirty_rate_mib_s,
                  accel="kvm" if dirty_ring else None, dirty_ring=dirty_ring)
        labs.append(lab)
        await lab.start()
        caps = {"capabilities": [{"capability": c, "state": True} for c in capabilities]}
        if capabilities:  # the destination's before it listens (migrate-incoming)
            await (await lab.control(lab.dst)).execute("migrate-set-capabilities", caps)
        assert s.bandwidth_mib_s is not None
        await lab.prepare(storage=False, pause=pause, max_bandwidth=int(s.bandwidth_mib_s * 1024 * 1024),
                          downtime_limit=downtime_limit)
        if capabilities:
            await (await lab.control(lab.src)).execute("migrate-set-capabilities", caps)
        return lab

    yield start
    for lab in labs:
        await lab.stop()


@pytest.fixture
def terminals() -> Iterator[list[Tmux]]:
    """Terminals (tmux) a test opens with ``tmux_util.open_terminal``; closed at its end."""
    opened: list[Tmux] = []
    yield opened
    for term in opened:
        term.close()


# ---------------------------------------------------------------------- helpers


async def until(pred: Callable[[], Any], timeout: float = 30.0, what: str = "the condition",
                detail: Callable[[], str] | None = None) -> None:
    """Wait until ``pred()`` holds (it may return an awaitable). ``timeout`` is a limit,
    never what a test measures: give one a busy machine does not reach (the wait ends as
    soon as ``pred()`` holds). ``detail()`` adds what to say when it never does."""
    deadline = time.monotonic() + timeout
    while True:
        result = pred()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            extra = detail() if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}" + (f": {extra}" if extra else ""))
        await asyncio.sleep(0.02)


_SVG_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="([\d.]+)"'
                       r' clip-path="url\(#[\w-]+-line-(\d+)\)">([^<]*)</text>')


def screen_text(app: MigtuiApp) -> str:
    """What the terminal shows, row by row: every screen on the stack composited (the
    dashboard behind a dialog included), read from Textual's own screenshot."""
    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    for x, length, line, escaped in _SVG_TEXT.findall(app.export_screenshot()):
        text = html.unescape(escaped).replace("\xa0", " ")
        col = round(float(x) / (float(length) / len(text))) if text else 0
        for i, char in enumerate(text):
            if 0 <= col + i < width and int(line) < height:
                rows[int(line)][col + i] = char
    return "\n".join("".join(r) for r in rows)


class Sent:
    """Every command the engine wrote to its monitors' sockets: (monitor, command, arguments)."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str, Any]] = []

    def watch(self, session: MonitorSession) -> None:
        monitor = session.monitor
        assert monitor is not None

        def sent(name: str, args: Any, who: str = session.name) -> None:
            self.commands.append((who, name, args))

        monitor.add_command_listener(sent)

    def mutating(self) -> list[tuple[str, str, Any]]:
        """Those outside the --read-only allow-list: every one that can change a VM."""
        return [c for c in self.commands if not is_read_only(c[1])]


@dataclass
class View:
    """The dashboard attached to an in-process engine (``app_for``)."""

    app: MigtuiApp
    pilot: Pilot
    engine: Engine
    client: EngineClient
    sessions: list[RemoteSession]  # the view's mirrors, in the order watched
    sent: Sent  # what the engine wrote to the monitors
    recorded: Recorded | None = None
    code: int | None = None  # view_main's exit status, once the view is gone
    toasts: list[str] = field(default_factory=list)  # every notification the app showed

    def engine_session(self, name: str) -> MonitorSession:
        """The engine's own session of monitor ``name`` (the one that talks QMP)."""
        return self.engine.watched[name].session

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)


def _settled(view: View) -> bool:
    """The view's first picture: every monitor connected, polled, its pause and owner known
    -- or, where no QEMU answers (``replay.DeadSocket``), failing for its reason."""
    qemus = view.recorded.qemus if view.recorded is not None else {}
    for s in view.sessions:
        if not getattr(qemus.get(s.name), "connects", True):
            if s.status.error is None:
                return False
        # Connected, polled, the engine's facts of it come -- and its last word: the engine
        # decides at most once a loop turn (the advice a little later), so a snapshot shows
        # what it decided, not a race with it.
        elif not (s.connected and s.polls >= 1 and s.controls.actions
                  and view.engine.control._sent.get(s.name, s.convergence) == s.convergence):
            return False
    return not view.engine._due_facts and not view.engine._advice_due


@contextlib.asynccontextmanager
async def app_for(monitors: Sequence[str] | Recorded, *, size: tuple[int, int] = (80, 24),
                  policy: PolicyInfo | None = None, read_only: bool = False, interval: float | None = None,
                  term: str = "xterm-256color", notifications: bool = False,
                  message_hook: Callable[[Any], None] | None = None, wait: bool = True) -> AsyncIterator[View]:
    """The dashboard as a view of an engine, as ``migtui MONITOR...`` runs it, headless.

    ``monitors``: MONITOR arguments (real QEMU), watched with ``policy`` and ``read_only`` as
    the command line asks for them; or ``replay.recorded(...)``: recorded QEMUs served on
    sockets (in a directory of their own, which is the working directory meanwhile, so the
    screen shows ``unix:src.qmp``), at a fixed clock. ``wait``: yield once every monitor
    is connected and its first poll shown (else at once: a monitor that is not there)."""
    recorded = monitors if isinstance(monitors, Recorded) else None
    clock: Callable[[], float] = recorded.clock if recorded is not None else time.time
    directory = short_runtime_dir()
    engine = Engine(persist=True, clock=clock)
    server = EngineServer(engine, runtime(directory).ensure())
    sent = Sent()
    here = os.getcwd()
    if recorded is not None:
        os.chdir(directory)
        for qemu in recorded.qemus.values():
            await qemu.serve()
    await server.start()
    ready: asyncio.Future[View] = asyncio.get_running_loop().create_future()
    leave = asyncio.Event()

    async def setup(client: EngineClient) -> list[str]:
        if recorded is not None:  # the engine watches them, as for `migtui attach`
            names = engine.watch(parse_addresses([f"{n}={q.path}" for n, q in recorded.qemus.items()]),
                                 policy_from(policy or PolicyInfo()), read_only=read_only, interval=interval or 1.0)
            for name, qemu in recorded.qemus.items():
                engine.watched[name].session.replay(qemu.history())  # what the engine saw before now
        else:
            assert not isinstance(monitors, Recorded)
            names = await client.watch(parse_addresses(list(monitors)), policy or PolicyInfo(), read_only=read_only,
                                       interval=interval or 0.25)
        for name in names:
            sent.watch(engine.watched[name].session)
        return names

    async def run(app: MigtuiApp) -> None:
        async with app.run_test(size=size, notifications=notifications, message_hook=message_hook) as pilot:
            client = app.engine_client
            assert isinstance(client, EngineClient)
            view = View(app, pilot, engine, client, [s for s in app.sessions.values()
                                                     if isinstance(s, RemoteSession)], sent, recorded)
            notify = app.notify

            def spy(message: str, **kwargs: Any) -> None:
                view.toasts.append(message)
                notify(message, **kwargs)

            app.notify = spy  # type: ignore[method-assign]
            if wait:
                await until(lambda: _settled(view), 60, "every monitor connected and polled, in the view")
                await pilot.pause()
            ready.set_result(view)
            while app.is_running and not leave.is_set():
                await asyncio.sleep(0.02)

    main = asyncio.create_task(view_main(str(directory), setup, read_only=read_only, start=False, run=run,
                                         clock=clock, tz=UTC, term=term))
    try:
        first: list[asyncio.Future[Any]] = [ready, main]
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            main.result()  # its exception, if any
            raise AssertionError(f"the view ended before it showed anything (exit status {main.result()})")
        view = ready.result()
        # The app runs in view_main's task; the test reads and renders it from its own.
        token = active_app.set(view.app)
        try:
            yield view
        finally:
            active_app.reset(token)
            leave.set()
            view.code = await main
    finally:
        if not main.done():
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
        await engine.disarm_own()  # as the engine does on its way out
        await server.close()
        await engine.stop()
        if recorded is not None:
            for qemu in recorded.qemus.values():
                await qemu.stop()
            os.chdir(here)
        shutil.rmtree(directory, ignore_errors=True)
