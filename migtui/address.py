"""Parse MONITOR arguments: ``[NAME=](PATH | unix:PATH | [tcp:]HOST:PORT | [IPv6]:PORT)``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import AddressError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
# Basenames too generic to name a VM by; the parent directory names it instead.
_GENERIC = {"qmp", "monitor", "mon", "socket", "sock", "control", "ctl", "qemu"}


# A libvirt domain: path = the connection's URI, host = the domain's name.
LIBVIRT = "libvirt"
# A libvirt connection to watch (``-c [NAME=]URI``): path = URI, host = DOMAIN patterns joined by ",".
CONNECT = "libvirt-connect"


@dataclass(frozen=True)
class MonitorAddress:
    name: str
    kind: str  # "unix", "tcp", LIBVIRT or CONNECT
    path: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def target(self) -> str | tuple[str, int]:
        """What ``QMPClient.connect`` takes."""
        if self.kind == "unix":
            assert self.path is not None
            return self.path
        assert self.host is not None and self.port is not None
        return (self.host, self.port)

    def absolute(self) -> MonitorAddress:
        """The same monitor with its socket path made absolute (for another process: the engine)."""
        if self.kind != "unix" or self.path is None or os.path.isabs(self.path):
            return self
        return MonitorAddress(self.name, self.kind, os.path.abspath(self.path), self.host, self.port)

    @property
    def display(self) -> str:
        if self.kind == LIBVIRT:
            return f"libvirt:{self.host}@{self.path}"
        if self.kind == CONNECT:
            return str(self.path)
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def _port(text: str, arg: str) -> int:
    # ASCII digits only: str.isdigit() also accepts e.g. Arabic-Indic digits.
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 0 < int(text) < 65536:
        raise AddressError(f"{arg!r}: port {text!r} is not a number from 1 to 65535")
    return int(text)


def _derive_name(kind: str, path: str | None, host: str | None, port: int | None) -> str:
    if kind == "tcp":  # as the address is written: every host alike
        return f"[{host}]:{port}" if host and ":" in host else f"{host}:{port}"
    assert path is not None
    stem = os.path.basename(path.rstrip("/"))
    stem = re.sub(r"\.(qmp|sock|socket|monitor)$", "", stem) or stem
    if stem.lower() in _GENERIC:
        parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
        stem = parent or stem
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).strip("-.") or "vm"
    return stem[:32]


def parse_address(arg: str) -> MonitorAddress:
    """Parse one MONITOR argument or raise AddressError with a one-line reason."""
    text = arg.strip()
    if not text:
        raise AddressError("empty monitor address: give a socket path or HOST:PORT")
    name: str | None = None
    # NAME= prefix, but not a path that merely contains '=' after a slash.
    m = re.match(r"^([^=/:\[\]]+)=(.*)$", text)
    if m:
        name, text = m.group(1), m.group(2)
        if not _NAME_RE.match(name):
            raise AddressError(
                f"{arg!r}: name {name!r} must be 1-32 letters, digits, '_', '.' or '-'"
            )
        if not text:
            raise AddressError(f"{arg!r}: nothing after '{name}=': give a socket path or HOST:PORT")

    kind: str
    path = host = None
    port = None
    if text.startswith("unix:"):
        kind, path = "unix", text[5:]
        if not path:
            raise AddressError(f"{arg!r}: 'unix:' needs a socket path")
    elif (
        text.startswith("tcp:")
        or re.match(r"^\[[^\]]*\](:|$)", text)
        or re.match(r"^[^/]*:[^/]*$", text)  # HOST:PORT (a bad port is an error, not a path)
    ):
        kind = "tcp"
        rest = text[4:] if text.startswith("tcp:") else text
        m6 = re.match(r"^\[([0-9A-Fa-f:.%a-zA-Z]+)\]:(.*)$", rest)
        if m6:
            host, port_text = m6.group(1), m6.group(2)
        elif rest.startswith("["):
            raise AddressError(f"{arg!r}: expected [IPv6]:PORT, like [::1]:4444")
        elif rest.count(":") == 1:
            host, port_text = rest.split(":")
        elif ":" in rest:
            raise AddressError(f"{arg!r}: write an IPv6 address in brackets, like [::1]:4444")
        else:
            raise AddressError(f"{arg!r}: a TCP monitor needs HOST:PORT, like localhost:4444")
        if not host:
            raise AddressError(f"{arg!r}: missing host before ':{port_text}'")
        port = _port(port_text, arg)
    else:
        kind, path = "unix", text
    if path is not None and "\0" in path:
        raise AddressError(f"{arg!r}: socket path contains a NUL byte")
    return MonitorAddress(name or _derive_name(kind, path, host, port), kind, path, host, port)


def parse_addresses(args: list[str]) -> list[MonitorAddress]:
    """Parse several MONITOR arguments; derived names are made unique (vm, vm-2, ...)."""
    out: list[MonitorAddress] = []
    seen: set[str] = set()
    for arg in args:
        addr = parse_address(arg)
        name, n = addr.name, 2
        while name in seen:
            name, n = f"{addr.name}-{n}", n + 1
        seen.add(name)
        out.append(MonitorAddress(name, addr.kind, addr.path, addr.host, addr.port))
    return out


_CONNECT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,31})=([a-z][a-z0-9+]*:.*)$")


def parse_connect(arg: str, domains: list[str]) -> MonitorAddress:
    """``-c [NAME=]URI`` (NAME: the HOST of its domains' ``HOST/DOMAIN``; default the URI's host)."""
    text = arg.strip()
    match = _CONNECT_NAME.match(text)
    name, uri = (match.group(1), match.group(2)) if match else ("", text)
    return MonitorAddress(name, CONNECT, uri, ",".join(domains) or None)
