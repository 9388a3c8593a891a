"""QMP events as plain data, stamped with QEMU's own clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QmpEvent:
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    # QEMU's wall-clock time of the event, seconds since the epoch (None if absent).
    timestamp: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_qmp(cls, msg: Mapping[str, Any]) -> QmpEvent:
        ts = msg.get("timestamp")
        stamp: float | None = None
        if isinstance(ts, Mapping):
            try:
                stamp = int(ts.get("seconds", 0)) + int(ts.get("microseconds", 0)) / 1e6
            except (TypeError, ValueError):
                stamp = None
            # QEMU sends -1/-1 when it could not read the clock.
            if stamp is not None and stamp < 0:
                stamp = None
        data = msg.get("data")
        return cls(
            name=str(msg.get("event", "?")),
            data=dict(data) if isinstance(data, Mapping) else {},
            timestamp=stamp,
            raw=dict(msg),
        )
