"""A mark migtui leaves in a QEMU it arms, so that an engine can tell that QEMU again.

The engine's record (``engine/records.py``) says what it armed at which socket; a
socket is not a QEMU: the armed one may die and another start at the same path. So
arming also adds a small ``secret`` object, ``migtui-armed-TOKEN``, to the QEMU itself
(``object-add``: no device, no effect on the guest or the migration stream; its
``data`` says who armed it, for a person reading ``qom-get``). It lives exactly as long
as that QEMU process: it survives the engine (a crash, an OOM kill) and a reconnection
of the monitor, and no other QEMU -- a new one at the same socket, the destination --
ever has it. Disarming removes it.

Looking for it is a query (``qom-list /objects``), allowed under --read-only.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .session import MonitorSession

PREFIX = "migtui-armed-"


def marker_id(token: str) -> str:
    return f"{PREFIX}{token}"


def has_marker(objects: Any, token: str) -> bool:
    """Whether ``qom-list /objects`` lists this token's marker (pure, for tests)."""
    want = marker_id(token)
    return isinstance(objects, list) and any(isinstance(o, dict) and o.get("name") == want for o in objects)


async def marked(session: MonitorSession, token: str, generation: int) -> bool:
    """Does the QEMU behind this connection carry the marker? Raises MigtuiError."""
    return has_marker(await session.execute("qom-list", {"path": "/objects"}, generation=generation), token)


async def add_marker(session: MonitorSession, token: str, about: dict[str, Any]) -> None:
    data = base64.b64encode(json.dumps({"by": "migtui", **about}, separators=(",", ":")).encode()).decode()
    await session.execute("object-add", {"qom-type": "secret", "id": marker_id(token), "data": data,
                                         "format": "base64"})


async def remove_marker(session: MonitorSession, token: str, generation: int | None = None) -> None:
    await session.execute("object-del", {"id": marker_id(token)}, generation=generation)
