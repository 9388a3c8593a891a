"""Guard rails for leaving migtui while a guest is stopped in pre-switchover.

Quitting asks first; losing the terminal (SIGHUP) leaves every VM as it is and
logs it. Nothing here sends a command: a pause is only ever ended on purpose.
The next migtui start shows the pause at once (the session's first query-migrate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from ..format import format_duration
from .session import MonitorSession

log = logging.getLogger("migtui.paused")


def paused_sources(sessions: Iterable[MonitorSession]) -> list[MonitorSession]:
    """Sessions whose QEMU waits in pre-switchover (its guest stopped)."""
    return [s for s in sessions if s.state.in_pre_switchover]


def describe_pause(session: MonitorSession, now: float | None = None) -> str:
    """"src: guest stopped in pre-switchover for 12.3 s"."""
    at = time.time() if now is None else now
    state = session.state
    stopped = state.stopped_for(at)
    if stopped is None:
        stopped = state.pre_switchover_for(at)
    return f"{session.name}: guest stopped in pre-switchover for {format_duration(stopped)}"


def quit_warning(sessions: Iterable[MonitorSession], now: float | None = None) -> str | None:
    """The question to ask before quitting, or None when no guest is paused."""
    paused = paused_sources(sessions)
    if not paused:
        return None
    what = "; ".join(describe_pause(s, now) for s in paused)
    return (
        f"{what}. Quitting leaves {'it' if len(paused) == 1 else 'them'} paused (downtime keeps"
        " growing) until a client sends migrate-continue or migrate_cancel. Quit anyway?"
    )


def log_paused_on_exit(
    sessions: Iterable[MonitorSession], why: str = "exiting", now: float | None = None
) -> list[str]:
    """Log (WARNING) each pause left behind, e.g. on SIGHUP; returns the lines. Sends nothing."""
    lines = [
        f"{why}: {describe_pause(s, now)}: left paused, not resumed; run migtui again to"
        " resume or abort it"
        for s in paused_sources(sessions)
    ]
    for line in lines:
        log.warning("%s", line)
    return lines
