"""Which sources are paused before switchover, since when, and what waits for the operator.

Bookkeeping over a view's sessions: no textual, no timers, nothing sent. Whoever follows
the pauses feeds it every session change (:meth:`PauseTracker.observe`) and acts on the
answer: the TUI's pause watch opens the dialog when the operator must decide, queues it
behind an open one, repaints the banner from :meth:`PauseTracker.banner_notes`, and
holds repaints while :meth:`PauseTracker.critical`.

What the engine does with a pause is its PAUSE message, which a view's session keeps
(``session.pause``): whether its auto-resume takes the pause (the dialog then opens only
if it holds back: its ``held`` note), and what it said (``notes``, keyed as here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .paused import paused_sources
from ..model.vmstate import VmState
from ..transport import ConnState
from .session import MonitorSession
from .switchover import current_switchover

HELD = "held"
AUTO = "auto"


@dataclass(frozen=True)
class PauseNews:
    """What one change meant."""

    new: bool = False  # a new pause began
    ended: bool = False  # the pause ended
    ask: bool = False  # the operator must decide now: bring the dialog


def engine_pause(session: MonitorSession) -> dict[str, Any] | None:
    """The engine's word on ``session``'s pause (a view's session), or None (migtui's own)."""
    return getattr(session, "pause", None)


def monitor_lost(session: MonitorSession) -> bool:
    """The monitor of a live session dropped and migtui (or its engine) tries to get it
    back: what the session shows is the last known. Not while it first connects (a view's
    mirror before the engine's SESSION message has arrived)."""
    return session.live and session.status.state in (ConnState.RETRYING, ConnState.LOST)


def last_heard(state: VmState) -> float | None:
    """The last time QEMU told anything (a poll's sample, a status, an event)."""
    times = [c.time for c in state.status_changes]
    if state.history.latest is not None:
        times.append(state.history.latest.time)
    times += [ev.timestamp for ev in state.events if ev.timestamp is not None][-1:]
    return max(times) if times else None


def _engine_held(session: MonitorSession) -> str | None:
    notes = (engine_pause(session) or {}).get("notes")
    held = notes.get(HELD) if isinstance(notes, dict) else None
    return str(held) if held else None


class PauseTracker:
    def __init__(self, sessions: Mapping[str, MonitorSession]) -> None:
        self.sessions = sessions
        self.paused: dict[str, float | None] = {}  # source -> its pre_switchover_since, while paused
        self.detected: list[tuple[str, float | None]] = []  # every pause seen, in order
        self.queue: list[str] = []  # sources whose dialog waits for the open one to close
        self.notes: dict[str, dict[str, str]] = {}  # source -> {AUTO: one line}
        self._engine_held: dict[str, str] = {}  # the engine's "held" notes already acted on
        self.lost: dict[str, float] = {}  # paused source -> when its monitor was lost
        self._answering: set[str] = set()  # paused sources seen with their monitor connected

    # ------------------------------------------------------------------ input

    def observe(self, session: MonitorSession, now: float | None = None) -> PauseNews:
        """Fold a change of ``session`` (its migration, connection or run state) seen at ``now``."""
        name = session.name
        state = session.state
        if state.in_pre_switchover and monitor_lost(session):
            if name not in self.lost:  # the pause's clock stops here: when it was seen to go,
                # else (a view that attached later) when QEMU last told anything
                seen = now if name in self._answering else last_heard(state)
                if seen is not None:
                    self.lost[name] = seen
        else:
            self.lost.pop(name, None)
        if state.in_pre_switchover and session.connected:
            self._answering.add(name)
        elif not state.in_pre_switchover:
            self._answering.discard(name)
        if state.in_pre_switchover:
            since = state.pre_switchover_since
            new = name not in self.paused or self.paused[name] != since
            ask = self._begin(session, since) if new else False
            held = _engine_held(session)
            if held and self._engine_held.get(name) != held:  # the engine's auto-resume held back
                self._engine_held[name] = held
                self.notes.get(name, {}).pop(AUTO, None)
                ask = True
            return PauseNews(new=new, ask=ask)
        if name in self.paused:
            del self.paused[name]
            self.notes.pop(name, None)
            self.unqueue(name)
            return PauseNews(ended=True)
        return PauseNews()

    def _begin(self, session: MonitorSession, since: float | None) -> bool:
        name = session.name
        self.paused[name] = since
        self.detected.append((name, since))
        notes = self.notes.setdefault(name, {})
        if (engine_pause(session) or {}).get("auto_allowed"):
            # The engine resumes it; the dialog opens only if it holds back (its "held" note).
            notes[AUTO] = f"auto-resume (engine): {name}: checking the checklist"
            return False
        return session.live

    # ------------------------------------------------------------------ the dialogs' queue

    def enqueue(self, name: str) -> None:
        if name not in self.queue:
            self.queue.append(name)

    def unqueue(self, name: str) -> None:
        if name in self.queue:
            self.queue.remove(name)

    def next_queued(self) -> str | None:
        """The next queued source still paused (those no longer paused leave the queue)."""
        while self.queue:
            name = self.queue.pop(0)
            session = self.sessions.get(name)
            if session is not None and session.state.in_pre_switchover:
                return name
        return None

    def others_paused(self, exclude: str) -> list[str]:
        """Other paused sources: queued ones first, then any whose dialog was closed."""
        names = [n for n in self.queue if n != exclude and self.sessions[n].state.in_pre_switchover]
        names += [s.name for s in paused_sources(self.sessions.values()) if s.name not in names and s.name != exclude]
        return names

    # ------------------------------------------------------------------ what to show

    @property
    def quiet(self) -> bool:
        """Nothing paused and nothing to say."""
        return not self.paused and not any(self.notes.values())

    def banner_notes(self) -> list[tuple[str, str]]:
        """(HELD or AUTO, the line) for the banner: every pause the engine's auto-resume held
        back first, then those it is taking."""
        held = [(HELD, line) for line in map(_engine_held, paused_sources(self.sessions.values())) if line]
        return held + [(AUTO, notes[AUTO]) for notes in self.notes.values() if notes.get(AUTO)]

    def critical(self) -> bool:
        """A guest is stopped while migtui acts on it and the outcome is not known yet (a
        confirmed resume or abort). Every ms is downtime."""
        for session in paused_sources(self.sessions.values()):
            controller = current_switchover(session)
            if controller is not None and controller.running and controller.result is None:
                return True
        return False
