"""The engine's process seen from outside: which one it is, whether it runs, is stopped or
is gone, why it did not start -- and, for ``migtui engine stop --force``, ending it.

Same machine, same user: ``/proc`` tells. A pid from ``engine.pid`` is trusted only if
that process belongs to this user, is a migtui engine, and holds this runtime
directory's lock: a stale ``engine.pid`` naming a recycled pid is never signalled.
No textual, no asyncio beyond sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..protocol.runtime import Runtime

FULL_BYTES = 64 * 1024  # a runtime directory with less room than this is full for the engine
TERM_GRACE_S = 5.0  # after SIGTERM (and SIGCONT), how long --force waits before SIGKILL


@dataclass(frozen=True)
class EngineProcess:
    pid: int
    state: str  # /proc's: R running, S sleeping, D disk, T stopped, t traced, Z zombie

    @property
    def stopped(self) -> bool:
        return self.state in ("T", "t")

    @property
    def gone(self) -> bool:
        return self.state in ("Z", "X")


def read_pid(rt: Runtime) -> int | None:
    try:
        text = rt.pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _holds(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    want = os.path.realpath(path)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == want:
                return True
    return False


def find(rt: Runtime, pid: int | None = None) -> EngineProcess | None:
    """The engine process of ``rt`` (``pid``, else the one in engine.pid), if that is one:
    this user's, a migtui engine, holding the directory's lock. None otherwise."""
    pid = read_pid(rt) if pid is None else pid
    if pid is None or pid == os.getpid():
        return None
    state = _state(pid)
    if state is None:
        return None
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return None
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if state in ("Z", "X"):
        return EngineProcess(pid, state)  # exited: nothing to check, nothing to signal
    words = [os.path.basename(a) for a in argv]
    if b"engine" not in words or not any(w == b"migtui" or w.startswith(b"migtui") for w in words):
        return None
    if not _holds(pid, rt.lock):
        return None
    return EngineProcess(pid, state)


def why_silent(rt: Runtime, pid: int | None) -> str:
    """Why an engine may not answer, and what to do: one clause."""
    proc = find(rt, pid)
    if proc is None:
        return f"its process{f' (pid {pid})' if pid else ''} is not to be found"
    if proc.gone:
        return f"its process (pid {proc.pid}) has exited"
    if proc.stopped:
        return (f"its process (pid {proc.pid}) is stopped (SIGSTOP, or ^Z in its terminal):"
                f" `kill -CONT {proc.pid}` lets it go on; `migtui engine stop --force` ends it")
    return f"its process (pid {proc.pid}) runs but does not answer (hung?): `migtui engine stop --force` ends it"


def lock_free(rt: Runtime) -> bool:
    """No engine holds the runtime directory's lock (checked by taking it a moment)."""
    try:
        fd = os.open(rt.lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases it
    return True


async def _within(done: Callable[[], bool], within: float) -> bool:
    """Whether ``done()`` holds within ``within`` seconds (looked at every 50 ms)."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _ended(rt: Runtime, pid: int, within: float) -> bool:
    return await _within(lambda: _state(pid) in (None, "Z", "X") or lock_free(rt), within)


async def end(rt: Runtime, proc: EngineProcess) -> str:
    """End an engine that does not answer: SIGTERM (and SIGCONT, so a stopped one gets it
    and sets back what it armed), then SIGKILL if it is still there after TERM_GRACE_S.
    Returns how it ended, in words."""
    how = "stopped (SIGTERM)"
    try:
        os.kill(proc.pid, signal.SIGTERM)
        os.kill(proc.pid, signal.SIGCONT)
        if not await _ended(rt, proc.pid, TERM_GRACE_S):
            os.kill(proc.pid, signal.SIGKILL)
            how = "killed (SIGKILL)"
            await _ended(rt, proc.pid, TERM_GRACE_S)
    except ProcessLookupError:
        pass
    # What a killed engine leaves behind. Its main thread can show as a zombie while its other
    # threads still exit and hold its files, the lock among them: wait for the lock itself.
    if await _within(lambda: lock_free(rt), TERM_GRACE_S):
        for leftover in (rt.socket, rt.pid_file):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return how


def start_failure(rt: Runtime) -> str:
    """Why an engine a view started is not there: the last line of its stderr, and whether
    the runtime directory is full (then even that line may be missing)."""
    reasons = []
    try:
        with open(rt.directory / "engine.err", "rb") as err:
            err.seek(0, os.SEEK_END)
            err.seek(max(0, err.tell() - 4096))
            tail = err.read().decode(errors="replace").strip().splitlines()
        if tail:
            reasons.append(tail[-1].strip())
    except OSError:
        pass
    try:
        st = os.statvfs(rt.directory)
        free = st.f_bavail * st.f_frsize
        if free < FULL_BYTES:
            reasons.append(f"the runtime directory {rt.directory} is full ({free} bytes free): free some space"
                           " (or choose another with --runtime-dir)")
    except OSError:
        pass
    return "; ".join(reasons) or f"see {rt.directory / 'engine.err'}"
