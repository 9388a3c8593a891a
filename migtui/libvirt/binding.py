"""libvirt-python, optional: imported only when a ``-c URI`` asks for it."""

from __future__ import annotations

import importlib
import re
from types import ModuleType

from ..errors import MigtuiError

INSTALL = ("libvirt-python is not installed: pip install 'migtui[libvirt]' (it builds against libvirt's headers:"
           " apt-get install libvirt-dev pkg-config gcc python3-dev)")

# driver[+transport]:... as libvirt reads a URI (virsh's -c); anything else is a typo.
_URI = re.compile(r"^(?P<driver>[a-z][a-z0-9]*)(\+(?P<transport>[a-z0-9]+))?://[^\s]*$")
DRIVERS = ("qemu", "test", "lxc", "xen", "libxl", "vbox", "vmware", "esx", "bhyve", "ch", "vz", "openvz", "hyperv")
TRANSPORTS = ("unix", "ssh", "libssh", "libssh2", "tcp", "tls", "ext")


class LibvirtMissing(MigtuiError):
    pass


def load() -> tuple[ModuleType, ModuleType]:
    """(libvirt, libvirt_qemu), or LibvirtMissing with the line that says what to install."""
    try:
        return importlib.import_module("libvirt"), importlib.import_module("libvirt_qemu")
    except ImportError:
        raise LibvirtMissing(INSTALL) from None


def uri_error(uri: str) -> str | None:
    """Why ``uri`` cannot be a libvirt connection URI (a typo), or None. Pure."""
    match = _URI.match(uri.strip())
    if match is None:
        return f"-c {uri!r}: not a libvirt URI (like qemu:///system or qemu+ssh://HOST/system)"
    if match.group("driver") not in DRIVERS:
        return f"-c {uri!r}: unknown hypervisor driver {match.group('driver')!r} (qemu:///system?)"
    transport = match.group("transport")
    if transport is not None and transport not in TRANSPORTS:
        return f"-c {uri!r}: unknown transport {transport!r} (one of {', '.join(TRANSPORTS)})"
    return None
