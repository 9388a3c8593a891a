"""Which watched monitor is the destination of a paused source?

QMP does not say where a source migrates to (``query-migrate`` on the source has no
URI), so the pair is inferred from what the monitors do: a destination waits in
``inmigrate``. With several candidates the names decide (``src1``/``dst1``,
``web-source``/``web-dest``). When it cannot be told, the checklist reports the
destination as not monitored rather than checking the wrong VM. libvirt domains say
it outright: the same domain UUID on another host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .session import MonitorSession

_SIDE = re.compile(r"(source|src|destination|dest|dst)", re.IGNORECASE)


def pair_key(name: str) -> str:
    """The name with its side word removed: ``src01`` and ``dst01`` share ``01``."""
    return _SIDE.sub("", name).strip("-_.:").lower()


def _side(name: str) -> str | None:
    match = _SIDE.search(name)
    if match is None:
        return None
    return "src" if match.group(1).lower() in ("source", "src") else "dst"


def receiving(session: MonitorSession) -> bool:
    """Waits for (or receives) an incoming migration, as far as we last knew."""
    run = session.state.run_state
    return run is not None and run.incoming


def destination_for(source: MonitorSession, sessions: Iterable[MonitorSession]) -> MonitorSession | None:
    """The watched destination of ``source``'s migration, or None when it cannot be told."""
    others = [s for s in sessions if s is not source]
    uuid = _domain_uuid(source)
    if uuid is not None:
        # A libvirt domain's destination is the same domain on another host, found by its UUID
        # or not at all: by name or by "receiving", an unrelated monitor could be taken for it.
        same = [s for s in others if _domain_uuid(s) == uuid]
        return same[0] if len(same) == 1 else None
    named = [s for s in others if _side(s.name) == "dst" and _side(source.name) == "src"
             and pair_key(s.name) == pair_key(source.name)]
    incoming = [s for s in others if receiving(s)]
    if len(named) == 1:
        return named[0]  # the names pair them, even if that VM is not receiving (the check says so)
    if len(incoming) == 1:
        return incoming[0]
    return None


def _domain_uuid(session: MonitorSession) -> str | None:
    """A libvirt domain's UUID (its DomainMonitor knows it); None for a QMP monitor."""
    uuid = getattr(session.monitor, "uuid", None)
    return uuid if isinstance(uuid, str) else None
