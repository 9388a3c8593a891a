"""Which sources are paused before switchover (their guest stopped). Pure reads."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .session import MonitorSession

log = logging.getLogger("migtui.paused")


def paused_sources(sessions: Iterable[MonitorSession]) -> list[MonitorSession]:
    """Sessions whose QEMU waits in pre-switchover (its guest stopped)."""
    return [s for s in sessions if s.state.in_pre_switchover]
