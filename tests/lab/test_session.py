"""MonitorSession against real QEMU: polls, events, overlap, hung monitors, dirty rate, replay."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_RATE, QemuBuild, until
from qemu_util import QemuProcess
from replay import tui_run

from migtui.address import parse_address
from migtui.errors import ReadOnlyRefused
from migtui.lab.lab import Lab
from migtui.model.coerce import as_mapping
from migtui.model.events import QmpEvent
from migtui.model.qmpinput import QmpInput
from migtui.transport import ConnState, Monitor
from migtui.workflow import session as kinds
from migtui.workflow.session import MonitorSession


@pytest.fixture
def qemu(tmp_path: Path) -> Iterator[QemuProcess]:
    proc = QemuProcess(tmp_path / "vm.qmp", machine="pc").start()
    try:
        yield proc
    finally:
        proc.kill()  # SIGKILL works on a SIGSTOPped QEMU too


def make_session(path: Path, name: str = "vm", *, interval: float = 0.1, read_only: bool = False,
                 command_timeout: float = 5.0) -> MonitorSession:
    monitor = Monitor(parse_address(f"{name}=unix:{path}"), read_only=read_only,
                      command_timeout=command_timeout, backoff=(0.05, 0.2))
    return MonitorSession(monitor, interval=interval)


@pytest.fixture
async def sessions() -> AsyncIterator[list[MonitorSession]]:
    started: list[MonitorSession] = []
    yield started
    await asyncio.gather(*(s.stop() for s in started))


class Recorder:
    def __init__(self, session: MonitorSession) -> None:
        self.changes: list[frozenset[str]] = []
        session.add_change_listener(lambda _s, k: self.changes.append(k))

    def saw(self, kind: str) -> bool:
        return any(kind in k for k in self.changes)


@pytest.mark.qemu
async def test_polls_fill_the_state(qemu: QemuProcess, sessions: list[MonitorSession]) -> None:
    session = make_session(qemu.socket_path)
    rec = Recorder(session)
    sessions.append(session)
    session.start()
    await until(lambda: session.polls >= 2, what="two polls")
    assert session.connected and session.status.label() == "connected"
    assert session.state.run_state is not None and session.state.run_state.status == "running"
    assert session.state.migration_status == "none"
    assert session.downtime_limit_ms == 300  # query-migrate-parameters, read on connect
    assert session.state.capabilities.supports("pause-before-switchover")
    assert not session.state.armed
    assert session.poll_error is None
    assert rec.saw(kinds.CONNECTION) and rec.saw(kinds.RUN_STATE) and rec.saw(kinds.CONFIG)


@pytest.mark.qemu
async def test_quiet_polls_tell_nobody(qemu: QemuProcess, sessions: list[MonitorSession]) -> None:
    """An idle VM answers the same every time: no change, no repaint."""
    session = make_session(qemu.socket_path, interval=0.05)
    sessions.append(session)
    session.start()
    await until(lambda: session.polls >= 2, what="first polls")
    rec = Recorder(session)
    start = session.polls
    await until(lambda: session.polls >= start + 5, what="five more polls")
    assert rec.changes == []


@pytest.mark.qemu
async def test_events_apply_at_once(qemu: QemuProcess, sessions: list[MonitorSession]) -> None:
    session = make_session(qemu.socket_path, interval=60)  # no poll will help
    rec = Recorder(session)
    sessions.append(session)
    session.start()
    await until(lambda: session.polls >= 1, what="first poll")
    assert session.monitor is not None
    await session.monitor.execute("stop")
    await until(lambda: session.state.run_state is not None and not session.state.run_state.running,
                timeout=30, what="STOP applied (no poll comes for 60 s)")
    assert [ev.name for ev in session.state.events][-1] == "STOP"
    assert session.event_count == 1
    assert rec.saw(kinds.EVENTS) and rec.saw(kinds.RUN_STATE)
    # The run-state event also brought the next poll forward: the exact RunState arrives.
    await until(lambda: session.state.run_state is not None
                and session.state.run_state.status == "paused", timeout=30, what="poll after STOP")


@pytest.mark.qemu
async def test_polls_never_overlap_and_a_hung_qemu_is_reported(
    qemu: QemuProcess, sessions: list[MonitorSession]
) -> None:
    session = make_session(qemu.socket_path, interval=0.05, command_timeout=0.3)
    sessions.append(session)
    monitor = session.monitor
    assert monitor is not None
    in_flight: dict[str, int] = {}
    most: dict[str, int] = {}
    real_execute = monitor.execute

    async def counting(cmd: str, args: Any = None, **kw: Any) -> Any:
        in_flight[cmd] = in_flight.get(cmd, 0) + 1
        most[cmd] = max(most.get(cmd, 0), in_flight[cmd])
        try:
            return await real_execute(cmd, args, **kw)
        finally:
            in_flight[cmd] -= 1

    real_soon = monitor.execute_soon

    lone: list[str] = []

    def counting_soon(cmd: str, done: Any) -> None:  # an idle monitor's lone query-migrate
        lone.append(cmd)
        in_flight[cmd] = in_flight.get(cmd, 0) + 1
        most[cmd] = max(most.get(cmd, 0), in_flight[cmd])

        def answered(result: Any) -> None:
            in_flight[cmd] -= 1
            done(result)

        try:
            real_soon(cmd, answered)
        except Exception:
            in_flight[cmd] -= 1
            raise

    monitor.execute = counting  # type: ignore[method-assign]
    monitor.execute_soon = counting_soon  # type: ignore[method-assign]
    session.start()
    await until(lambda: session.polls >= 3, what="polls")
    qemu.pause()  # SIGSTOP: QEMU answers nothing
    try:
        # A round wanted now (an event, a control) while a poll waits on the stopped QEMU: it
        # waits for that poll's end (its timeout), it does not go out beside it.
        await until(lambda: in_flight.get("query-migrate", 0) == 1, what="a poll waiting on the stopped QEMU")
        session.poll_soon()
        await until(lambda: session.poll_error is not None, what="poll error")
        assert session.poll_error is not None
        assert "no reply to" in session.poll_error and "within 0.3 s" in session.poll_error
        # Polls go on while QEMU answers nothing, each one once the last one timed out.
        polls = session.polls
        await until(lambda: session.polls >= polls + 3, what="three more polls, all timing out")
    finally:
        qemu.resume()
    await until(lambda: session.poll_error is None, what="recovery")
    await until(lambda: len(lone) >= 3, what="idle again: its lone query-migrate asked from the ticks")
    assert most and max(most.values()) == 1, most  # never two of one query at once


@pytest.mark.qemu
async def test_a_hung_monitor_does_not_slow_another(tmp_path: Path, sessions: list[MonitorSession]) -> None:
    hung = QemuProcess(tmp_path / "hung.qmp", machine="pc").start()
    fine = QemuProcess(tmp_path / "fine.qmp", machine="pc").start()
    try:
        # The hung one waits for its answer longer than this test lasts.
        a = make_session(hung.socket_path, "hung", interval=0.05, command_timeout=300.0)
        b = make_session(fine.socket_path, "fine", interval=0.05)
        sessions += [a, b]
        a.start()
        b.start()
        await until(lambda: a.polls >= 1 and b.polls >= 1, what="both polled")
        hung.pause()
        a_polls, b_polls = a.polls, b.polls
        await until(lambda: b.polls >= b_polls + 8, what="eight more polls of the one that answers")
        assert a.polls - a_polls <= 1  # meanwhile the hung one waits in its own poll
    finally:
        hung.resume()
        hung.kill()
        fine.kill()


@pytest.mark.qemu
async def test_reconnects_when_the_socket_appears(tmp_path: Path, sessions: list[MonitorSession]) -> None:
    path = tmp_path / "late.qmp"
    session = make_session(path, "late")
    rec = Recorder(session)
    sessions.append(session)
    session.start()
    await until(lambda: session.status.state is ConnState.LOST, what="lost")
    assert session.status.error is not None
    assert "late.qmp" in session.status.label()
    proc = QemuProcess(path, machine="pc").start()
    try:
        await until(lambda: session.connected and session.polls >= 1, what="reconnected")
        assert session.state.run_state is not None
        assert rec.saw(kinds.CONNECTION)
        proc.kill()  # a crash: the session goes to retrying, never raises
        await until(lambda: session.status.state in (ConnState.RETRYING, ConnState.LOST), what="dropped")
        proc.start()
        await until(lambda: session.connected, what="back")
    finally:
        proc.kill()


@pytest.mark.qemu
async def test_measure_dirty_rate(qemu: QemuProcess, sessions: list[MonitorSession]) -> None:
    session = make_session(qemu.socket_path, interval=0.2)
    rec = Recorder(session)
    sessions.append(session)
    session.start()
    await until(lambda: session.polls >= 1, what="first poll")
    task = asyncio.create_task(session.measure_dirty_rate(1))
    await until(lambda: session.measuring, what="measuring")
    info = await asyncio.wait_for(task, 10)
    assert info.measured and info.dirty_rate_mib_per_s is not None
    assert not session.measuring
    assert session.state.dirty_rate is not None and session.state.dirty_rate.measured
    assert rec.saw(kinds.DIRTY_RATE)


@pytest.mark.qemu
async def test_read_only_refuses_to_measure(qemu: QemuProcess, sessions: list[MonitorSession]) -> None:
    session = make_session(qemu.socket_path, read_only=True)
    sessions.append(session)
    session.start()
    await until(lambda: session.polls >= 1, what="first poll")  # read-only still polls
    with pytest.raises(ReadOnlyRefused):
        await session.measure_dirty_rate(1)
    assert not session.measuring


async def test_stop_is_clean_when_never_connected(tmp_path: Path) -> None:
    session = make_session(tmp_path / "nothing.qmp")
    session.start()
    await until(lambda: session.status.state is ConnState.LOST, what="lost")
    await asyncio.wait_for(session.stop(), 5)
    assert session.status.state is ConnState.CLOSED


def test_replay_of_a_recorded_storage_migration(version: str) -> None:
    entries = tui_run(version, "storage")
    src = MonitorSession.offline("src")
    changes: list[frozenset[str]] = []
    src.add_change_listener(lambda _s, k: changes.append(k))
    src.replay([e for e in entries if e["side"] == "src"])
    assert len(changes) == 1  # told once, at the end
    state = src.state
    assert state.migration_status == "completed"
    assert [c.status for c in state.status_changes][:3] == ["setup", "active", "pre-switchover"]
    assert state.final_downtime_ms is not None
    assert state.armed
    assert src.downtime_limit_ms == 300
    job = state.block_jobs["mirror-data0"]
    assert job.ended == "completed" and job.type == "mirror"
    dirty = [s.dirty_rate_bytes_per_s for s in state.history if s.dirty_rate_bytes_per_s]
    assert dirty and min(dirty) > 1024 * 1024  # the paced guest dirties ~2.8 MiB/s


class Sent:
    """Every command the session's monitor writes, and every input its listeners are told."""

    def __init__(self, session: MonitorSession) -> None:
        assert session.monitor is not None
        self.commands: list[str] = []
        self.at: list[float] = []  # the loop's time of each command's write
        self.inputs: list[QmpInput] = []
        session.monitor.add_command_listener(self._written)
        session.add_input_listener(self.inputs.append)

    def _written(self, name: str, _args: Any) -> None:
        self.commands.append(name)
        self.at.append(asyncio.get_running_loop().time())


