"""Turn OS and qemu.qmp failures into one-line ``migtui.errors`` a person can act on.

Every message starts with the monitor's name and names its address.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import stat

from qemu.qmp import ConnectError
from qemu.qmp.message import DeserializationError
from qemu.qmp.qmp_client import GreetingError, NegotiationError

from ..address import MonitorAddress
from ..errors import (
    ConnectionRefused,
    Disconnected,
    GreetingTimeout,
    MonitorError,
    NotASocket,
    NotQMP,
    PermissionDenied,
    SocketMissing,
    Unreachable,
)

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_UNIX_PATH_MAX = 107


def _where(address: MonitorAddress) -> str:
    return f"{address.name}: {address.display}"


def check_unix_path(address: MonitorAddress) -> None:
    """Tell a missing path, a non-socket and an unreachable path apart before connecting."""
    path = address.path
    assert path is not None
    name = address.name
    size = len(os.fsencode(path))
    if size > _UNIX_PATH_MAX:
        raise MonitorError(
            name,
            f"{name}: socket path {path} is {size} bytes, longer than the {_UNIX_PATH_MAX}"
            " Linux allows: connect through a shorter symlink to it",
        )
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise SocketMissing(name, _missing(address)) from None
    except PermissionError:
        raise PermissionDenied(
            name,
            f"{name}: permission denied reaching {path}: a parent directory is closed"
            " to you; run migtui as the socket's owner",
        ) from None
    except OSError as err:
        raise from_os_error(address, err) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise NotASocket(
            name,
            f"{name}: {path} is {_file_kind(st.st_mode)}, not a socket:"
            f" give the path of QEMU's -qmp unix:PATH,server=on,wait=off socket",
        )


def _missing(address: MonitorAddress) -> str:
    path = address.path
    return (
        f"{address.name}: no such socket {path}: is QEMU running with"
        f" -qmp unix:{path},server=on,wait=off?"
    )


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a socket"


def _permission_denied(address: MonitorAddress) -> PermissionDenied:
    name = address.name
    if address.kind != "unix" or address.path is None:
        return PermissionDenied(name, f"{_where(address)}: permission denied")
    path = address.path
    try:
        st = os.stat(path)
    except OSError:
        return PermissionDenied(
            name, f"{name}: permission denied on {path}: run migtui as the socket's owner"
        )
    user = _user(st.st_uid)
    group = _group(st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    who = f"user {user} or a member of group {group}" if mode & stat.S_IWGRP else f"user {user}"
    return PermissionDenied(
        name,
        f"{name}: permission denied on {path} (owner {user}:{group}, mode {mode:04o}):"
        f" run migtui as {who}",
    )


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def from_os_error(address: MonitorAddress, err: OSError) -> MonitorError:
    """Map a failed connect(2) (or name lookup) to the error a person can act on."""
    name = address.name
    if isinstance(err, socket.gaierror):
        return Unreachable(name, f"{_where(address)}: cannot resolve host {address.host!r}: {err.strerror}")
    code = err.errno
    if code == errno.ENOENT and address.kind == "unix":
        return SocketMissing(name, _missing(address))
    if code in (errno.EACCES, errno.EPERM):
        return _permission_denied(address)
    if code == errno.ECONNREFUSED:
        if address.kind == "unix":
            return ConnectionRefused(
                name,
                f"{name}: nothing is listening on {address.path} (a stale socket):"
                " QEMU has exited, or has not started yet?",
            )
        return ConnectionRefused(
            name,
            f"{_where(address)}: connection refused, nothing is listening: is QEMU running"
            f" with -qmp tcp:{address.host}:{address.port},server=on,wait=off?",
        )
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ETIMEDOUT):
        return Unreachable(
            name, f"{_where(address)}: cannot reach it ({err.strerror}): check the host and network"
        )
    if code in (errno.ECONNRESET, errno.EPIPE):
        return connection_lost(address, err)
    return MonitorError(name, f"{_where(address)}: cannot connect: {err.strerror or err}")


def connect_timeout(address: MonitorAddress, seconds: float) -> Unreachable:
    return Unreachable(
        address.name,
        f"{_where(address)}: no answer to connect within {seconds:g} s:"
        " check the host, the port and any firewall",
    )


def greeting_timeout(address: MonitorAddress, seconds: float) -> GreetingTimeout:
    return GreetingTimeout(
        address.name,
        f"{_where(address)}: no QMP greeting within {seconds:g} s: the monitor may be held by"
        " another client (QEMU serves one client per QMP socket): close that client or give"
        " QEMU a second -qmp socket; or this is not a QMP socket",
    )


def from_session_error(address: MonitorAddress, err: BaseException) -> MonitorError:
    """Map a failure while qemu.qmp waited for the greeting or negotiated capabilities."""
    exc: BaseException = err.exc if isinstance(err, ConnectError) else err
    name = address.name
    if isinstance(exc, GreetingError):
        return NotQMP(name, f"{_where(address)}: not a QMP monitor ({_what_it_sent(exc.exc)}): {_use_qmp()}")
    if isinstance(exc, NegotiationError):
        return NotQMP(
            name, f"{_where(address)}: QMP capabilities negotiation failed ({exc.exc}): {_use_qmp()}"
        )
    if isinstance(exc, EOFError):
        return Disconnected(
            name,
            f"{_where(address)}: hung up before QMP was ready:"
            " QEMU may be exiting, or this is not a QMP socket",
        )
    if isinstance(exc, OSError):
        return from_os_error(address, exc)
    return MonitorError(name, f"{_where(address)}: cannot start a QMP session: {exc}")


def _use_qmp() -> str:
    return "point migtui at a -qmp socket (not a -monitor/HMP or serial socket)"


def _what_it_sent(exc: BaseException) -> str:
    if isinstance(exc, DeserializationError):
        raw = bytes(exc.raw).strip()
        if raw.startswith(b"QEMU") and b"monitor" in raw:
            return "it is a human monitor (HMP)"
        return f"it sent {raw[:40]!r}"
    return "its first message is not a QMP greeting"


def connection_lost(address: MonitorAddress, cause: BaseException | None) -> Disconnected:
    """The session ended without us asking: QEMU exited, restarted or dropped us."""
    why = ""
    if isinstance(cause, OSError) and cause.strerror:
        why = f" ({cause.strerror})"
    return Disconnected(
        address.name,
        f"{_where(address)}: connection lost{why}: QEMU exited or closed the monitor",
    )


def not_connected(address: MonitorAddress) -> Disconnected:
    return Disconnected(address.name, f"{_where(address)}: not connected")


def closed(address: MonitorAddress) -> Disconnected:
    return Disconnected(address.name, f"{_where(address)}: monitor closed")


def interrupted(address: MonitorAddress, command: str) -> Disconnected:
    return Disconnected(
        address.name,
        f"{_where(address)}: connection dropped while running {command!r}:"
        " QEMU may have exited; check whether the command took effect",
    )
