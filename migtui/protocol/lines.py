"""One message per line: a typed message to its JSON line, and a line back to its message."""

from __future__ import annotations

import json

from .codec import from_json, to_json
from .framing import ProtocolError, encode_json
from .messages import MESSAGES, Message


def encode(message: Message) -> bytes:
    return encode_json({"op": message.OP, **to_json(message)})


def decode(line: bytes) -> Message:
    """The message on ``line``, typed and checked; ProtocolError (one line) otherwise."""
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # RecursionError: absurdly nested
        raise ProtocolError(f"not a JSON line ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise ProtocolError("a message must be a JSON object with an 'op'")
    cls = MESSAGES.get(data["op"])
    if cls is None:
        raise ProtocolError(f"unknown op {data['op']!r}")
    return from_json(cls, data, data["op"])
