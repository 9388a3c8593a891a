"""What a start of a migration may set, offered per destination: pure values.

Decided by ``workflow/start.py`` from both QEMUs' capabilities, parameters, schema and
disks; sent to views as they are (``protocol/messages.py`` ``StartOffer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CAPABILITY = "capability"
PARAMETER = "parameter"


@dataclass(frozen=True)
class StartOption:
    """A capability (on/off) or a parameter (a typed value) the operator may set."""

    name: str  # QEMU's name: "pause-before-switchover", "max-bandwidth"
    kind: str  # CAPABILITY or PARAMETER
    does: str  # one line: what it does, and on which QEMU
    default: str = ""  # capability: "on" or "off"; parameter: its value now, as the operator would type it
    both: bool = False  # set on both QEMUs


@dataclass(frozen=True)
class StartDisk:
    """A source disk and where it would be mirrored to."""

    node: str  # the source's node (mirrored from)
    device: str  # the guest device it backs
    size: int | None = None  # bytes
    target: str = ""  # the destination's node of the same device ("" when it has none)
    why: str = ""  # why it cannot be mirrored ("" when it can)


@dataclass(frozen=True)
class StartTarget:
    """One destination a start may go to: a monitored QEMU waiting with ``-incoming defer``
    (``name``), a URI the operator types (``name`` ""), or for a libvirt domain another
    connected libvirt host (``via`` "libvirt", ``name`` the host's label)."""

    name: str
    address: str = ""  # what migtui would pick (the operator may type another); "" when it must be typed
    channels: bool = False  # migrate (and migrate-incoming) get a structured address, not a uri (9.0+)
    capabilities: list[StartOption] = field(default_factory=list)
    parameters: list[StartOption] = field(default_factory=list)
    disks: list[StartDisk] = field(default_factory=list)
    note: str = ""  # one line about this destination (why some options are not offered)
    via: str = ""  # "libvirt": libvirt migrates it (migrateToURI3) to the host ``name``
