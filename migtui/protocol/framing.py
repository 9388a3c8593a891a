"""The engine <-> view framing: JSON objects, one per line, on a local UNIX socket.

Documented in docs/protocol.md (keep the two in step). No textual, no asyncio here:
the version, the limits, the error; the messages are ``messages.py``, a message to a line
and back ``lines.py``.
"""

from __future__ import annotations

import json
from typing import Any

VERSION = 2
# A line longer than this is a broken or hostile peer (a journal batch stays far below).
MAX_LINE = 4 * 1024 * 1024
# A JSON value as QEMU or `migtui status --json` wrote it: carried, never interpreted.
Json = Any


class ProtocolError(Exception):
    """A peer sent something that is not this protocol: one line, then the link closes."""


def encode_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False, default=str).encode() + b"\n"


def version_error(theirs: Any) -> str:
    return (f"migtui engine speaks protocol {VERSION}, this view {theirs}: the engine and this migtui come"
            " from different versions; stop the engine (`migtui engine stop`) and start migtui again")
