"""What a QEMU says it can do, read from its QMP schema: the few facts migtui needs.

``query-qmp-schema`` is large (about 230 KB on QEMU 10.0): the transport reads it once
per connection and keeps only a :class:`QemuFeatures`. Facts come from what the schema
holds, never from the version number (distributions backport, forks renumber).
Pure: no I/O.

The facts so far:

* ``expected_downtime_basis``: how QEMU computes query-migrate's ``expected-downtime``.
  Until 8.0 it was the RAM still to send divided by the bandwidth; from 8.1 it is the
  bytes found dirty at the last bitmap sync divided by the bandwidth (QEMU commit
  "migration: Use dirty_bytes_last_sync"). The change itself added nothing to the
  schema, so it is told by what came with it in the same release: the
  ``dirty-limit-*`` members of query-migrate's MigrationInfo.
* ``migrate_channels``: ``migrate`` and ``migrate-incoming`` take ``channels`` (a structured
  address) with ``uri`` optional (QEMU 9.0 on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from migtui.model.coerce import as_mapping, opt_str

# expected-downtime = bytes dirtied since the last sync / bandwidth (QEMU 8.1 on).
LAST_SYNC = "last-sync"
# expected-downtime = RAM remaining / bandwidth (QEMU up to 8.0).
REMAINING = "remaining"
# Short enough to stand beside the figure at 80 columns; the help screen spells them out.
EXPECTED_DOWNTIME_FORMULAS: dict[str, str] = {
    LAST_SYNC: "dirty÷bw",
    REMAINING: "left÷bw",
}
# MigrationInfo members that arrived in the release that changed the formula.
_LAST_SYNC_MARKERS = frozenset({"dirty-limit-throttle-time-per-round", "dirty-limit-ring-full-time"})


@dataclass(frozen=True)
class QemuFeatures:
    """Facts from one QEMU's schema; None where the schema was not read (or said nothing)."""

    expected_downtime_basis: str | None = None  # LAST_SYNC or REMAINING
    migrate_channels: bool | None = None  # migrate takes channels, its uri optional (9.0+)

    @classmethod
    def from_schema(cls, entries: Any) -> QemuFeatures:
        """Distil a ``query-qmp-schema`` reply (a list of SchemaInfo); tolerant of junk."""
        if not isinstance(entries, list):
            return cls()
        by_name = {name: e for e in entries if isinstance(e, Mapping) and (name := opt_str(e.get("name")))}
        channels = _channels(by_name)
        members = _return_members(by_name, "query-migrate")
        if members is None:
            return cls(migrate_channels=channels)
        return cls(expected_downtime_basis=LAST_SYNC if members & _LAST_SYNC_MARKERS else REMAINING,
                   migrate_channels=channels)

    @property
    def expected_downtime_formula(self) -> str | None:
        """"dirty÷bw" (last sync's dirty bytes) or "left÷bw" (RAM left); None when unknown."""
        return EXPECTED_DOWNTIME_FORMULAS.get(self.expected_downtime_basis or "")


def _channels(by_name: Mapping[str, Mapping[str, Any]]) -> bool | None:
    """Whether ``migrate`` takes ``channels`` with ``uri`` optional (9.0 on; 8.2 had them unstable)."""
    cmd = by_name.get("migrate")
    if cmd is None or cmd.get("meta-type") != "command":
        return None
    args = by_name.get(opt_str(cmd.get("arg-type")) or "")
    members = args.get("members") if args is not None else None
    if not isinstance(members, list):
        return None
    by_member = {opt_str(m.get("name")): m for m in members if isinstance(m, Mapping)}
    return "channels" in by_member and "default" in as_mapping(by_member.get("uri"))


def _return_members(by_name: Mapping[str, Mapping[str, Any]], command: str) -> frozenset[str] | None:
    """Member names of the object ``command`` returns (type names are masked: follow them)."""
    cmd = by_name.get(command)
    if cmd is None or cmd.get("meta-type") != "command":
        return None
    ret = by_name.get(opt_str(cmd.get("ret-type")) or "")
    if ret is None or ret.get("meta-type") != "object":
        return None
    members = ret.get("members")
    if not isinstance(members, list):
        return None
    return frozenset(name for m in members if isinstance(m, Mapping) and (name := opt_str(m.get("name"))))
