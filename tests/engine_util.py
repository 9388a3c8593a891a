"""A real engine process in a private runtime directory, and views attached to it, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from migtui.address import parse_addresses
from migtui.lab.lab import Lab
from migtui.model.migration import FINISHED_STATUSES
from migtui.protocol.messages import PolicyInfo
from migtui.protocol.runtime import runtime
from migtui.view.client import EngineClient
from migtui.view.remote import RemoteSession


def short_runtime_dir() -> Path:
    """A fresh private runtime directory with a short path (sun_path is 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="mtrt-", dir="/tmp"))


class EngineProcess:
    """``python -m migtui engine --foreground`` (stays until stopped) in ``directory``."""

    def __init__(self, directory: Path, *extra: str, preexec: Callable[[], None] | None = None) -> None:
        self.directory = directory
        self.extra = extra
        self.preexec = preexec  # run in the child before the engine (set its limits)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        try:
            return (self.directory / "engine.log").read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 60.0) -> EngineProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "migtui", "engine", "--foreground", "--runtime-dir", str(self.directory),
             *self.extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=self.preexec)
        deadline = time.monotonic() + timeout
        # The pid file comes last: the socket is listening and its mode set by then.
        while not (self.directory / "engine.pid").exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            if time.monotonic() > deadline:
                raise RuntimeError("engine did not start (no engine.pid)")
            time.sleep(0.01)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)

    def cleanup(self) -> None:
        self.kill(signal.SIGTERM)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def attached(directory: Path, *, read_only: bool = False, kind: str = "test") -> AsyncIterator[EngineClient]:
    client = EngineClient(runtime(directory), read_only=read_only, kind=kind)
    await client.connect(start=False)
    try:
        yield client
    finally:
        await client.close()


async def watch(client: EngineClient, monitors: list[str], policy: PolicyInfo | None = None,
                interval: float = 0.25) -> list[RemoteSession]:
    names = await client.watch(parse_addresses(monitors), policy or PolicyInfo(), read_only=False, interval=interval)
    await client.subscribe()
    return [client.sessions[n] for n in names]


def monitors(lab: Lab) -> list[str]:
    """The lab pair's MONITOR arguments, named src and dst."""
    return [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]


async def during(session: RemoteSession, pred: Callable[[], bool], what: str, *,
                 ended_fails: bool = True) -> None:
    """Until ``pred()``, with no time limit of its own; fails at once if the migration ends
    first (``ended_fails``), saying the advisor's and the policy's last word."""
    while not pred():
        status = session.state.migration_status
        if ended_fails and status in FINISHED_STATUSES:
            raise AssertionError(f"the migration ended ({status}) before {what}: "
                                 f"{session.convergence.advice.reason}; {session.converge_policy}")
        await asyncio.sleep(0.05)


def status_json(directory: Path, lab: Lab) -> dict[str, Any]:
    """``migtui status --json`` of the lab's source, as the engine in ``directory`` answers it."""
    result = subprocess.run([sys.executable, "-m", "migtui", "status", "--json", "--runtime-dir",
                             str(directory), *monitors(lab)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["monitors"][0])


def engine_pids(directory: Path) -> list[int]:
    """Engine processes of the runtime directory ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [a.decode(errors="replace") for a in argv]
        if "engine" in text and "migtui" in text and "--runtime-dir" in text:
            where = text[text.index("--runtime-dir") + 1]
            if where == str(directory):
                found.append(int(entry.name))
    return [p for p in found if p != os.getpid()]


SUITE_ENV = "MIGTUI_TEST_SUITE"  # one token per suite run, inherited by every process it starts
_LEFT_BEHIND = ("qemu-system-x86_64", "qemu-img", "qemu-io", "tmux", "libvirtd", "virtqemud", "virtlogd")


def suite_leftovers(token: str) -> list[tuple[int, str]]:
    """Processes this suite run started (they carry its token in their environment, through
    any number of detaching forks) that are still running: migtui engines and views, QEMUs,
    tmux servers, libvirt daemons. Zombies (exited, not reaped) do not count."""
    mark = f"{SUITE_ENV}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mark not in env or not argv or not argv[0]:
            continue
        text = [a.decode(errors="replace") for a in argv if a]
        ours = any(text[i:i + 2] == ["-m", "migtui"] for i in range(len(text))) \
            or os.path.basename(text[0]) in _LEFT_BEHIND or os.path.basename(text[0]) == "migtui"
        if ours:
            found.append((int(entry.name), " ".join(text)[:160]))
    return found
