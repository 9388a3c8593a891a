"""Real QEMU data recorded per version (tests/fixtures/qmp/<version>/), and offline
sessions fed from the lab runs recorded by tests/fixtures/record_tui.py.

``VERSIONS`` lists every recorded QEMU (a folder with a ``meta.json``), oldest first;
tests take the ``version`` fixture (defined here, shared by conftest.py) to run once per version, with
the version in the test id. Moments of a TUI run are named (``moment``), found from
what QEMU did in that recording, so one test fits every version's run. Tests that give
a run's times in seconds were written against QEMU 7.2's runs (``TUI_FIXTURES``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from migtui.model.events import QmpEvent
from migtui.model.features import QemuFeatures
from migtui.workflow.session import MonitorSession

QMP = Path(__file__).parent / "fixtures" / "qmp"
# The runs that times in seconds (``replayed("storage", 16.9)``) refer to.
SECONDS_VERSION = "7.2"
TUI_FIXTURES = QMP / SECONDS_VERSION / "tui"


def _series(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


VERSIONS: list[str] = sorted((p.parent.name for p in QMP.glob("*/meta.json")), key=_series)


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    """Each recorded QEMU version in turn ("7.2", "10.0")."""
    return request.param


def reply(version: str, name: str) -> Any:
    """QEMU's `return` from a recorded envelope, e.g. (``"10.0"``, ``"switchover/src-query-migrate-active-1"``)."""
    return json.loads((QMP / version / f"{name}.json").read_text())["return"]


def envelopes(command: str) -> list[dict[str, Any]]:
    """Every recorded reply to ``command``, all versions, with ``path`` "10.0/plain/src-...""."""
    found = []
    for path in sorted(QMP.glob("*/*/*.json")):
        if path.name == "timeline.json" or path.parent.name == "tui":
            continue
        env = json.loads(path.read_text())
        if isinstance(env, dict) and env.get("command") == command:
            found.append({**env, "path": str(path.relative_to(QMP).with_suffix(""))})
    return found


def timeline(version: str, scenario: str, side: str) -> list[dict[str, Any]]:
    entries = json.loads((QMP / version / scenario / "timeline.json").read_text())
    return [e for e in entries if e["side"] == side]


def events(version: str, scenario: str, side: str) -> list[QmpEvent]:
    return [QmpEvent.from_qmp(m) for m in reply(version, f"{scenario}/{side}-events-all")]


# --- TUI runs ----------------------------------------------------------------------------


@cache
def tui_run(version: str, scenario: str) -> list[dict[str, Any]]:
    """The entries of ``qmp/<version>/tui/<scenario>.json``, in arrival order."""
    return json.loads((QMP / version / "tui" / f"{scenario}.json").read_text())["entries"]


def _event_at(entries: list[dict[str, Any]], name: str, status: str | None = None) -> float:
    for e in entries:
        if (e["side"] == "src" and e["kind"] == "event" and e["event"]["event"] == name
                and (status is None or e["event"].get("data", {}).get("status") == status)):
            return e["t"]
    raise AssertionError(f"no src {name} {status or ''} in the recording")


def _last_reply_at(entries: list[dict[str, Any]], command: str, status: str) -> float:
    return [e["t"] for e in entries if e["side"] == "src" and e["kind"] == "reply"
            and e["command"] == command and e["return"].get("status") == status][-1]


# Named moments: what the recording shows then, and how to find it in any version's run.
MOMENTS: dict[tuple[str, str], Callable[[list[dict[str, Any]]], float]] = {
    # Mid-migration with the longest history: just after the last poll before the pause.
    ("storage", "active"): lambda e: _last_reply_at(e, "query-migrate", "active") + 0.2,
    # Guest stopped 1.2 s before switchover (the banner and dialog clocks say "1.2 s").
    ("storage", "paused"): lambda e: _event_at(e, "STOP") + 1.2,
    # Over two seconds after the source completed: every event of the run is in.
    ("storage", "completed"): lambda e: _event_at(e, "MIGRATION", "completed") + 2.25,
    # Dirty and sent side by side at pass 4, just before the operator cancels.
    ("stuck", "late"): lambda e: _event_at(e, "MIGRATION", "cancelling") - 0.02,
    # The measurement came back a moment ago.
    ("measure", "measured"): lambda e: _last_reply_at(e, "query-dirty-rate", "measured") + 0.7,
}


def moment(version: str, scenario: str, name: str) -> float:
    """Seconds into the recorded run at which the named moment is shown."""
    entries = tui_run(version, scenario)
    return MOMENTS[scenario, name](entries) - entries[0]["t"]


@cache
def features(version: str) -> QemuFeatures:
    """What a monitor learns from this version's schema on connecting (recorded by the
    ``schema`` scenario), for the offline sessions of its runs."""
    return QemuFeatures.from_schema(reply(version, "schema/src-query-qmp-schema-migration"))


def replayed(scenario: str, at: float | str, names: dict[str, str] | None = None, *,
             version: str = SECONDS_VERSION) -> tuple[list[MonitorSession], float]:
    """Offline sessions fed ``at`` seconds (or a named moment) of a recorded lab run
    (side -> session name); returns them and the clock's "now"."""
    entries = tui_run(version, scenario)
    seconds = moment(version, scenario, at) if isinstance(at, str) else at
    now = entries[0]["t"] + seconds
    sessions = []
    for side, name in (names or {"src": "src", "dst": "dst"}).items():
        session = MonitorSession.offline(name, clock=lambda: now, features=features(version))
        session.replay([e for e in entries if e["side"] == side], until=now)
        sessions.append(session)
    return sessions, now


def replayed_pairs(scenario: str, count: int, first: float, step: float = 0.8, *,
                   version: str = SECONDS_VERSION) -> tuple[list[MonitorSession], float]:
    """``count`` source/destination pairs of one recorded run (src00/dst00, src01/dst01,
    ...), each ``step`` seconds further into it than the one before: a dashboard that
    watches many monitors. Returns them and the last pair's "now"."""
    sessions: list[MonitorSession] = []
    now = 0.0
    for i in range(count):
        pair, now = replayed(scenario, first + i * step, {"src": f"src{i:02d}", "dst": f"dst{i:02d}"},
                             version=version)
        sessions += pair
    return sessions, now
