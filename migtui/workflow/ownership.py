"""Who drives a QEMU's migration: recognise a libvirt-managed QEMU over QMP.

libvirt owns its QEMUs' monitors and finishes their pre-switchover pauses itself
(mirror cancel + migrate-continue, milliseconds after the pause). Over a second
monitor migtui can tell such a QEMU by what libvirt always leaves in it: block nodes
named ``libvirt-N-format`` / ``libvirt-N-storage`` (``query-named-block-nodes``) and
the secret object ``masterKey0`` (``qom-list /objects``). Both are queries, allowed
under --read-only. Any failure reads as "not recognised": the cautious default
elsewhere (policy) still keeps migtui from acting on a pause it does not own.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import MigtuiError
from ..libvirt.domain import LIBVIRT
from ..transport import Monitor

log = logging.getLogger("migtui.ownership")



def libvirt_signs(block_nodes: Any, objects: Any) -> list[str]:
    """What in these replies says libvirt made this QEMU (pure, for tests)."""
    signs: list[str] = []
    if isinstance(block_nodes, list):
        names = [n.get("node-name") for n in block_nodes if isinstance(n, dict)]
        libvirt_nodes = [n for n in names if isinstance(n, str) and n.startswith("libvirt-")]
        if libvirt_nodes:
            signs.append(f"block node {libvirt_nodes[0]}")
    if isinstance(objects, list) and any(isinstance(o, dict) and o.get("name") == "masterKey0" for o in objects):
        signs.append("secret masterKey0")
    return signs


async def detect_manager(monitor: Monitor) -> tuple[str | None, str]:
    """(``"libvirt"`` or None, why) for the QEMU behind ``monitor``."""
    if monitor.manager == LIBVIRT:  # watched through libvirt's own API: no need to guess
        return LIBVIRT, "a libvirt domain (watched through libvirt's API)"
    nodes: Any = None
    objects: Any = None
    try:
        if monitor.supports("query-named-block-nodes"):
            nodes = await monitor.execute("query-named-block-nodes")
        if monitor.supports("qom-list"):
            objects = await monitor.execute("qom-list", {"path": "/objects"})
    except MigtuiError as err:
        log.info("%s: cannot tell who manages this QEMU: %s", monitor.name, err)
        return None, f"unknown ({err})"
    signs = libvirt_signs(nodes, objects)
    if signs:
        return LIBVIRT, "managed by libvirt (" + ", ".join(signs) + ")"
    return None, "not managed by libvirt"
