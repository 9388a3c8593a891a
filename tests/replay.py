"""Real QEMU data recorded per version (tests/fixtures/qmp/<version>/), and offline
sessions fed from the lab runs recorded by tests/fixtures/record_tui.py.

``VERSIONS`` lists every recorded QEMU (a folder with a ``meta.json``), oldest first;
tests take the ``version`` fixture (imported from here) to run once per version, with
the version in the test id. Moments of a TUI run are named (``moment``), found from
what QEMU did in that recording, so one test fits every version's run. Tests that give
a run's times in seconds were written against QEMU 7.2's runs (``TUI_FIXTURES``).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
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
            return float(e["t"])
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


# --- a recorded QEMU on a socket, for the engine -----------------------------------------

# Commands every QEMU of these versions has, beyond the recorded schema's (which keeps the
# migration part only) and the queries the recording answered.
_EVERY_QEMU = frozenset({"qmp_capabilities", "query-commands", "query-qmp-schema", "query-status", "query-version",
                         "migrate-continue", "migrate_cancel", "migrate-set-capabilities"})


def _changes(command: str, event: str) -> bool:
    """Whether QEMU's ``event`` changes what ``command`` answers."""
    if command == "query-migrate":
        return event == "MIGRATION"
    if command == "query-status":
        return event in ("STOP", "RESUME")
    if command == "query-block-jobs":
        return event.startswith("BLOCK_JOB_") or event == "JOB_STATUS_CHANGE"
    return False


# What libvirt leaves in every QEMU it starts (migtui/workflow/ownership.py reads these).
LIBVIRT_SIGNS = {"query-named-block-nodes": [{"node-name": "libvirt-1-format"}, {"node-name": "libvirt-1-storage"}],
                 "qom-list": [{"name": "masterKey0", "type": "child<secret>"}]}