async def _other_client(path: Path) -> Any:
    from qemu.qmp import QMPClient

    client = QMPClient("another client")
    await client.connect(str(path))
    return client


@pytest.mark.qemu
async def test_an_idle_monitor_without_migration_events_is_asked_query_migrate_only(
    tmp_path: Path, sessions: list[MonitorSession]
) -> None:
    """No migration, ``events`` off: only a migration's start comes without an event, so
    only query-migrate goes out, every second interval (IDLE_ASK_INTERVALS), and an unchanged
    answer is no news for input listeners (the engine's views). A migration another client
    starts is seen."""
    proc = QemuProcess(tmp_path / "vm.qmp", machine="pc", extra_sockets=1).start()
    try:
        session = make_session(proc.socket_path, interval=0.05)
        sessions.append(session)
        sent = Sent(session)
        session.start()
        await until(lambda: session.polls >= 3 and session.idle, what="idle after the first rounds")
        assert not session.state.capabilities.enabled("events")
        commands, inputs, polls = len(sent.commands), len(sent.inputs), session.polls
        await until(lambda: session.polls >= polls + 5, what="five more rounds")
        assert set(sent.commands[commands:]) == {"query-migrate"}, sent.commands[commands:]
        gaps = [b - a for a, b in itertools.pairwise(sent.at[commands:])]
        # Never sooner (a loaded machine only makes them later): what these rounds save.
        assert min(gaps) >= (kinds.IDLE_ASK_INTERVALS - 0.5) * 0.05, gaps
        assert sent.inputs[inputs:] == []
        other = await _other_client(proc.extra_sockets[0])
        try:
            await other.execute("migrate", {"uri": "exec:cat > /dev/null"})
            await until(lambda: session.state.migration_status != "none", what="the migration seen by a poll")
            assert any(e.command == "query-migrate" for e in sent.inputs[inputs:])
        finally:
            await other.disconnect()
    finally:
        proc.kill()


