"""Which paused sources this view has brought to the operator, and which wait their turn.

The engine decides every fact of a pause (``RemoteSession.pause``); what is left to a
view is presentation: a new pause (or auto-resume holding one back) opens its dialog, one
dialog at a time, the others queue and are named in the open one. No textual here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..view.remote import RemoteSession

HELD = "held"  # the engine's note: its auto-resume held back, the operator must decide
AUTO = "auto"  # the engine's note: what its auto-resume is doing


@dataclass(frozen=True)
class PauseNews:
    """What one change meant."""

    new: bool = False  # a new pause began
    ended: bool = False  # the pause ended
    ask: bool = False  # the operator must decide now: bring the dialog


def paused(sessions: Mapping[str, RemoteSession]) -> list[RemoteSession]:
    """The sources the engine says are paused before switchover, in the view's order."""
    return [s for s in sessions.values() if s.pause.paused]


class PauseQueue:
    def __init__(self, sessions: Mapping[str, RemoteSession]) -> None:
        self.sessions = sessions
        self.shown: dict[str, tuple[int, int]] = {}  # paused source -> (generation, episode) brought up
        self.queue: list[str] = []  # sources whose dialog waits for the open one to close
        self._held: dict[str, str] = {}  # the engine's "held" notes already brought up

    def observe(self, session: RemoteSession) -> PauseNews:
        """Fold the engine's latest word on ``session``'s pause."""
        name, pause = session.name, session.pause
        if not pause.paused:
            self._held.pop(name, None)
            if name in self.shown:
                del self.shown[name]
                self.unqueue(name)
                return PauseNews(ended=True)
            return PauseNews()
        identity = (session.generation, pause.episode)
        new = self.shown.get(name) != identity
        self.shown[name] = identity
        ask = new and not pause.auto  # the engine resumes it; the dialog opens if it holds back
        held = pause.notes.get(HELD)
        if held and self._held.get(name) != held:
            self._held[name] = held
            ask = True
        return PauseNews(new=new, ask=ask)

    def enqueue(self, name: str) -> None:
        if name not in self.queue:
            self.queue.append(name)

    def unqueue(self, name: str) -> None:
        if name in self.queue:
            self.queue.remove(name)

    def forget(self, name: str) -> None:
        """A monitor no longer watched: nothing of it is brought up again."""
        self.unqueue(name)
        self.shown.pop(name, None)
        self._held.pop(name, None)

    def next_queued(self) -> str | None:
        """The next queued source still paused (those no longer paused leave the queue)."""
        while self.queue:
            name = self.queue.pop(0)
            session = self.sessions.get(name)
            if session is not None and session.pause.paused:
                return name
        return None

    def others_paused(self, exclude: str) -> list[str]:
        """Other paused sources: queued ones first, then any whose dialog was closed."""
        names = [n for n in self.queue if n != exclude and self.sessions[n].pause.paused]
        names += [s.name for s in paused(self.sessions) if s.name not in names and s.name != exclude]
        return names

    def banner_notes(self) -> list[tuple[str, str]]:
        """(HELD or AUTO, the line) of every paused source: each held pause first."""
        sources = paused(self.sessions)
        return [(key, s.pause.notes[key]) for key in (HELD, AUTO) for s in sources if s.pause.notes.get(key)]

    @property
    def quiet(self) -> bool:
        """Nothing paused: the banner has nothing to show."""
        return not any(s.pause.paused for s in self.sessions.values())

    def critical(self) -> bool:
        """A guest is stopped while migtui acts on it and the outcome is not known yet (a
        confirmed resume or abort): every ms is downtime. (While the engine's auto-resume
        decides, the engine holds its messages to the views itself.)"""
        return any(s.switchover.running and s.switchover.result is None for s in paused(self.sessions))