class RecordedQemu:
    """A QMP server on a unix socket that answers as a recorded QEMU did at one moment of a
    recorded TUI run (``qmp/<version>/tui/<scenario>.json``, one side of it): its greeting,
    its commands and schema, and to every query the last reply it gave at or before that
    moment. A change it was never recorded answering (resume, abort, arm) gets QEMU's error
    reply: a recording cannot act. ``advance`` moves the moment on, sending the recorded
    events in between; ``emit`` sends one more event; ``stop`` and ``serve`` take the
    socket away and bring it back (a QEMU that died, and one at the same socket).

    The engine connects to it with its own Monitor. What came before the moment -- the
    recent events and the chart's polls -- is given to the engine's session as it came
    (``MonitorSession.replay``, at the recorded times), so the engine's journal, and each
    view's replay of it, is the recorded run's."""

    connects = True

    def __init__(self, path: Path, version: str, scenario: str, side: str, at: float,
                 replies: dict[str, Any] | None = None) -> None:
        self.path = path
        self.version = version
        self.entries = [e for e in tui_run(version, scenario) if e["side"] == side]
        self.at = at  # wall clock of the moment, in the recording's time
        self.replies = dict(replies or {})  # command -> a fixed answer (LIBVIRT_SIGNS)
        self.received: list[tuple[str, Any]] = []  # every command, with its arguments
        self.since: float | None = None  # watched from then on only (None: from the start)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def history(self) -> list[dict[str, Any]]:
        """The recorded input up to the moment (from ``since``), for the engine's session."""
        return [e for e in self.entries if e["t"] <= self.at and (self.since is None or e["t"] > self.since)]

    @property
    def commands(self) -> frozenset[str]:
        schema = reply(self.version, "schema/src-query-qmp-schema-migration")
        named = {e["name"] for e in schema if e.get("meta-type") == "command"}
        answered = {e["command"] for e in self.entries if e["kind"] == "reply"}
        return frozenset(named | answered | _EVERY_QEMU | set(self.replies))

    def answer(self, command: str) -> dict[str, Any]:
        if command == "qmp_capabilities":
            return {"return": {}}
        if command == "query-commands":
            return {"return": [{"name": c} for c in sorted(self.commands)]}
        if command == "query-qmp-schema":
            return {"return": reply(self.version, "schema/src-query-qmp-schema-migration")}
        if command in self.replies:
            return {"return": self.replies[command]}
        given = [e for e in self.entries if e["kind"] == "reply" and e["command"] == command]
        if not given:
            return {"error": {"class": "GenericError",
                              "desc": f"a recorded QEMU {self.version}: {command} is not in the recording"}}
        before = [e for e in given if e["t"] <= self.at]
        if not before:  # asked before its first recorded answer: that one (nothing had happened yet)
            return {"return": given[0]["return"]}
        news = [e["t"] for e in self.entries if e["kind"] == "event" and e["t"] <= self.at
                and _changes(command, e["event"]["event"])]
        if news and news[-1] > before[-1]["t"]:
            # QEMU told of a change after its last answer (a pause began): its next answer
            # is the one that knows of it.
            after = [e for e in given if e["t"] > news[-1]]
            if after:
                return {"return": after[0]["return"]}
        return {"return": before[-1]["return"]}

    def greeting(self) -> dict[str, Any]:
        qemu = json.loads((QMP / self.version / "meta.json").read_text())["qemu"]
        major, minor, micro = (int(x) for x in qemu.split("."))
        return {"QMP": {"version": {"qemu": {"major": major, "minor": minor, "micro": micro}, "package": ""},
                        "capabilities": []}}

    async def serve(self) -> RecordedQemu:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            writer.write(json.dumps(self.greeting()).encode() + b"\n")
            decoder = json.JSONDecoder()
            buffer = ""
            while chunk := await reader.read(65536):  # QMP is a stream of objects: no line ends
                buffer += chunk.decode()
                while buffer.strip():
                    try:
                        message, end = decoder.raw_decode(buffer.lstrip())
                    except json.JSONDecodeError:
                        break  # the rest of it is still on its way
                    buffer = buffer.lstrip()[end:]
                    command = str(message.get("execute"))
                    self.received.append((command, message.get("arguments")))
                    answer = self.answer(command)
                    if "id" in message:
                        answer["id"] = message["id"]
                    writer.write(json.dumps(answer).encode() + b"\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def emit(self, event: dict[str, Any]) -> None:
        """Send one QMP event (``{"event", "data", "timestamp"}``) to whoever is connected."""
        data = json.dumps(event).encode() + b"\n"
        for writer in list(self._writers):
            writer.write(data)

    def advance(self, to: float) -> None:
        """The recording goes on to ``to`` (wall clock): its events in between are sent now."""
        for e in self.entries:
            if e["kind"] == "event" and self.at < e["t"] <= to:
                self.emit(e["event"])
        self.at = to

    async def stop(self) -> None:
        """The QEMU goes away: its socket and every connection to it."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self.path.unlink(missing_ok=True)


class DeadSocket:
    """A monitor with no QEMU behind it: no socket at ``path`` at all, or (``stale``) one
    that is bound and never listens, as a QEMU that crashed leaves it."""

    connects = False

    def __init__(self, path: Path, *, stale: bool = False) -> None:
        self.path = path
        self.stale = stale
        self._sock: socket.socket | None = None

    def history(self) -> list[dict[str, Any]]:
        return []

    async def serve(self) -> DeadSocket:
        if self.stale:
            self.path.unlink(missing_ok=True)
            self._sock = socket.socket(socket.AF_UNIX)
            self._sock.bind(str(self.path))
        return self

    async def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self.path.unlink(missing_ok=True)


@dataclass
class Recorded:
    """Recorded QEMUs (one per monitor) at moments of recorded runs, and the clock they share:
    what ``conftest.app_for`` serves to its engine instead of live monitors."""

    qemus: dict[str, RecordedQemu | DeadSocket]  # monitor name -> its QEMU, in the order shown
    now: float

    def clock(self) -> float:
        return self.now

    def __or__(self, other: Recorded) -> Recorded:
        """Both scenes' QEMUs, on this one's clock."""
        return Recorded({**self.qemus, **other.qemus}, self.now)


def recorded(scenario: str, at: float | str, names: dict[str, str] | None = None, *,
             version: str = SECONDS_VERSION, replies: dict[str, dict[str, Any]] | None = None) -> Recorded:
    """The QEMUs of a recorded lab run (side -> monitor name) ``at`` seconds into it (or at a
    named moment); ``replies``: fixed answers per monitor name (``LIBVIRT_SIGNS``)."""
    entries = tui_run(version, scenario)
    seconds = moment(version, scenario, at) if isinstance(at, str) else at
    now = entries[0]["t"] + seconds
    qemus: dict[str, RecordedQemu | DeadSocket] = {
        name: RecordedQemu(Path(f"{name}.qmp"), version, scenario, side, now, (replies or {}).get(name))
        for side, name in (names or {"src": "src", "dst": "dst"}).items()}
    return Recorded(qemus, now)


def recorded_pairs(scenario: str, count: int, first: float, step: float = 0.8, *,
                   version: str = SECONDS_VERSION) -> Recorded:
    """``count`` source/destination pairs of one recorded run (src00/dst00, src01/dst01,
    ...), each ``step`` seconds further into it than the one before: a dashboard that
    watches many monitors. The clock is the last pair's."""
    qemus: dict[str, RecordedQemu | DeadSocket] = {}
    now = 0.0
    for i in range(count):
        pair = recorded(scenario, first + i * step, {"src": f"src{i:02d}", "dst": f"dst{i:02d}"}, version=version)
        qemus |= pair.qemus
        now = pair.now
    return Recorded(qemus, now)
