"""The engine <-> view protocol: JSON objects, one per line, on a local UNIX socket.

Documented in docs/protocol.md (keep the two in step). No textual, no asyncio here:
framing and the message vocabulary only, shared by the engine and every view.
"""

from __future__ import annotations

import json
from typing import Any

VERSION = 1
# A line longer than this is a broken or hostile peer (a journal batch stays far below).
MAX_LINE = 4 * 1024 * 1024

# view -> engine
HELLO = "hello"  # {version, view: {kind, tty, pid}, read_only}
WATCH = "watch"  # {id, monitors: [{name, address}], policy: {...}}
SUBSCRIBE = "subscribe"  # {id}: the state and recent history of every monitor, then live updates
REQUEST = "request"  # {id, action, monitor}
STATUS = "status"  # {id, addresses: [...]}: `migtui status` answered from the engine's sessions
STOP = "stop"  # {id}: `migtui engine stop`

# engine -> view
WELCOME = "welcome"  # {version, pid, runtime_dir}
ERROR = "error"  # {error}: then the engine closes the connection
REPLY = "reply"  # {id, ok, error?, ...}
MONITOR = "monitor"  # {name, address, read_only, policy, session: {...}}: a monitor the view should show
FEED = "feed"  # {name, entries: [{t, kind: event|reply, ...}]}: QMP input, in order, to replay
SESSION = "session"  # {name, status, attempt, error, poll_error, qemu, commands?, measuring}
SWITCHOVER = "switchover"  # {name, state: {...}}: the engine's switchover of that source's pause
PAUSE = "pause"  # {name, ...}: policy, owner, deadline, notes of a source's pause
NOTICE = "notice"  # {level, text}: one line for every view

# Actions a view may request; each changes a VM (refused for read-only views).
ACTIONS = frozenset({"resume", "abort", "arm", "disarm", "measure"})


class ProtocolError(Exception):
    """A peer sent something that is not this protocol: one line, then the link closes."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False, default=str).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError) as err:
        raise ProtocolError(f"not a JSON line ({err})") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("a message must be a JSON object with an 'op'")
    return message


def version_error(theirs: Any) -> str:
    return (f"migtui engine speaks protocol {VERSION}, this view {theirs}: the engine and this migtui come"
            " from different versions; stop the engine (`migtui engine stop`) and start migtui again")
