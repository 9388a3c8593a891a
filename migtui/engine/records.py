"""What the engine must bound, kept on disk so that it outlives the engine process.

Two kinds of record, one file each in the runtime directory (0700), written whole and
fsynced (file and directory), read again by the next engine (``durable.py``, ``guard.py``):

- ``armed-TOKEN.json`` (:class:`ArmedRecord`), one per source the engine armed: the
  monitor's address, the capabilities migtui switched on, the operator's policy
  (--max-pause, --on-max-pause, --auto-resume), and the pause in progress with its start
  as QEMU stamped it. Written before the capability is set, removed once the engine has
  set it back. The ``TOKEN`` is also the name of the marker kept in that QEMU
  (``workflow/marker.py``): the record says what migtui armed, the marker which QEMU
  process it was. The file's mtime is a heartbeat: the engine touches it whenever it sees
  that source *not* paused, so a pause nobody saw begin began after it.
- ``guard-TOKEN.json`` (:class:`GuardRecord`), one per pause the engine bounds on a source
  it did *not* arm (the operator's explicit --max-pause): the address, the policy with
  the flags the operator gave, and the pause's start. Written once that pause began,
  removed when it ends. No capabilities, no marker.

Each file says its ``version`` (and a guard record its ``kind``): one migtui cannot read
is logged and left as it is. Pure file I/O, no asyncio.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..address import MonitorAddress
from ..whole_file import write_whole
from ..workflow.policy import Policy

log = logging.getLogger("migtui.engine.records")
R = TypeVar("R")

RECORD_VERSION = 1  # of armed-TOKEN.json (unchanged since the first)
PREFIX = "armed-"
GUARD_VERSION = 1  # of guard-TOKEN.json
GUARD_KIND = "guard"
GUARD_PREFIX = "guard-"
SUFFIX = ".json"


@dataclass
class ArmedRecord:
    token: str  # also the QEMU marker's name
    address: MonitorAddress
    name: str  # the monitor's name in the engine that armed it
    capabilities: tuple[str, ...] = ()  # what migtui switched on
    policy: Policy = field(default_factory=Policy)
    interval: float = 1.0
    armed_at: float = 0.0
    engine_pid: int = 0  # the engine that armed it (for the log and the views)
    pause_since: float | None = None  # the pause in progress: when it began (QEMU's stamp)
    pause_exact: bool = False  # pause_since is QEMU's own stamp, not a bound

    @classmethod
    def new(cls, address: MonitorAddress, name: str, policy: Policy, interval: float) -> ArmedRecord:
        return cls(secrets.token_hex(8), address, name, (), policy, interval, time.time(), os.getpid())

    def to_json(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "token": self.token, "address": asdict(self.address), "name": self.name,
                "capabilities": list(self.capabilities), "policy": self.policy.to_json(),
                "interval": self.interval, "armed_at": self.armed_at, "engine_pid": self.engine_pid,
                "pause": None if self.pause_since is None else {"since": self.pause_since,
                                                                 "exact": self.pause_exact}}

    @classmethod
    def from_json(cls, data: Any) -> ArmedRecord:
        """Raises ValueError (or KeyError/TypeError) for a file that is not a record."""
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise ValueError("not a migtui armed record of this version")
        token = _token(data)
        address = MonitorAddress(**data["address"])
        pause = data.get("pause")
        since = pause.get("since") if isinstance(pause, dict) else None
        return cls(token, address, str(data.get("name") or address.name),
                   tuple(str(c) for c in data.get("capabilities") or ()), Policy.from_json(data.get("policy")),
                   float(data.get("interval") or 1.0), float(data.get("armed_at") or 0.0),
                   int(data.get("engine_pid") or 0), float(since) if isinstance(since, (int, float)) else None,
                   bool(pause.get("exact")) if isinstance(pause, dict) else False)


@dataclass
class GuardRecord:
    """A pause before switchover on a source migtui did not arm, bounded by the deadline
    the operator gave explicitly for it (``guard.py``)."""

    token: str  # names the file only
    address: MonitorAddress
    name: str  # the monitor's name in the engine that wrote it
    policy: Policy  # with ``explicit``: the next engine applies the same rules
    interval: float
    pause_since: float  # when the pause began (QEMU's stamp, as the engine's PauseClock has it)
    pause_exact: bool  # pause_since is QEMU's own stamp, not the engine's first sight of the pause
    written_at: float = 0.0
    engine_pid: int = 0  # the engine that began guarding it (for the log and the views)

    @classmethod
    def new(cls, address: MonitorAddress, name: str, policy: Policy, interval: float, since: float,
            exact: bool) -> GuardRecord:
        return cls(secrets.token_hex(8), address, name, policy, interval, since, exact, time.time(), os.getpid())

    def to_json(self) -> dict[str, Any]:
        return {"version": GUARD_VERSION, "kind": GUARD_KIND, "token": self.token, "address": asdict(self.address),
                "name": self.name, "policy": self.policy.to_json(), "interval": self.interval,
                "pause": {"since": self.pause_since, "exact": self.pause_exact}, "written_at": self.written_at,
                "engine_pid": self.engine_pid}

    @classmethod
    def from_json(cls, data: Any) -> GuardRecord:
        """Raises ValueError (or KeyError/TypeError) for a file that is not a guard record."""
        if not isinstance(data, dict) or data.get("kind") != GUARD_KIND or data.get("version") != GUARD_VERSION:
            raise ValueError("not a migtui guard record of this version")
        token = _token(data)
        address = MonitorAddress(**data["address"])
        pause = data["pause"]
        return cls(token, address, str(data.get("name") or address.name), Policy.from_json(data.get("policy")),
                   float(data.get("interval") or 1.0), float(pause["since"]), bool(pause.get("exact")),
                   float(data.get("written_at") or 0.0), int(data.get("engine_pid") or 0))


def _token(data: dict[str, Any]) -> str:
    token = str(data["token"])
    if not token.isalnum():
        raise ValueError(f"bad token {token!r}")
    return token


class RecordStore:
    """The records of one runtime directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, token: str, prefix: str = PREFIX) -> Path:
        return self.directory / f"{prefix}{token}{SUFFIX}"

    def save(self, record: ArmedRecord | GuardRecord) -> None:
        """Atomically, durably: a temporary file, fsynced, renamed over the record, and the
        directory fsynced (the rename itself survives a crash)."""
        path = self.path(record.token, GUARD_PREFIX if isinstance(record, GuardRecord) else PREFIX)
        write_whole(path, json.dumps(record.to_json(), indent=1).encode(), sync=True)
        self._sync_directory()

    def remove(self, token: str, prefix: str = PREFIX) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(token, prefix).unlink()
            self._sync_directory()

    def heartbeat(self, token: str) -> None:
        """The engine saw that source not paused just now (the file's mtime says when)."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path(token))

    def seen_unpaused(self, token: str) -> float | None:
        try:
            return self.path(token).stat().st_mtime
        except FileNotFoundError:
            return None

    def load_all(self) -> list[ArmedRecord]:
        """Every armed record in the directory; one that cannot be read is logged and left there."""
        return self._load(PREFIX, ArmedRecord.from_json)

    def load_guards(self) -> list[GuardRecord]:
        """Every guard record in the directory, likewise."""
        return self._load(GUARD_PREFIX, GuardRecord.from_json)

    def _load(self, prefix: str, parse: Callable[[Any], R]) -> list[R]:
        records = []
        for path in sorted(self.directory.glob(f"{prefix}*{SUFFIX}")):
            try:
                records.append(parse(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.warning("%s: not a record migtui can read (%s): left as it is", path, err)
        return records

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
