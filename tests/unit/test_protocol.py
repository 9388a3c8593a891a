"""The engine <-> view protocol: every message round-trips typed, a message that does not
fit its dataclass is refused in one line naming the field, and docs/protocol.md documents
every message and every field (it is checked against migtui/protocol/messages.py here)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from migtui.model.advisor import NOT_CONVERGING, Advice, PassPoint, Remedy
from migtui.model.checks import Check
from migtui.model.pauseclock import PauseClock
from migtui.model.qmpinput import QmpInput
from migtui.model.startoffer import CAPABILITY, PARAMETER, StartDisk, StartOption, StartTarget
from migtui.model.switchover import Outcome, Phase, Step, StepState, SwitchoverResult
from migtui.protocol import framing, lines
from migtui.protocol import messages as m
from migtui.protocol.codec import from_json, to_json

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

SAMPLES: list[m.Message] = [
    m.Hello(framing.VERSION, m.ViewInfo("tui", "/dev/pts/3", 42), read_only=True),
    m.Welcome(framing.VERSION, 4100, "/run/user/0/migtui", 1.0),
    m.Error("one line"),
    m.Watch(1, [m.AddressInfo("src", "unix", "/run/src.qmp"), m.AddressInfo("dst", "tcp", None, "::1", 4444)],
            m.PolicyInfo(True, 30.0, "resume", ["auto_resume"]), read_only=False, interval=0.5),
    m.Subscribe(2),
    m.Request(3, "resume", "src", force=True, expires=1700000030.5),
    m.Request(3, "downtime", "src", value="5 s"),
    m.Start(3, "src", "dst", "unix:/run/dst-from-src.migrate", ["pause-before-switchover", "multifd"],
            {"max-bandwidth": "1 Gbit/s", "multifd-channels": "4"}, ["data0"]),
    m.Status(4, ["unix:/run/src.qmp"]),
    m.Guarding(5, stopping=True),
    m.Stop(6),
    m.Reply(3, True, message="src: resume started", actor="tui", names=["src"], lines=["a"],
            monitors=[{"name": "src", "ok": True}, None]),
    m.Monitor("src", m.AddressInfo("src", "unix", "/run/src.qmp"), 1.0, False),
    m.Feed("src", [QmpInput(1.5, "event", event={"event": "STOP", "data": {}}),
                   QmpInput(2.5, "reply", command="query-migrate", reply={"status": "active"}, asked=2.4)]),
    m.Session("src", "connected", 0, None, None, 0.1, None, "7.2.22", False, 3, read_only=False, generation=1,
              commands=["query-migrate"]),
    m.Switchover("src", m.SwitchoverState(
        Phase.CONTINUED, "resume", "tui", [Step("check", "Check", StepState.DONE, 1.0, 1.1, "ok")],
        SwitchoverResult("resume", Outcome.COMPLETED, "src: completed", downtime_ms=12, pause_ms=3.5),
        None, 1, 1.0, 1.2, 3.5, "dst")),
    m.Pause("src", paused=True, episode=2, clock=PauseClock(100.0, False, 90.0), lost_at=None, owner="migtui",
            driver="", armed_by_engine=["pause-before-switchover"], policy=m.PolicyInfo(),
            deadline=m.Deadline(160.0, "abort", 60.0), no_deadline="", auto=False, notes={"auto": "checking"},
            checklist=[Check("source", True, "paused"), Check("RAM", True, "1 MiB left", info=True)], blocked="",
            destination="dst"),
    m.Controls("src", {"resume": m.Control(True, "", "continue"), "arm": m.Control(False, "armed already")}),
    m.Convergence("src", Advice(
        NOT_CONVERGING, "remaining RAM not shrinking over 2 passes (16, 16 MiB)", "not converging", None, 1000.5,
        3966.0, [Remedy("downtime", "downtime-limit", "300 ms", "5 s", "the 16 MiB left fit 5 s", "a pause")],
        [PassPoint(2, 16 << 20, 3.8), PassPoint(3, 16 << 20)])),
    m.ConvergePolicy("src", True, "downtime-limit 400 ms at pass 4; next 500 ms, then pause",
                     [m.PolicyAct(1000.5, "downtime-limit 300 ms → 400 ms: pass 4 not converging: step 5 of 6")]),
    m.Notice("warning", "src: nothing was changed", "src", attempt=True),
    m.Heartbeat(1700000000.25, 1.0),
    m.Goodbye("stopped by migtui engine stop on pts/3 (pid 4242)"),
    m.Unwatched("a/vm", "a/vm: shut off"),
    m.StartOffer("src", [StartTarget(
        "dst", "unix:/run/dst-from-src.migrate", True,
        [StartOption("pause-before-switchover", CAPABILITY, "stops before switchover", "on")],
        [StartOption("multifd-channels", PARAMETER, "connections", "2", both=True)],
        [StartDisk("data0", "data0-dev", 64 << 20, "data0"), StartDisk("cd0", "ide1-cd0", None, "", "read-only")],
        ""), StartTarget("", note="a QEMU migtui does not watch")]),
]


def test_every_message_has_a_sample() -> None:
    assert {type(s) for s in SAMPLES} == set(m.MESSAGES.values())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: s.OP)
def test_every_message_round_trips(message: m.Message) -> None:
    line = lines.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert lines.decode(line) == message


@pytest.mark.parametrize(("line", "says"), [
    (b'{"op": "hello", "version": true}', "hello.version: expected an integer"),
    (b'{"op": "hello"}', "hello: 'version' is missing"),
    (b'{"op": "request", "id": 1, "action": "resume", "monitor": 7}', "request.monitor: expected a string"),
    (b'{"op": "watch", "id": 1, "monitors": [{"name": "a"}]}', "watch.monitors[0]: 'kind' is missing"),
    (b'{"op": "pause", "name": "a", "clock": {"start": "x", "exact": true}}', "pause.clock.start: expected a number"),
    (b'{"op": "switchover", "name": "a", "state": {"phase": "flying"}}', "switchover.state.phase: expected one of"),
    (b'{"op": "nope"}', "unknown op 'nope'"),
    (b'[1]', "a message must be a JSON object with an 'op'"),
    (b'{' * 100_000, "not a JSON line"),
])
def test_a_message_that_does_not_fit_is_refused_in_one_line(line: bytes, says: str) -> None:
    with pytest.raises(framing.ProtocolError) as caught:
        lines.decode(line)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_fields_are_ignored_and_defaults_fill_in() -> None:
    message = lines.decode(b'{"op": "notice", "level": "info", "text": "hi", "colour": "blue"}')
    assert message == m.Notice("info", "hi")


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _doc_rows() -> dict[str, str]:
    """op -> the text of its table row (fields and meaning)."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `([a-z-]+)` \|(.*)", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def _nested(cls: type) -> tuple[type, ...]:
    """Nested message parts whose fields the doc names inside their parent's row."""
    return {"pause": (PauseClock, m.Deadline, Check),
            "controls": (m.Control,), "switchover": (m.SwitchoverState,), "watch": (m.AddressInfo,),
            "convergence": (Advice, Remedy, PassPoint), "converge-policy": (m.PolicyAct,),
            "start-offer": (StartTarget, StartOption, StartDisk)}.get(
        getattr(cls, "OP", ""), ())


