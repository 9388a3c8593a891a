"""One QMP input as a session folded it into its state: what a view replays. Pure.

``kind`` "event": ``event`` is QEMU's event object; "reply": ``command`` and its
``reply`` (QMP's ``return``), and ``asked``, when a poll's query was sent (QEMU's answer
is from a moment between ``asked`` and ``t``, the time it was read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EVENT = "event"
REPLY = "reply"


@dataclass(frozen=True)
class QmpInput:
    t: float
    kind: str  # EVENT or REPLY
    event: Any = None  # QEMU's event object (JSON)
    command: str | None = None
    reply: Any = None  # the command's ``return`` (JSON)
    asked: float | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> QmpInput:
        """A recorded exchange's entry (``{"t", "kind", "event"}`` or ``{"t", "kind",
        "command", "return", "asked"?}``, as tests/fixtures/qmp keep them)."""
        asked = record.get("asked")
        return cls(float(record["t"]), str(record.get("kind")), record.get("event"),
                   record.get("command"), record.get("return"), float(asked) if asked is not None else None)
