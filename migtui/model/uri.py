"""A migration (or NBD) address as the operator types it: ``unix:/PATH`` or ``tcp:HOST:PORT``.

Checked before anything is sent (one line naming what is wrong), then written back for QEMU
either as a ``uri`` or, where QEMU takes it (9.0 on), as a structured ``channels`` entry that
carries the address as it is, with no string for QEMU to parse again. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .units import BadValue

MAX_UNIX_PATH = 107  # sun_path is 108 bytes with its NUL
TAKES = "it takes unix:/ABSOLUTE/PATH or tcp:HOST:PORT"


@dataclass(frozen=True)
class SocketAddress:
    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def uri(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"

    def qapi(self) -> dict[str, Any]:
        """A QAPI SocketAddress (flat: ``migrate``'s channels, ``blockdev-add`` nbd's server)."""
        if self.kind == "unix":
            return {"type": "unix", "path": self.path}
        return {"type": "inet", "host": self.host, "port": str(self.port)}

    def legacy(self) -> dict[str, Any]:
        """A SocketAddressLegacy (``nbd-server-start``'s addr: type + data)."""
        flat = self.qapi()
        kind = flat.pop("type")
        return {"type": kind, "data": flat}

    def channels(self) -> list[dict[str, Any]]:
        return [{"channel-type": "main", "addr": {"transport": "socket", **self.qapi()}}]

    def beside(self) -> SocketAddress:
        """Where the destination's NBD server listens for this migration: the same host,
        the next port; or a socket beside this one."""
        if self.kind == "unix":
            return SocketAddress("unix", path=f"{self.path}.nbd")
        return SocketAddress("tcp", host=self.host, port=self.port + 1)


def parse_socket_address(text: str, what: str = "address") -> SocketAddress:
    text = (text or "").strip()
    kind, colon, rest = text.partition(":")
    if not colon or kind not in ("unix", "tcp") or not rest:
        raise BadValue(f"{what}: {text!r} is not an address: {TAKES}")
    if kind == "unix":
        if not rest.startswith("/"):
            raise BadValue(f"{what}: {rest!r} is not an absolute path: {TAKES}")
        if len(rest.encode()) > MAX_UNIX_PATH:
            raise BadValue(f"{what}: the path is {len(rest.encode())} bytes: a unix socket's takes at most"
                           f" {MAX_UNIX_PATH}")
        return SocketAddress("unix", path=rest)
    host, colon, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or any(c in host for c in ",/ ") or (":" in host and not rest.startswith("[")):
        raise BadValue(f"{what}: {text!r} is not tcp:HOST:PORT (an IPv6 host goes in brackets: tcp:[::1]:4444)")
    if not port.isdigit() or not 1 <= int(port) <= 65534:
        raise BadValue(f"{what}: port {port!r} is not a number from 1 to 65534 (the next port is the disks')")
    return SocketAddress("tcp", host=host, port=int(port))
