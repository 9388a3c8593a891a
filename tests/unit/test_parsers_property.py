"""Property-based: every parser of QMP replies and events, and the engine protocol, fed
arbitrary JSON, never raises, and passes unknown values through (issue 9).

QEMU versions add and remove fields and statuses (7.2 -> 10.x); a monitor can also be a
wrong or broken peer. Whatever arrives, the model folds it or ignores it. Derandomised
and bounded: the same examples every run, a few seconds in all.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from migtui.model.blockjobs import BlockJob, parse_block_jobs
from migtui.model.capabilities import Capabilities
from migtui.model.dirtyrate import DirtyRateInfo
from migtui.model.events import QmpEvent
from migtui.model.features import QemuFeatures
from migtui.model.migration import MigrationInfo
from migtui.model.runstate import RunState
from migtui.protocol import framing as protocol
from migtui.protocol import lines
from migtui.workflow.ownership import libvirt_signs
from migtui.workflow.session import MonitorSession

SETTINGS = settings(derandomize=True, max_examples=150, deadline=None, database=None)

# Names QEMU really uses, so that the structure gets deep into the parsers.
KEYS = st.sampled_from([
    "status", "total-time", "setup-time", "expected-downtime", "downtime", "ram", "transferred",
    "remaining", "total", "duplicate", "normal", "normal-bytes", "dirty-pages-rate", "mbps",
    "dirty-sync-count", "page-size", "error-desc", "blocked-reasons", "cpu-throttle-percentage",
    "device", "type", "len", "offset", "busy", "paused", "speed", "ready", "io-status", "error",
    "actively-synced", "capability", "state", "running", "singlestep", "dirty-rate", "calc-time",
    "calc-time-unit", "mode", "event", "data", "timestamp", "seconds", "microseconds", "name",
    "node-name", "members", "meta-type", "ret-type", "disk", "compression", "skipped",
    "dirty-limit-throttle-time-per-round", "dirty-limit-ring-full-time", "vfio", "xbzrle-cache",
])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=10), inner, max_size=6),
    max_leaves=25,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=8)


@SETTINGS
@given(JSON)
def test_every_reply_parser_takes_any_json(reply: Any) -> None:
    MigrationInfo.from_qmp(reply)
    parse_block_jobs(reply)
    BlockJob.from_qmp(reply)
    Capabilities.from_qmp(reply)
    DirtyRateInfo.from_qmp(reply)
    RunState.from_qmp(reply)
    QemuFeatures.from_schema(reply)
    libvirt_signs(reply, reply)


@SETTINGS
@given(st.lists(OBJECTS, max_size=4))
def test_lists_of_objects_too(replies: list[dict[str, Any]]) -> None:
    for reply in ([*replies], replies[0] if replies else {}):
        parse_block_jobs(reply)
        Capabilities.from_qmp(reply)
        QemuFeatures.from_schema(reply)


@SETTINGS
@given(st.text(min_size=1, max_size=30), OBJECTS)
def test_an_unknown_status_passes_through(status: str, extra: dict[str, Any]) -> None:
    info = MigrationInfo.from_qmp({**extra, "status": status})
    assert info.status == status
    job = BlockJob.from_qmp({"device": "j", "type": "mirror", "status": status})
    assert job is not None and job.status == status


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["event", "reply"]), JSON, OBJECTS), max_size=12))
def test_a_session_folds_any_sequence_of_events_and_replies(inputs: list[tuple[str, Any, dict[str, Any]]]) -> None:
    """The whole live path (MonitorSession.apply_*: parse, VmState, history) never raises."""
    session = MonitorSession.offline("vm")
    commands = ["query-migrate", "query-status", "query-block-jobs", "query-dirty-rate",
                "query-migrate-capabilities", "query-migrate-parameters", "query-unknown"]
    for i, (kind, value, obj) in enumerate(inputs):
        now = 1000.0 + i
        if kind == "event":
            name = str(obj.get("event", "")) or ["MIGRATION", "STOP", "RESUME", "BLOCK_JOB_COMPLETED",
                                                 "JOB_STATUS_CHANGE", "MIGRATION_PASS"][i % 6]
            session.apply_event(QmpEvent.from_qmp({"event": name, "data": value, "timestamp": obj}), now)
        else:
            session.apply_reply(commands[i % len(commands)], value, now)
    assert isinstance(session.state.in_pre_switchover, bool)  # derived figures hold up too
    assert isinstance(session.state.armed, bool)


@SETTINGS
@given(st.binary(max_size=200))
def test_the_engine_protocol_refuses_garbage_with_one_error(line: bytes) -> None:
    try:
        message = lines.decode(line)
    except protocol.ProtocolError as err:
        assert "\n" not in str(err)
    else:
        assert isinstance(message.OP, str) and message.OP
