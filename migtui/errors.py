"""Typed errors. ``str(error)`` is always one line a person can act on."""

from __future__ import annotations


class MigtuiError(Exception):
    """Base class: the message is a single actionable line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class AddressError(MigtuiError):
    """A MONITOR argument that cannot be parsed."""


class LabError(MigtuiError):
    """The lab could not start or drive its QEMU pair."""


class LabUsageError(LabError):
    """A lab flag (or $MIGTUI_LAB_ACCEL) that cannot work: a usage error, exit 2 like argparse's."""


class MonitorError(MigtuiError):
    """Something went wrong talking to one monitor."""

    def __init__(self, monitor: str, message: str) -> None:
        self.monitor = monitor
        super().__init__(message)


class SocketMissing(MonitorError):
    pass


class NotASocket(MonitorError):
    pass


class PermissionDenied(MonitorError):
    pass


class ConnectionRefused(MonitorError):
    pass


class GreetingTimeout(MonitorError):
    pass


class NotQMP(MonitorError):
    pass


BY_LIBVIRT = "libvirt"  # CommandFailed's error class when libvirt, not QEMU, said no


class CommandFailed(MonitorError):
    """QEMU answered a command with an error (or libvirt did: ``error_class`` "libvirt")."""

    def __init__(self, monitor: str, command: str, error_class: str, desc: str) -> None:
        self.command = command
        self.error_class = error_class
        self.desc = desc
        who = "libvirt refused it" if error_class == BY_LIBVIRT else f"QEMU refused it ({error_class})"
        super().__init__(monitor, f"{command}: {who}: {desc}")


class CommandTimeout(MonitorError):
    pass


class Disconnected(MonitorError):
    pass


class ReadOnlyRefused(MonitorError):
    """--read-only is on and the command would change QEMU's state."""


class NotSupported(MonitorError):
    """This QEMU lacks a command or capability."""


class Unreachable(MonitorError):
    """A TCP monitor whose host cannot be resolved or reached in time."""


class DomainGone(MonitorError):
    """A libvirt domain no longer runs on its host (shut off, migrated away)."""


def monitor_error(kind: object, monitor: str, message: str) -> MonitorError:
    """A connection error named by its class (``kind``, as the engine sends it to views):
    that class when it is a plain connection error, else a MonitorError."""
    plain = {cls.__name__: cls for cls in (SocketMissing, NotASocket, PermissionDenied, ConnectionRefused,
                                           GreetingTimeout, NotQMP, CommandTimeout, Disconnected, Unreachable,
                                           DomainGone)}
    return plain.get(str(kind), MonitorError)(monitor, message)
