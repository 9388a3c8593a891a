"""The rules below the TUI, without QEMU: the switchover's phase table (and a view's
mirror of it), the availability of each action (and why not), the engine's facts of a
pause as a view gets them and the view's pause queue (the convergence advisor:
tests/unit/test_advisor.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from conftest import until
from state_machine import check_moves, reachable

from migtui.address import parse_address
from migtui.engine.wire import session_message, switchover_message
from migtui.errors import PermissionDenied, SocketMissing
from migtui.model.events import QmpEvent
from migtui.model.switchover import (
    ABORTABLE,
    ACTIVE,
    MOVES,
    PAST_CONTINUE,
    TERMINAL,
    Action,
    IllegalMove,
    Outcome,
    Phase,
    SwitchoverResult,
)
from migtui.protocol import lines
from migtui.protocol import messages as m
from migtui.protocol.framing import ProtocolError
from migtui.transport import ConnectionStatus, ConnState
from migtui.tui.pause_queue import AUTO, HELD, PauseQueue
from migtui.view.remote import RemoteSession
from migtui.workflow import availability
from migtui.workflow.deadline import MOVES as DEADLINE_MOVES
from migtui.workflow.deadline import PauseDeadline
from migtui.workflow.deadline import Phase as DeadlinePhase
from migtui.workflow.policy import Policy
from migtui.workflow.session import MIGRATION, MonitorSession
from migtui.workflow.switchover import Switchover, Switchovers


def over_the_wire(message: Any) -> Any:
    """``message`` as a view reads it: encoded, sent, decoded."""
    return lines.decode(lines.encode(message))


def paused(name: str = "src", at: float = 1000.0) -> MonitorSession:
    session = MonitorSession.offline(name)
    session.apply_event(QmpEvent("STOP", {}, at), now=at)
    session.apply_event(QmpEvent("MIGRATION", {"status": "pre-switchover"}, at + 0.001), now=at)
    return session


def moved_on(session: MonitorSession, status: str, at: float = 1001.0) -> None:
    session.apply_event(QmpEvent("MIGRATION", {"status": status}, at), now=at)
    session._notify({MIGRATION})


# ---------------------------------------------------------------------- the phase table


def test_the_table_names_every_phase_and_the_ends_lead_nowhere() -> None:
    check_moves(MOVES, Phase, start=Phase.WAITING, ends=TERMINAL)
    assert not ABORTABLE & PAST_CONTINUE and not ACTIVE & TERMINAL
    # Past migrate-continue there is no way back to an abort, except QEMU refusing it.
    assert MOVES[Phase.CONTINUING] & ABORTABLE == {Phase.STOPPED}
    assert not MOVES[Phase.COMPLETING] & ABORTABLE
    assert reachable(MOVES, Phase.COMPLETING) & ABORTABLE == set()


def test_the_pause_deadlines_table_never_traps_a_pause() -> None:
    """No end: every pause's deadline starts over (IDLE) once the pause is over, whatever
    it was doing; it acts only after it counted, and is done only after it acted."""
    check_moves(DEADLINE_MOVES, DeadlinePhase, start=DeadlinePhase.IDLE, home=DeadlinePhase.IDLE)
    assert all(DeadlinePhase.IDLE in reachable(DEADLINE_MOVES, p) for p in DeadlinePhase)
    assert [p for p in DeadlinePhase if DeadlinePhase.ACTING in DEADLINE_MOVES[p]] == [DeadlinePhase.COUNTING]
    assert [p for p in DeadlinePhase if DeadlinePhase.DONE in DEADLINE_MOVES[p]] == [DeadlinePhase.ACTING]
    # The pause outlived the action: the deadline counts again, it never lapses.
    assert DeadlinePhase.COUNTING in DEADLINE_MOVES[DeadlinePhase.DONE]


class Acting(MonitorSession):
    """An offline session that may be acted on (as the engine's are): its commands fail."""

    @property
    def live(self) -> bool:
        return True


async def test_a_pause_deadline_moves_only_as_its_table_allows() -> None:
    """A pause's deadline runs out, its abort reaches nothing (no QEMU answers), it counts
    again; the pause ends: each move it made is in its table."""
    src = Acting.offline("src")
    moves: list[tuple[DeadlinePhase, DeadlinePhase]] = []
    deadline = PauseDeadline(src, policy=lambda: Policy(max_pause_s=0.05), owner=lambda: "migtui",
                             destination=lambda: None, switchovers=Switchovers())
    move = deadline._move

    def recorded(phase: DeadlinePhase) -> None:
        moves.append((deadline.phase, phase))
        move(phase)

    deadline._move = recorded  # type: ignore[method-assign]
    deadline.start()
    src.apply_event(QmpEvent("STOP", {}, 1000.0), now=1000.0)
    src._notify(src.apply_event(QmpEvent("MIGRATION", {"status": "pre-switchover"}, 1000.001), now=1000.0))
    assert deadline.phase is DeadlinePhase.COUNTING
    await until(lambda: deadline.tries and deadline.phase is DeadlinePhase.COUNTING, 10,
                "the deadline to act, and count again")
    moved_on(src, "cancelled")
    deadline.stop()
    assert deadline.phase is DeadlinePhase.IDLE
    assert [m for m in moves] == [(DeadlinePhase.IDLE, DeadlinePhase.COUNTING),
                                  (DeadlinePhase.COUNTING, DeadlinePhase.ACTING),
                                  (DeadlinePhase.ACTING, DeadlinePhase.DONE),
                                  (DeadlinePhase.DONE, DeadlinePhase.COUNTING),
                                  (DeadlinePhase.COUNTING, DeadlinePhase.IDLE)], moves
    assert all(after in DEADLINE_MOVES[before] for before, after in moves)
    with pytest.raises(RuntimeError):
        deadline._move(DeadlinePhase.DONE)  # IDLE -> DONE is no move


def test_another_client_ends_a_watched_pause() -> None:
    src = paused()
    early = Switchover(MonitorSession.offline("other"))
    assert early.phase is Phase.WAITING and early.can_abort and not early.running
    controller = Switchover(src)
    assert controller.phase is Phase.PAUSED and controller.can_abort and not controller.finished
    moved_on(src, "device")  # not conclusive: nothing happens yet
    assert controller.phase is Phase.PAUSED and controller.result is None
    moved_on(src, "completed", 1001.5)
    assert controller.phase is Phase.DONE and controller.finished and not controller.can_abort
    assert controller.result is not None and controller.result.outcome is Outcome.OTHER_CLIENT
    assert "another client continued the migration" in controller.result.reason
    with pytest.raises(IllegalMove):
        controller.move(Phase.CHECKING)


def test_a_view_tells_waiting_for_the_socket_from_retrying_as_the_engine_does() -> None:
    """The engine's connection error reaches a view with its kind: a missing socket is
    "waiting for the socket" there too, not "retrying"."""
    client = SimpleNamespace(clock=lambda: 1000.0, read_only=False, sessions={})
    for error, word in ((SocketMissing("m1", "m1: no such socket /x"), "waiting"),
                        (PermissionDenied("m1", "m1: permission denied on /x"), "retrying")):
        engines = MonitorSession.offline("m1")
        engines.status = ConnectionStatus(ConnState.LOST, 3, error)
        view = RemoteSession(client, "m1", parse_address("m1=/x"))  # type: ignore[arg-type]
        view.apply_session(over_the_wire(session_message(engines)))
        assert (view.status.word(), view.status.label()) == (engines.status.word(), engines.status.label())
        assert view.status.word() == word


def test_a_view_mirrors_the_phase_the_engine_sends() -> None:
    src = paused()
    controller = Switchover(src)
    client = SimpleNamespace(clock=lambda: 1000.0, read_only=False, sessions={})
    mirror = RemoteSession(client, "src", parse_address("src=/tmp/src.qmp")).switchover  # type: ignore[arg-type]  # a stand-in client
    assert mirror.phase is Phase.WAITING and mirror.can_abort and not mirror.running
    mirror.apply(over_the_wire(switchover_message("src", controller)).state)
    assert mirror.phase is Phase.PAUSED and mirror.can_abort and not mirror.finished
    moved_on(src, "cancelled")
    mirror.apply(over_the_wire(switchover_message("src", controller)).state)
    assert mirror.phase is Phase.DONE and mirror.finished and not mirror.can_abort
    assert mirror.result is not None and mirror.result.outcome is Outcome.OTHER_CLIENT
    with pytest.raises(ProtocolError, match=r"switchover\.state\.phase: expected one of"):
        lines.decode(b'{"op": "switchover", "name": "src", "state": {"phase": "from a newer engine"}}')


def test_a_switchover_made_before_the_pause_waits_for_it() -> None:
    src = MonitorSession.offline("src")
    controller = Switchover(src)
    assert controller.phase is Phase.WAITING
    moved_on(src, "active")
    assert controller.phase is Phase.WAITING and controller.result is None  # not paused yet: not ours to judge
    moved_on(src, "pre-switchover", 1002.0)
    assert controller.phase is Phase.PAUSED and controller.pause_since == 1002.0


# ---------------------------------------------------------------------- availability


def switchover(phase: Phase, action: Action | None = None, result: SwitchoverResult | None = None) -> Any:
    return SimpleNamespace(name="src", phase=phase, action=action, result=result, running=phase in ACTIVE,
                           can_abort=phase in ABORTABLE, finished=phase in TERMINAL)


@pytest.fixture
def acting(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the session were live and connected (an offline one is replayed data)."""
    monkeypatch.setattr(availability, "blocked_reason", lambda *_args: None)


def test_a_replayed_pause_cannot_be_acted_on() -> None:
    src = paused()
    for answer in (availability.resume(src, None), availability.abort(src, None)):
        assert answer == (False, "src: replayed data: migtui cannot act on it")
    assert availability.arm(src).allowed is False and availability.arm(None) == (False, "no monitor selected")


@pytest.mark.usefixtures("acting")
def test_resume_and_abort_follow_the_phase() -> None:
    src = paused()
    assert availability.resume(src, switchover(Phase.PAUSED)) == (True, "")
    assert availability.abort(src, switchover(Phase.PAUSED)) == (True, "")
    busy = switchover(Phase.FINISHING_MIRRORS, Action.RESUME)
    assert availability.resume(src, busy) == (False, "src: resume is under way: it runs once")
    assert availability.abort(src, busy) == (None, "src: resume is under way: it runs once")
    stopped = SwitchoverResult(Action.RESUME, Outcome.STOPPED, "src: mirror failed", abort_offered=True)
    assert availability.abort(src, switchover(Phase.STOPPED, Action.RESUME, stopped)) == (True, "")
    assert availability.resume(src, switchover(Phase.STOPPED, Action.RESUME, stopped)) == (
        False, "src: resume was confirmed already: it runs once")
    done = SwitchoverResult(Action.RESUME, Outcome.COMPLETED, "src: migration completed")
    moved_on(src, "completed")
    assert availability.abort(src, switchover(Phase.CONTINUED, Action.RESUME, done)) == (
        False, "src: too late to abort: migrate-continue was sent")
    other = SwitchoverResult("watch", Outcome.OTHER_CLIENT, "src: another client cancelled the migration")
    assert availability.abort(src, switchover(Phase.DONE, None, other)) == (False, "src: nothing left to abort")
    assert availability.resume(src, switchover(Phase.DONE, None, other)) == (
        None, "this pause is over: src: another client cancelled the migration")
    assert availability.resume(src, None) == (None, "src is not paused in pre-switchover (status completed)")


@pytest.mark.usefixtures("acting")
def test_measuring_waits_while_a_source_is_paused() -> None:
    src, dst = paused("src"), MonitorSession.offline("dst")
    assert availability.measure_dirty_rate(dst, [src, dst]) == (
        False, "src is paused before switchover: its migration shows the rates")


# ---------------------------------------------------------------------- the view's pause queue


def view_of(name: str, **pause: Any) -> RemoteSession:
    client = SimpleNamespace(clock=lambda: 1000.0, read_only=False, sessions={})
    view = RemoteSession(client, name, parse_address(f"{name}=/tmp/{name}.qmp"))  # type: ignore[arg-type]
    view.apply_pause(over_the_wire(m.Pause(name, **pause)))
    return view


def test_the_queue_brings_each_pause_up_once_and_leaves_auto_resume_to_the_engine() -> None:
    src1 = view_of("src1", paused=True, auto=True, notes={AUTO: "auto-resume (engine): src1: checking"})
    src2 = view_of("src2")
    queue = PauseQueue({"src1": src1, "src2": src2})
    news = queue.observe(src1)
    assert news.new and not news.ask  # the engine's auto-resume takes it; the dialog only if it holds back
    assert not queue.observe(src1).new  # the same pause again
    src1.apply_pause(m.Pause("src1", paused=True, auto=True, notes={HELD: "src1: auto-resume held: dst lost"}))
    assert queue.observe(src1).ask  # held back: the operator must decide now
    assert not queue.observe(src1).ask  # said once
    assert queue.banner_notes() == [(HELD, "src1: auto-resume held: dst lost")]
    src2.apply_pause(m.Pause("src2", paused=True))
    assert queue.observe(src2).ask
    queue.enqueue("src2")
    queue.enqueue("src2")
    assert queue.others_paused("src1") == ["src2"]
    src2.apply_pause(m.Pause("src2", paused=False))
    assert queue.observe(src2).ended and queue.next_queued() is None  # it left the queue
    src1.apply_pause(m.Pause("src1", paused=False))
    assert queue.observe(src1).ended and queue.quiet


def test_a_read_only_view_offers_no_action_and_says_why() -> None:
    view = view_of("src", paused=True)
    view.apply_controls(m.Controls("src", {"resume": m.Control(True, "", "continue"), "arm": m.Control(True)}))
    assert view.control("resume").allowed is True
    view._read_only = True
    assert view.control("resume") == m.Control(False, "read-only: migtui will not resume src (a read-only view)",
                                                "continue")
    assert view.control("arm").allowed is False  # never in a read-only view: not offered (the key says why)
    assert view.control("abort").allowed is False  # the engine offers none: not shown at all