@pytest.mark.qemu
async def test_the_destination_of_a_precopy_is_asked_nothing_until_it_ends(
    lab: Lab, sessions: list[MonitorSession]
) -> None:
    """A destination answers query-migrate, query-status and query-block-jobs the same from
    "active" until its migration ends (measured on 7.2 and 10.0): with ``events`` on (the lab
    turns it on there) it is idle between its seldom rounds, and the end (MIGRATION
    completed, RESUME) brings a full round at once."""
    await lab.prepare(storage=False, pause=False, max_bandwidth=1 << 20)  # 1 MiB/s: it never converges
    src = make_session(lab.src.qmp_path, "src", interval=0.05)
    dst = make_session(lab.dst.qmp_path, "dst", interval=0.05)
    sessions += [src, dst]
    sent = Sent(dst)
    src.start()
    dst.start()
    await until(lambda: dst.polls >= 1, what="the destination's first round")
    await lab.migrate()
    await until(lambda: dst.state.migration_status == "active", what="the destination active")
    active = len(sent.commands)  # the MIGRATION events bring a full round: idle once it is over
    await until(lambda: "query-migrate-parameters" in sent.commands[active:] and dst.idle, what="the destination idle")
    commands, polls = len(sent.commands), src.polls
    await until(lambda: src.polls >= polls + 10, what="ten of the source's rounds")  # twenty of its intervals
    assert sent.commands[commands:] == [], sent.commands[commands:]
    control = await lab.control(lab.src)
    await control.execute("migrate-set-parameters", {"max-bandwidth": 1 << 30})  # now it completes
    await until(lambda: dst.state.migration_status == "completed" and dst.state.running, what="the destination running")
    await until(lambda: "query-status" in sent.commands[commands:], what="a full round after the end")


