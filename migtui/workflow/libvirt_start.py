"""Starting a migration of a libvirt domain: libvirt migrates it (``migrateToURI3``, live, peer
to peer, the destination's definition kept) to another connected libvirt host. What may be
set (the offer), whether the operator's choices can be sent, the plan and the summary the
operator confirms. Pure: the flags are named here and turned into libvirt's numbers by the
engine (``engine/libvirt_start.py``), which holds the connections.

migtui sets no QEMU capability on a libvirt domain (libvirt owns its monitor): each choice is
one of libvirt's migration flags or typed parameters. The pause before switchover is
libvirt's business (it uses one for storage migrations and finishes it itself). Disks ticked
are copied (``VIR_MIGRATE_NON_SHARED_DISK`` with ``migrate_disks``); none ticked is a
migration on shared storage (libvirt refuses it, saying so, when the storage is not shared).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..address import LIBVIRT
from ..model.startoffer import CAPABILITY, PARAMETER, StartDisk, StartOption, StartTarget
from ..model.units import BadValue, bandwidth_text, parse_bandwidth
from .availability import Availability
from .session import MonitorSession
from .start import Choices, start_refused

MiB = 1 << 20
POSTCOPY = "postcopy-ram"
AUTO_CONVERGE = "auto-converge"
MAX_BANDWIDTH = "max-bandwidth"
# Always: live, peer to peer (the source's libvirtd drives it), the definition kept on the destination.
ALWAYS = ("LIVE", "PEER2PEER", "PERSIST_DEST")
# The operator's choices as libvirt's flags (VIR_MIGRATE_*).
FLAGS = {POSTCOPY: "POSTCOPY", AUTO_CONVERGE: "AUTO_CONVERGE"}
COPY_STORAGE = "NON_SHARED_DISK"
CAPABILITIES = (
    StartOption(POSTCOPY, CAPABILITY, "allow switching to postcopy during the migration (VIR_MIGRATE_POSTCOPY:"
                                      " the 6 remedy, migrateStartPostCopy)", "off", True),
    StartOption(AUTO_CONVERGE, CAPABILITY, "throttle the guest's CPUs while RAM does not converge"
                                           " (VIR_MIGRATE_AUTO_CONVERGE)", "off"),
)
NOTE = ("libvirt migrates it (migrateToURI3: live, peer to peer, persistent there) and drives its pause itself;"
        " address: the migration URI (tcp://HOST[:PORT]; empty: libvirt picks); untick the disks on shared storage")


def can_start(session: MonitorSession, hosts: Sequence[str]) -> Availability:
    """``m`` on a libvirt domain: start a migration of it now, and if not why. ``hosts``: the
    other libvirt hosts connected to the engine (the destinations)."""
    refused = start_refused(session, incoming="the destination of an incoming migration", migrated="migrated already")
    if refused is not None:
        return refused
    name = session.name
    if not hosts:
        return Availability(None, f"{name}: no other libvirt host connected to migrate to: add its -c URI")
    return Availability(True)


def offer(host: str, disks: Sequence[tuple[str, int | None]], bandwidth: int | None) -> StartTarget:
    """A start towards the libvirt host ``host``. ``disks``: the domain's disk targets (vda...)
    and their sizes, each copied unless unticked; ``bandwidth``: libvirt's limit now (bytes/s,
    0: none)."""
    default = bandwidth_text(bandwidth) if bandwidth else ""
    parameters = [StartOption(MAX_BANDWIDTH, PARAMETER, "the most the migration sends (MiB/s;"
                              " VIR_MIGRATE_PARAM_BANDWIDTH; empty: none)", default)]
    copied = [StartDisk(disk, disk, size, disk) for disk, size in disks]
    return StartTarget(host, "", False, list(CAPABILITIES), parameters, copied, NOTE, LIBVIRT)


@dataclass(frozen=True)
class LibvirtPlan:
    source: str
    destination: str  # the libvirt host's label
    migrate_uri: str  # "": libvirt picks (the destination's host name)
    flags: tuple[str, ...]  # VIR_MIGRATE_* names
    bandwidth_mib: int | None  # MiB/s; None: libvirt's limit as it is
    disks: tuple[str, ...]  # disk targets copied (NON_SHARED_DISK); (): shared storage

    @property
    def listen_address(self) -> str:
        """Where the destination listens: the URI's host (the address the source connects to)."""
        return (urlsplit(self.migrate_uri).hostname or "") if self.migrate_uri else ""

    def params(self) -> dict[str, object]:
        """migrateToURI3's typed parameters (VIR_MIGRATE_PARAM_* are these strings)."""
        params: dict[str, object] = {}
        if self.migrate_uri:
            params["migrate_uri"] = self.migrate_uri
        if self.listen_address:
            params["listen_address"] = self.listen_address
        if self.bandwidth_mib:
            params["bandwidth"] = self.bandwidth_mib
        if self.disks:
            params["migrate_disks"] = list(self.disks)
        return params


def parse_migrate_uri(text: str) -> str:
    """``tcp://HOST[:PORT]`` as libvirt takes it ("" leaves the choice to libvirt)."""
    value = text.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("tcp", "rdma") or not parts.hostname or port == -1 or parts.path not in ("", "/"):
        raise BadValue(f"address: {value!r} is not tcp://HOST[:PORT] (the migration URI; empty: libvirt picks)")
    return value


def plan(source: str, target: StartTarget, choices: Choices) -> LibvirtPlan:
    """The plan of these choices, or BadValue: one line naming what cannot be sent."""
    if target.via != LIBVIRT or choices.destination != target.name:
        raise BadValue(f"destination: {choices.destination or 'a typed URI'} is not a libvirt host offered")
    offered = {c.name for c in target.capabilities}
    for name in choices.capabilities:
        if name not in offered:
            raise BadValue(f"{name}: not offered for a libvirt domain")
    flags = ALWAYS + tuple(FLAGS[name] for name in dict.fromkeys(choices.capabilities))
    bandwidth = None
    for name, text in choices.parameters.items():
        if name != MAX_BANDWIDTH:
            raise BadValue(f"{name}: not offered for a libvirt domain")
        if text.strip():
            value = parse_bandwidth(text, name)
            bandwidth = max(1, -(-value // MiB)) if value else None  # libvirt's unit: MiB/s
    disks = {d.node for d in target.disks}
    for disk in choices.disks:
        if disk not in disks:
            raise BadValue(f"disk {disk}: not a disk of the source")
    copied = tuple(d.node for d in target.disks if d.node in choices.disks)
    if copied:
        flags += (COPY_STORAGE,)
    return LibvirtPlan(source, target.name, parse_migrate_uri(choices.address), flags, bandwidth, copied)


def summary(plan: LibvirtPlan) -> list[str]:
    """What the start does: the lines the operator confirms."""
    lines = [f"{plan.source} → libvirt host {plan.destination}: migrateToURI3 with VIR_MIGRATE_"
             + " | ".join(plan.flags)]
    lines.append(f"migration URI {plan.migrate_uri} (the destination listens on {plan.listen_address})"
                 if plan.migrate_uri else "migration URI: libvirt picks (the destination's host name)")
    if plan.bandwidth_mib:
        lines.append(f"bandwidth {plan.bandwidth_mib} MiB/s")
    if plan.disks:
        lines.append(f"disks copied to the destination (copy-storage): {', '.join(plan.disks)}; their files must"
                     " exist there")
    else:
        lines.append("no disk copied: the storage is shared (libvirt refuses the migration otherwise)")
    lines.append("libvirt drives it to the end, including any pause before switchover; x aborts it (abortJob)")
    return lines