def test_the_doc_names_every_message_and_field() -> None:
    rows = _doc_rows()
    text = DOC.read_text(encoding="utf-8")
    assert f"(version {framing.VERSION})" in text
    missing = []
    for op, cls in m.MESSAGES.items():
        if op in ("hello", "welcome", "error"):  # the handshake: shown as JSON examples
            example = re.search(rf'\{{"op": "{op}"[^\n]*', text)
            if example is None:
                missing.append(f"{op}: no example")
                continue
            missing += [f"{op}.{name}" for name in _fields(cls) if f'"{name}"' not in example.group(0)]
            continue
        row = rows.get(op)
        if row is None:
            missing.append(f"{op}: no row")
            continue
        missing += [f"{op}.{name}" for name in _fields(cls) if name != "name" and not re.search(rf"\b{name}\b", row)]
        for part in _nested(cls):
            missing += [f"{op}.{part.__name__}.{name}" for name in _fields(part)
                        if not re.search(rf"\b{name}\b", row)]
    assert not missing, f"docs/protocol.md does not document: {missing}"


def test_to_json_and_from_json_agree_on_the_policy() -> None:
    policy = m.PolicyInfo(True, 12.5, "wait", ["max_pause", "converge"], converge="steps", completion_timeout_s=8.0,
                          converge_action="pause")
    assert from_json(m.PolicyInfo, to_json(policy)) == policy
