"""Connection state of one monitor, as shown on screen.

``Monitor.run()`` never gives up: while a monitor is not connected migtui keeps trying,
so no label says "lost" -- "retrying" after a connection dropped, "waiting for the
socket" while nothing listens there yet (QEMU not started, or exited), "retrying: why"
when attempts keep failing for another reason.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import ConnectionRefused, DomainGone, MonitorError, SocketMissing
from ..format import format_duration


class ConnState(enum.Enum):
    CONNECTING = "connecting"  # before the first attempt has finished
    CONNECTED = "connected"
    RETRYING = "retrying"  # the connection dropped; trying to get it back
    LOST = "lost"  # never connected, or retries keep failing (still retrying: shown as such)
    CLOSED = "closed"  # close() was called; nothing more will happen


@dataclass(frozen=True)
class ConnectionStatus:
    state: ConnState
    attempt: int = 0  # failed attempts in a row
    error: MonitorError | None = None  # the last failure, if any
    retry_s: float | None = None  # how long until the next attempt (while not connected)

    def word(self) -> str:
        """The state in a word or two, for a badge: "connected", "retrying 3", "waiting"."""
        if self.state is ConnState.RETRYING:
            return f"retrying {self.attempt}"
        if self.state is ConnState.LOST:
            if isinstance(self.error, DomainGone):
                return "gone"
            return "waiting" if nothing_listening(self.error) else "retrying"
        return str(self.state.value)  # mypy types a narrowed enum's value as Any

    def label(self) -> str:
        """Short text for a status bar: "connected", "retrying 3 (every 2.0 s)", "waiting for the
        socket (every 100 ms): <why>"."""
        every = f" (every {format_duration(self.retry_s)})" if self.retry_s is not None else ""
        if self.state is ConnState.LOST and isinstance(self.error, DomainGone):
            return f"gone: {_without_monitor_prefix(self.error)}"
        if self.state is ConnState.LOST and self.error is not None:
            kind = "waiting for the socket" if nothing_listening(self.error) else "retrying"
            return f"{kind}{every}: {_without_monitor_prefix(self.error)}"
        if self.state is ConnState.RETRYING:
            return self.word() + every
        return self.word()


def nothing_listening(error: MonitorError | None) -> bool:
    # No socket there, or nobody accepting on it: QEMU not started yet (or exited).
    return isinstance(error, (SocketMissing, ConnectionRefused))


def _without_monitor_prefix(error: MonitorError) -> str:
    # Errors name their monitor ("src: ..."); next to the monitor's own panel that is noise.
    text = str(error)
    prefix = f"{error.monitor}: "
    return text[len(prefix):] if text.startswith(prefix) else text
