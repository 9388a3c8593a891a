"""Starting a migration from migtui: what may be set (offered per destination), whether the
operator's choices can be sent (validated, in one line naming what is wrong), the plan they
make and the summary the operator confirms.

A destination is a monitored QEMU waiting with ``-incoming defer`` (migtui runs
``migrate-incoming`` there with an address it picks or the operator types), or a URI the
operator types for a QEMU migtui does not watch. Only what both QEMUs have is offered (their
``query-migrate-capabilities``, parameters and schema): a capability both sides need
(postcopy-ram, multifd, switchover-ack) only for a monitored destination that lists it too.
Disks are offered for a monitored destination only, each to the destination's node of the
same guest device; mirroring needs pause-before-switchover (the mirrors are finished while
the guest is stopped, as libvirt does). The run itself is ``launch.py``; the NBD and mirror
set-up ``storage.py``. The views validate with the same functions the engine runs again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..format import format_bytes
from ..model.disks import Disk
from ..model.migration import RUNNING_STATUSES
from ..model.startoffer import CAPABILITY, PARAMETER, StartDisk, StartOption, StartTarget
from ..model.units import BadValue, bandwidth_text, downtime_text, parse_bandwidth, parse_downtime
from ..model.uri import MAX_UNIX_PATH, SocketAddress, parse_socket_address
from .availability import Availability, blocked_reason
from .session import MonitorSession

PAUSE = "pause-before-switchover"
MULTIFD = "multifd"
SWITCHOVER_ACK = "switchover-ack"
DIRTY_LIMIT = "dirty-limit"
EVENTS = "events"
RETURN_PATH = "return-path"  # switchover-ack needs it on both sides
MAX_BANDWIDTH = "max-bandwidth"
DOWNTIME = "downtime-limit"
SWITCHOVER_BANDWIDTH = "avail-switchover-bandwidth"
CHANNELS = "multifd-channels"
MAX_CHANNELS = 255


@dataclass(frozen=True)
class CapabilitySpec:
    name: str
    both: bool  # the destination must list it and have it on too
    does: str


CAPABILITIES = (
    CapabilitySpec(PAUSE, False, "the guest stops before switchover and waits for you (s, then y): on by default"),
    CapabilitySpec("auto-converge", False, "throttle the guest's CPUs while RAM does not converge"),
    CapabilitySpec("postcopy-ram", True, "allow switching to postcopy during the migration (both QEMUs)"),
    CapabilitySpec(MULTIFD, True, "send RAM over multifd-channels connections (both QEMUs)"),
    CapabilitySpec("xbzrle", False, "send only the changed bytes of re-dirtied pages (CPU and a cache)"),
    CapabilitySpec(SWITCHOVER_ACK, True, "the destination acknowledges the switchover (8.1+, both QEMUs)"),
    CapabilitySpec(DIRTY_LIMIT, False, "throttle each vCPU's dirty rate (8.1+; needs KVM's dirty ring:"
                                       " -accel kvm,dirty-ring-size=N, else QEMU refuses it)"),
)
PARAMETERS: dict[str, str] = {
    MAX_BANDWIDTH: "the most the migration sends (MiB/s, Gbit/s)",
    DOWNTIME: "the longest pause QEMU may plan for the switchover (ms, s)",
    SWITCHOVER_BANDWIDTH: "the bandwidth QEMU assumes for the switchover (8.2+; MiB/s, Gbit/s)",
    CHANNELS: f"connections with multifd (1 to {MAX_CHANNELS}, on both QEMUs)",
}
BANDWIDTHS = (MAX_BANDWIDTH, SWITCHOVER_BANDWIDTH)


# ---------------------------------------------------------------------- may I start, and where to


def waiting_for_migration(session: MonitorSession) -> bool:
    """A destination migtui may start a migration to: connected, waiting with ``-incoming``."""
    state = session.state
    return (session.connected and state.run_state is not None and state.run_state.incoming
            and state.migration_status not in RUNNING_STATUSES)


def start_refused(session: MonitorSession, *, incoming: str, migrated: str) -> Availability | None:
    """What refuses a start of any source, a QMP monitor's or a libvirt domain's (None:
    nothing); ``incoming`` and ``migrated`` say the two states in that source's words."""
    name = session.name
    state = session.state
    if state.run_state is not None and state.run_state.incoming:
        return Availability(False, f"{name}: {incoming}: start it from its source")
    blocked = blocked_reason(session, "start a migration of")
    if blocked:
        return Availability(None, blocked)
    if state.migration_status in RUNNING_STATUSES:  # not offered (the footer has other keys then)
        return Availability(False, f"{name}: a migration is under way ({state.migration_status})")
    if state.run_state is not None and state.run_state.status == "postmigrate":
        return Availability(False, f"{name}: {migrated}: its guest runs on the destination")
    return None


