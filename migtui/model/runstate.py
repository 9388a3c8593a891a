"""`query-status`: whether the guest's vCPUs run, and QEMU's RunState name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from migtui.model.coerce import as_mapping, opt_bool, opt_str


@dataclass(frozen=True)
class RunState:
    status: str = "unknown"
    running: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_qmp(cls, reply: Any) -> RunState:
        d = as_mapping(reply)
        status = opt_str(d.get("status")) or "unknown"
        running = opt_bool(d.get("running"))
        if running is None:
            running = status == "running"
        return cls(status=status, running=running, raw=dict(d))

    @property
    def incoming(self) -> bool:
        """A destination still waiting for (or receiving) its migration."""
        return self.status == "inmigrate"
