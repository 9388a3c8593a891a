"""A pass's event goes to the views with the next poll's answers, not alone.

A pre-copy's ``MIGRATION_PASS`` comes between two polls (every 3 s in the lab's stuck
scenario). Told at once, each was a message of its own -- the event, then the advice it
changed -- that every view decoded and repainted for: a quarter of a watching view's
repaints, and what a view costs is its repaints (docs/benchmarks.md). It tells nothing
that cannot wait for the next poll, at most the monitor's interval: the pass's number, an
event-log line stamped with QEMU's own time, a column of the per-pass trend. So the engine
keeps it and sends it in front of the next poll's input (one message, one repaint).

Only what views are told waits: the engine's own state and workflows took the event as it
came. Any other input of the monitor (a poll's answer, a MIGRATION status, STOP...) lets it
go first, so views see every input in QEMU's order; a timer lets it go after the interval
if no input comes. Its advice waits with it (decided anew when it goes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..model.qmpinput import QmpInput

PROGRESS_EVENTS = frozenset({"MIGRATION_PASS"})
# After the interval a poll's answer is due; a slow QEMU's may come a little after.
SLACK_S = 0.25


def is_progress(entry: QmpInput) -> bool:
    return entry.kind == "event" and isinstance(entry.event, dict) and entry.event.get("event") in PROGRESS_EVENTS


class ProgressHold:
    """One monitor's held progress. ``on_timeout`` lets it go when no input came in time."""

    def __init__(self, on_timeout: Callable[[], None]) -> None:
        self._on_timeout = on_timeout
        self.entries: list[QmpInput] = []
        self.advice_due = False  # the held input changed what the advice is made of
        self.just_held = False  # the input being handled now was held (its change follows at once)
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, entry: QmpInput, wait: float) -> None:
        self.entries.append(entry)
        self.just_held = True
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait + SLACK_S, self._timeout)

    def took_change(self) -> bool:
        """Whether the change being handled came from a held input (asked once per change)."""
        held, self.just_held = self.just_held, False
        return held

    def release(self) -> list[QmpInput]:
        """The held entries, in order; nothing is held after."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        entries, self.entries = self.entries, []
        self.just_held = False
        return entries

    def drop(self) -> None:
        """Forget what is held, and the advice due with it (a QEMU gone, a monitor unwatched)."""
        self.release()
        self.advice_due = False

    def _timeout(self) -> None:
        self._timer = None
        self._on_timeout()