def can_start(session: MonitorSession) -> Availability:
    """``m``: start a migration of this source now, and if not why."""
    refused = start_refused(session, incoming="waits for an incoming migration",
                            migrated="migrated already (postmigrate)")
    if refused is not None:
        return refused
    name = session.name
    if not session.state.capabilities.supports(PAUSE):
        return Availability(None, f"{name}: capabilities not read yet")
    return Availability(True)


def picked_address(destination: MonitorSession, source: str) -> str:
    """Where a monitored destination listens, as migtui picks it: a socket beside its QMP
    socket (the directory its QEMU writes in); "" when the operator must type one (TCP)."""
    address = destination.monitor.address if destination.monitor is not None else None
    path = address.path if address is not None and address.kind == "unix" else None
    if not path or not os.path.isabs(path):  # QEMU would read a relative path from its own directory
        return ""
    candidate = os.path.join(os.path.dirname(path), f"{destination.name}-from-{source}.migrate")
    return f"unix:{candidate}" if len(candidate.encode()) + len(".nbd") <= MAX_UNIX_PATH else ""


def offer(source: MonitorSession, destination: MonitorSession | None, source_disks: Sequence[Disk],
          destination_disks: Sequence[Disk]) -> StartTarget:
    """What a start from ``source`` to ``destination`` (None: a typed URI) may set; dirty-limit
    not where the source is known not to run under KVM (``source.kvm``, its ``query-kvm``)."""
    src_caps = source.state.capabilities
    dst_caps = destination.state.capabilities if destination is not None else None
    capabilities = []
    for spec in CAPABILITIES:
        if not src_caps.supports(spec.name):
            continue
        if spec.both and (dst_caps is None or not dst_caps.supports(spec.name)):
            continue
        if spec.name == DIRTY_LIMIT and source.kvm is False:
            continue
        if spec.name == SWITCHOVER_ACK and dst_caps is not None and not (
                src_caps.supports(RETURN_PATH) and dst_caps.supports(RETURN_PATH)):
            continue
        on = spec.name == PAUSE or src_caps.enabled(spec.name)
        capabilities.append(StartOption(spec.name, CAPABILITY, spec.does, "on" if on else "off", spec.both))
    parameters = []
    offered = {c.name for c in capabilities}
    for name, does in PARAMETERS.items():
        if name not in source.parameters or (name == CHANNELS and MULTIFD not in offered):
            continue
        parameters.append(StartOption(name, PARAMETER, does, _parameter_text(name, source.parameters[name]),
                                      name == CHANNELS))
    disks = []
    if destination is not None:
        targets = {d.qdev: d for d in destination_disks}
        for disk in source_disks:
            target = targets.get(disk.qdev)
            why = ("read-only: nothing to copy" if disk.read_only else
                   f"{destination.name} has no device {disk.device}" if target is None else "")
            disks.append(StartDisk(disk.node, disk.device, disk.size, target.node if target else "", why))
    if destination is None:
        note = "a QEMU migtui does not watch: set it up there yourself; no disks, no capability of both sides"
        return StartTarget("", "", False, capabilities, parameters, [], note)
    channels = bool(source.features.migrate_channels and destination.features.migrate_channels)
    address = picked_address(destination, source.name)
    note = "" if address else f"type where {destination.name} is to listen: unix:/PATH or tcp:HOST:PORT"
    return StartTarget(destination.name, address, channels, capabilities, parameters, disks, note)


def offers(source: MonitorSession, sessions: Sequence[MonitorSession],
           disks: Mapping[str, Sequence[Disk]]) -> list[StartTarget]:
    """Each monitored destination waiting for a migration, then a typed URI."""
    mine = disks.get(source.name, ())
    targets = [offer(source, s, mine, disks.get(s.name, ())) for s in sessions
               if s is not source and waiting_for_migration(s)]
    return [*targets, offer(source, None, mine, ())]


