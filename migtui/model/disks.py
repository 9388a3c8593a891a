"""`query-block` as the disks a storage migration can mirror: pure parsing, no I/O.

A disk is told by its guest device (the ``qdev`` path, the same on source and destination
when their command lines match, as a migration needs) and mirrored from the node that
device reads (``inserted.node-name``, the format node: what libvirt mirrors and exports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .coerce import as_mapping, opt_bool, opt_int, opt_str

PERIPHERAL = "/machine/peripheral/"


@dataclass(frozen=True)
class Disk:
    node: str  # the node the guest device reads: mirrored from / exported
    qdev: str  # the device's QOM path: matches a disk to its destination
    size: int | None = None  # virtual size in bytes
    read_only: bool = False
    driver: str = ""

    @property
    def device(self) -> str:
        """The device's id when it has one (``data0-dev``), else its QOM path."""
        if self.qdev.startswith(PERIPHERAL):
            return self.qdev.removeprefix(PERIPHERAL).split("/", 1)[0]
        return self.qdev


def parse_disks(reply: Any) -> list[Disk]:
    """The devices with a medium and a node name (an empty CD drive has nothing to copy)."""
    disks = []
    for entry in reply if isinstance(reply, list) else []:
        if not isinstance(entry, Mapping):
            continue
        inserted = as_mapping(entry.get("inserted"))
        node = opt_str(inserted.get("node-name"))
        qdev = opt_str(entry.get("qdev")) or opt_str(entry.get("device"))
        if not node or not qdev:
            continue
        image = as_mapping(inserted.get("image"))
        disks.append(Disk(node, qdev, opt_int(image.get("virtual-size")), bool(opt_bool(inserted.get("ro"))),
                          opt_str(inserted.get("drv")) or ""))
    return disks
