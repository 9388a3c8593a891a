"""What the engine armed, kept on disk so that it outlives the engine process.

One file per source the engine armed, ``armed-TOKEN.json`` in the runtime directory
(0700): the monitor's address, the capabilities migtui switched on, the operator's
policy (--max-pause, --on-max-pause, --auto-resume), and the pause in progress with
its start as QEMU stamped it. It is written -- and fsynced, file and directory --
before the capability is set, and removed once the engine has set it back. An engine
that starts reads them all and takes them up again (``durable.py``).

The ``TOKEN`` is also the name of the marker kept in that QEMU (``workflow/marker.py``):
the record says what migtui armed, the marker says which QEMU process it was.

The file's mtime is a heartbeat: the engine touches it whenever it sees that source
*not* paused, so a pause nobody saw begin began after it. Pure file I/O, no asyncio.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..address import MonitorAddress
from ..whole_file import write_whole
from ..workflow.policy import Policy

log = logging.getLogger("migtui.engine.records")

RECORD_VERSION = 1
PREFIX = "armed-"
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
        token = str(data["token"])
        if not token.isalnum():
            raise ValueError(f"bad token {token!r}")
        address = MonitorAddress(**data["address"])
        pause = data.get("pause")
        since = pause.get("since") if isinstance(pause, dict) else None
        return cls(token, address, str(data.get("name") or address.name),
                   tuple(str(c) for c in data.get("capabilities") or ()), Policy.from_json(data.get("policy")),
                   float(data.get("interval") or 1.0), float(data.get("armed_at") or 0.0),
                   int(data.get("engine_pid") or 0), float(since) if isinstance(since, (int, float)) else None,
                   bool(pause.get("exact")) if isinstance(pause, dict) else False)


class RecordStore:
    """The records of one runtime directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, token: str) -> Path:
        return self.directory / f"{PREFIX}{token}{SUFFIX}"

    def save(self, record: ArmedRecord) -> None:
        """Atomically, durably: a temporary file, fsynced, renamed over the record, and the
        directory fsynced (the rename itself survives a crash)."""
        write_whole(self.path(record.token), json.dumps(record.to_json(), indent=1).encode(), sync=True)
        self._sync_directory()

    def remove(self, token: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(token).unlink()
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
        """Every record in the directory; one that cannot be read is logged and left there."""
        records = []
        for path in sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}")):
            try:
                records.append(ArmedRecord.from_json(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.warning("%s: not a record migtui can read (%s): left as it is", path, err)
        return records

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