def _parameter_text(name: str, value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    if name in BANDWIDTHS:
        return bandwidth_text(value) if value > 0 else ""
    if name == DOWNTIME:
        return downtime_text(value)
    return str(value)


# ---------------------------------------------------------------------- the operator's choices


@dataclass(frozen=True)
class Choices:
    destination: str  # a monitored destination's name; "" for a typed URI
    address: str = ""  # as typed ("": the one migtui picked)
    capabilities: tuple[str, ...] = ()  # switched on (every other one offered goes off)
    parameters: Mapping[str, str] = field(default_factory=dict)  # as typed ("" leaves it as it is)
    disks: tuple[str, ...] = ()  # source nodes to mirror


@dataclass(frozen=True)
class Mirror:
    node: str  # source node
    target: str  # destination node
    device: str
    size: int | None

    @property
    def export(self) -> str:
        return self.target  # the NBD export's name on the destination

    @property
    def job(self) -> str:
        return f"migtui-mirror-{self.node}"

    @property
    def client_node(self) -> str:
        return f"migtui-nbd-{self.node}"  # the source's NBD node the mirror writes to


@dataclass(frozen=True)
class Plan:
    source: str
    destination: str  # "" for a typed URI
    address: SocketAddress
    channels: bool
    capabilities: dict[str, bool]  # the source's, as they are to be
    destination_capabilities: dict[str, bool]
    parameters: dict[str, int]  # the source's
    destination_parameters: dict[str, int]
    mirrors: tuple[Mirror, ...] = ()

    @property
    def nbd(self) -> SocketAddress:
        return self.address.beside()

    @property
    def pause(self) -> bool:
        return self.capabilities.get(PAUSE, False)


def plan(source: str, target: StartTarget, choices: Choices) -> Plan:
    """The plan of these choices, or BadValue: one line naming what cannot be sent."""
    if choices.destination != target.name:
        raise BadValue(f"destination: {choices.destination or 'a typed URI'} is not offered")
    what = "address" if target.name else "URI"
    text = choices.address.strip() or target.address
    if not text:
        raise BadValue(f"{what}: type where {target.name or 'the destination'} listens: unix:/PATH or tcp:HOST:PORT")
    address = parse_socket_address(text, what)
    offered = {c.name: c for c in target.capabilities}
    for name in choices.capabilities:
        if name not in offered:
            raise BadValue(f"{name}: not offered here (both QEMUs must list it)")
    on = set(choices.capabilities)
    capabilities = {name: name in on for name in offered}
    both = {name: state for name, state in capabilities.items() if offered[name].both}
    if both.get(SWITCHOVER_ACK):
        capabilities[RETURN_PATH] = both[RETURN_PATH] = True
    parameters, dst_parameters = _parameters(target, choices.parameters, on)
    mirrors = _mirrors(target, choices.disks, capabilities.get(PAUSE, False))
    return Plan(source, target.name, address, target.channels, {EVENTS: True, **capabilities},
                {EVENTS: True, **both} if target.name else {}, parameters, dst_parameters, mirrors)


def _parameters(target: StartTarget, typed: Mapping[str, str], on: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    offered = {p.name: p for p in target.parameters}
    source: dict[str, int] = {}
    for name, text in typed.items():
        if name not in offered:
            raise BadValue(f"{name}: not offered here")
        if not text.strip() or text.strip() == offered[name].default:
            continue  # left as it is
        if name in BANDWIDTHS:
            source[name] = parse_bandwidth(text, name)
        elif name == DOWNTIME:
            source[name] = parse_downtime(text, name)
        else:
            source[name] = parse_channels(text)
    destination = {}
    if CHANNELS in source:
        if MULTIFD not in on:
            raise BadValue(f"{CHANNELS}: only with multifd on")
        destination[CHANNELS] = source[CHANNELS]
    return source, destination


def parse_channels(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_CHANNELS:
        raise BadValue(f"{CHANNELS}: {value!r} is not a number from 1 to {MAX_CHANNELS}")
    return int(value)


def _mirrors(target: StartTarget, chosen: Sequence[str], pause: bool) -> tuple[Mirror, ...]:
    if not chosen:
        return ()
    if not target.name:
        raise BadValue("disks: mirrored only to a monitored destination (migtui sets up its NBD server)")
    if not pause:
        raise BadValue(f"disks: mirroring needs {PAUSE}: the mirrors are finished while the guest is stopped")
    disks = {d.node: d for d in target.disks}
    mirrors = []
    for node in dict.fromkeys(chosen):
        disk = disks.get(node)
        if disk is None:
            raise BadValue(f"disk {node}: not a disk of the source")
        if disk.why:
            raise BadValue(f"disk {node}: {disk.why}")
        mirrors.append(Mirror(disk.node, disk.target, disk.device, disk.size))
    return tuple(mirrors)


def summary(plan: Plan) -> list[str]:
    """What the start does, step by step: the lines the operator confirms."""
    where = plan.destination or "the destination"
    how = "channels" if plan.channels else "uri"
    lines = []
    on = [n for n, state in plan.capabilities.items() if state and n != EVENTS]
    off = [n for n, state in plan.capabilities.items() if not state]
    lines.append(f"capabilities on: {', '.join(on) or 'none'}" + (f"; off: {', '.join(off)}" if off else ""))
    if plan.parameters:
        lines.append("parameters: " + ", ".join(f"{n} {_parameter_text(n, v)}" for n, v in plan.parameters.items()))
    for mirror in plan.mirrors:
        lines.append(f"disk {mirror.node} ({format_bytes(mirror.size)}) → {where} {mirror.target}"
                     f" over NBD {plan.nbd.uri}, then wait until every mirror is READY")
    if plan.destination:
        lines.append(f"{where}: migrate-incoming {plan.address.uri} ({how})")
    lines.append(f"{plan.source}: migrate to {plan.address.uri} ({how})")
    if plan.pause:
        finish = "finishes the mirrors, then switches over" if plan.mirrors else "switches over"
        lines.append(f"the guest stops before switchover and waits: s opens the dialog, y {finish}")
    return lines