@pytest.mark.qemu
async def test_a_paused_destination_without_migration_events_shows_its_end(
    qemu_build: QemuBuild | None, sessions: list[MonitorSession]
) -> None:
    """A destination started with -S (as libvirt starts it) and ``events`` off (a bare QEMU's
    default): its migration's end comes with no event at all (no MIGRATION, no RESUME: it goes
    from inmigrate to paused). The idle query-migrate sees "completed", and the next round
    must read the new run state (it stayed inmigrate: only query-migrate was asked)."""
    async with Lab(disk=False, memory_mib=64, dirty_mib=4, dirty_rate_mib_s=FIXTURE_RATE,
                   paused_destination=True) as lab:
        await lab.prepare(storage=False, pause=False, max_bandwidth=1 << 20)  # 1 MiB/s: it never converges
        dst_control = await lab.control(lab.dst)
        await dst_control.execute("migrate-set-capabilities",
                                  {"capabilities": [{"capability": "events", "state": False}]})
        dst = make_session(lab.dst.qmp_path, "dst", interval=0.05)
        sessions.append(dst)
        dst.start()
        await until(lambda: dst.polls >= 1, what="the destination's first round")
        await lab.migrate()
        await until(lambda: dst.state.migration_status == "active", what="the destination active")
        control = await lab.control(lab.src)
        await control.execute("migrate-set-parameters", {"max-bandwidth": 1 << 30})  # now it completes
        await until(lambda: dst.state.migration_status == "completed", what="the end, seen by query-migrate")
        assert as_mapping(await dst_control.execute("query-status")).get("status") == "paused"  # no event said so
        polls = dst.polls
        await until(lambda: dst.polls >= polls + 2, what="two more rounds")
        assert dst.state.run_state is not None and dst.state.run_state.status == "paused", dst.state.run_state


