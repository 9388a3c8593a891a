"""Which sessions are paused before switchover (their guest stopped).

Nothing here sends a command: a pause is only ever ended on purpose. Leaving a view
leaves every pause to the engine, which keeps its deadline.
"""

from __future__ import annotations

from collections.abc import Iterable

from .session import MonitorSession


def paused_sources(sessions: Iterable[MonitorSession]) -> list[MonitorSession]:
    """Sessions whose QEMU waits in pre-switchover (its guest stopped)."""
    return [s for s in sessions if s.state.in_pre_switchover]
