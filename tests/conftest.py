"""Shared fixtures, and the QEMU builds the real-QEMU tests run on.

Every test marked ``qemu`` runs once per build given with ``--qemu=PATH`` (repeatable;
default: the qemu-system-x86_64 on PATH), its id ending in the version
(``[qemu-10.0.2]``). The build is handed to the code under test as ``$MIGTUI_QEMU``,
which the lab and ``tests/qemu_util.py`` read. A test that is not marked gets a
``$MIGTUI_QEMU`` that cannot run, so one that starts QEMU without the marker fails
instead of quietly testing one version only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from engine_util import SUITE_ENV, EngineProcess, engine_pids, short_runtime_dir, suite_leftovers
from tmux_util import Tmux

from migtui.errors import LabError
from migtui.lab.lab import Lab
from migtui.lab.qemu import QEMU_ENV, find_qemu_img
from migtui.protocol.runtime import RUNTIME_ENV

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


QEMU_BUILDS = pytest.StashKey[list[QemuBuild]]()  # --qemu's builds, found once per run


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
    builds = config.stash.get(QEMU_BUILDS, None)
    if builds is None:
        paths = config.getoption("--qemu") or [shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"]
        builds = [QemuBuild(path, _version(path)) for path in paths]
        versions = [b.version for b in builds]
        if len(set(versions)) != len(versions):
            raise pytest.UsageError(f"--qemu names the same version twice: {versions}")
        config.stash[QEMU_BUILDS] = builds
    return builds


def pytest_report_header(config: pytest.Config) -> str:
    return "real-QEMU tests run on: " + ", ".join(f"QEMU {b.version} ({b.path})" for b in qemu_builds(config))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("qemu") is not None:
        builds = qemu_builds(metafunc.config)
        metafunc.parametrize("qemu_build", builds, ids=[b.id for b in builds], indirect=True)


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
        _outcomes[(found.group(1), report.outcome)] += 1


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


@pytest.fixture
def terminals() -> Iterator[list[Tmux]]:
    """The tmux terminals a test opened (tests/test_views.py's ``open_terminal``), closed at teardown."""
    opened: list[Tmux] = []
    yield opened
    for term in opened:
        term.close()


@pytest.fixture
async def lab(qemu_build: QemuBuild | None) -> AsyncIterator[Lab]:
    """A started real QEMU pair: 64 MiB guests dirtying 4 MiB as fast as they can
    (a plain migration completes in well under a second), with a 16 MiB data
    disk. Both QEMUs stop and the lab's private directory goes at teardown."""
    async with Lab(memory_mib=64, dirty_mib=4, disk_mib=16) as started:
        yield started
