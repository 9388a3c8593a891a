"""Connection state of one monitor, as shown on screen."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import MonitorError


class ConnState(enum.Enum):
    CONNECTING = "connecting"  # before the first attempt has finished
    CONNECTED = "connected"
    RETRYING = "retrying"  # the connection dropped; trying to get it back
    LOST = "lost"  # never connected, or retries keep failing (still retrying)
    CLOSED = "closed"  # close() was called; nothing more will happen


@dataclass(frozen=True)
class ConnectionStatus:
    state: ConnState
    attempt: int = 0  # failed attempts in a row
    error: MonitorError | None = None  # the last failure, if any

    def label(self) -> str:
        """Short text for a status bar: "connected", "retrying 3", "lost: <why>"."""
        if self.state is ConnState.RETRYING:
            return f"retrying {self.attempt}"
        if self.state is ConnState.LOST and self.error is not None:
            return f"lost: {_without_monitor_prefix(self.error)}"
        return self.state.value


def _without_monitor_prefix(error: MonitorError) -> str:
    # Errors name their monitor ("src: ..."); next to the monitor's own panel that is noise.
    text = str(error)
    prefix = f"{error.monitor}: "
    return text[len(prefix):] if text.startswith(prefix) else text