@pytest.mark.qemu
async def test_an_idle_monitor_with_migration_events_is_asked_nothing_until_an_event(
    tmp_path: Path, sessions: list[MonitorSession]
) -> None:
    """``events`` on: the MIGRATION event says when a migration starts, so between its
    seldom idle rounds the session asks nothing; the event brings a full round at once."""
    proc = QemuProcess(tmp_path / "vm.qmp", machine="pc", extra_sockets=1).start()
    # A clock: a QEMU with ``events`` off, whose idle session asks query-migrate every interval.
    clock_qemu = QemuProcess(tmp_path / "clock.qmp", machine="pc").start()
    try:
        other = await _other_client(proc.extra_sockets[0])
        try:
            await other.execute("migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]})
            session = make_session(proc.socket_path, interval=0.05)
            clock = make_session(clock_qemu.socket_path, "clock", interval=0.05)
            sessions += [session, clock]
            sent = Sent(session)
            session.start()
            clock.start()
            await until(lambda: session.polls >= 1 and session.idle and clock.idle, what="both idle")
            assert session.state.capabilities.enabled("events")
            commands, ticks = len(sent.commands), clock.polls
            await until(lambda: clock.polls >= ticks + 10, what="ten intervals")
            assert sent.commands[commands:] == []
            await other.execute("migrate", {"uri": "exec:cat > /dev/null"})
            await until(lambda: session.state.migration_status != "none", what="the MIGRATION event applied")
            assert session.state.status_changes[0].source == "event"
            await until(lambda: "query-status" in sent.commands[commands:], what="a full round after the event")
        finally:
            await other.disconnect()
    finally:
        proc.kill()
        clock_qemu.kill()


@pytest.mark.qemu
async def test_a_migrating_source_is_asked_each_round_only_what_moves_without_an_event(
    lab: Lab, sessions: list[MonitorSession]
) -> None:
    """During a migration QEMU tells a run state's change and a new or ended job by events
    whatever its capabilities: a round asks query-migrate, and query-block-jobs while a job
    runs (its progress has no event); query-status only in a full round (at an event, a
    status change, every CONFIG_EVERY_S)."""
    await lab.prepare(storage=True, pause=False, max_bandwidth=1 << 20)  # 1 MiB/s: it never converges
    src = make_session(lab.src.qmp_path, "src", interval=0.05)
    sessions.append(src)
    sent = Sent(src)
    src.start()
    await until(lambda: src.polls >= 1, what="the first round")
    await lab.migrate()
    await until(lambda: src.state.migration_status == "active", what="the migration active")
    assert any(not job.is_finished for job in src.state.block_jobs.values()), src.state.block_jobs  # the mirror
    commands, polls = len(sent.commands), src.polls
    await until(lambda: src.polls >= polls + 40, what="forty rounds")
    asked = sent.commands[commands:]
    rounds = asked.count("query-migrate")
    assert rounds >= 40 and asked.count("query-block-jobs") == rounds, asked  # the mirror's progress
    assert asked.count("query-status") < rounds / 4, asked  # every round before
    # An event that may change the run state brings a full round at once.
    control = await lab.control(lab.src)
    commands = len(sent.commands)
    await control.execute("stop")
    await until(lambda: "query-status" in sent.commands[commands:] and not src.state.running, what="the STOP's round")
    # A guest's suspend changes the run state with no STOP (the lab's guest cannot suspend:
    # the event QEMU sends then, as the session gets it).
    # Just after the STOP's full round, the next one by the clock is 5 s away.
    commands = len(sent.commands)
    src._on_event(QmpEvent.from_qmp({"event": "SUSPEND", "data": {},
                                     "timestamp": {"seconds": int(time.time()), "microseconds": 0}}))
    await until(lambda: sent.commands[commands:].count("query-migrate") >= 3, what="three rounds")
    after = sent.commands[commands:]
    two_rounds = after[:after.index("query-migrate", after.index("query-migrate", 1) + 1)]
    assert "query-status" in two_rounds, after


@pytest.mark.qemu
async def test_a_status_seen_by_a_lean_round_brings_a_full_round(
    lab: Lab, sessions: list[MonitorSession]
) -> None:
    """``events`` off: a migration's end is seen by query-migrate only, and the run state
    (finish-migrate -> postmigrate) changes with it with no event: the status change brings the
    full round that reads it (the idle rounds after the end never ask)."""
    await lab.prepare(storage=False, pause=True)
    control = await lab.control(lab.src)
    await control.execute("migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": False}]})
    src = make_session(lab.src.qmp_path, "src", interval=0.05)
    sessions.append(src)
    src.start()
    await until(lambda: src.polls >= 1, what="the first round")
    await lab.migrate()
    await until(lambda: src.state.in_pre_switchover and src.state.run_state is not None
                and src.state.run_state.status == "finish-migrate", what="the pause, and the STOP's round")
    await control.execute("migrate-continue", {"state": "pre-switchover"})
    await until(lambda: src.state.migration_status == "completed", what="the end, seen by query-migrate")
    await until(lambda: src.state.run_state is not None and src.state.run_state.status == "postmigrate",
                what="the run state after the end")
