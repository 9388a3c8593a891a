"""Offline sessions fed from lab runs recorded by tests/fixtures/record_tui.py."""

from __future__ import annotations

import json
from pathlib import Path

from migtui.workflow.session import MonitorSession

TUI_FIXTURES = Path(__file__).parent / "fixtures" / "qmp" / "tui"


def replayed(scenario: str, at: float, names: dict[str, str] | None = None) -> tuple[list[MonitorSession], float]:
    """Offline sessions fed ``at`` seconds of a recorded lab run (side -> session name)."""
    entries = json.loads((TUI_FIXTURES / f"{scenario}.json").read_text())["entries"]
    now = entries[0]["t"] + at
    sessions = []
    for side, name in (names or {"src": "src", "dst": "dst"}).items():
        session = MonitorSession.offline(name, clock=lambda: now)
        session.replay([e for e in entries if e["side"] == side], until=now)
        sessions.append(session)
    return sessions, now
