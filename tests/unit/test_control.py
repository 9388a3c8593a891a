"""Migration control without QEMU: when ``x`` may abort a migration (and why not), and when a
remedy may be taken -- the answers the engine sends as ``controls``."""

from __future__ import annotations

from typing import Any

import pytest

from migtui.errors import CommandFailed, MigtuiError
from migtui.model.advisor import CONVERGING, NOT_CONVERGING, UNKNOWN, Advice, Remedy
from migtui.model.events import QmpEvent
from migtui.workflow import control
from migtui.workflow import converge_policy as cp
from migtui.workflow.policy import Policy
from migtui.workflow.session import MonitorSession


class Session(MonitorSession):
    """An offline session whose QEMU has (or lacks) QEMU 10.0's schema marker."""

    def __init__(self, status: str, *, qemu10: bool, **kwargs: Any) -> None:
        super().__init__(None, name="src", **kwargs)
        self._qemu10 = qemu10
        self.apply_reply("query-migrate", {"status": status, "ram": {"remaining": 1, "total": 2}}, now=1.0)

    @property
    def live(self) -> bool:  # as the engine's own sessions are
        return True

    def supports(self, command: str) -> bool:
        return self._qemu10 or command != control.POSTCOPY_CANCEL_REFUSED_MARKER


@pytest.mark.parametrize("status", ["setup", "active", "wait-unplug"])
def test_a_migration_before_its_switchover_may_be_aborted(status: str) -> None:
    assert control.abort(Session(status, qemu10=True), None).allowed is True
    assert control.abort(Session(status, qemu10=False), None, libvirt=True).allowed is None


def test_after_postcopy_began_qemu_10_refuses_and_older_qemu_only_while_paused() -> None:
    refused = control.abort(Session("postcopy-paused", qemu10=True), None)
    assert refused.allowed is None and "QEMU refuses migrate_cancel once postcopy has started (10.0+)" in refused.reason
    assert control.abort(Session("postcopy-paused", qemu10=False), None).allowed is True
    running = control.abort(Session("postcopy-active", qemu10=False), None)
    assert running.allowed is None and "only a paused postcopy may be cancelled" in running.reason
    assert control.abort_does(Session("postcopy-paused", qemu10=False), False).startswith(
        "migrate_cancel after postcopy began")


@pytest.mark.parametrize("status", ["none", "cancelling", "completed", "cancelled", "failed"])
def test_nothing_to_abort_is_not_offered(status: str) -> None:
    answer = control.abort(Session(status, qemu10=True), None)
    assert answer.allowed is False and answer.reason == f"src: nothing to abort (migration status {status})"


def test_a_pause_before_switchover_is_the_switchovers_abort() -> None:
    session = Session("active", qemu10=True)
    session.apply_event(QmpEvent("MIGRATION", {"status": "pre-switchover"}, 2.0), now=2.0)
    assert control.abort(session, None).allowed is True


def test_a_remedy_only_while_proposed_for_a_running_pre_copy() -> None:
    advice = Advice(NOT_CONVERGING, "stuck", remedies=[Remedy("downtime", "downtime-limit", "300 ms", "5 s", "fits")])
    active = Session("active", qemu10=True)
    assert control.remedy(active, advice, "downtime").allowed is True
    bandwidth = control.remedy(active, advice, "bandwidth")
    assert bandwidth.allowed is None and bandwidth.reason == "src: max-bandwidth is not what limits this migration"
    throttle = control.remedy(active, advice, "throttle")
    assert throttle.allowed is None and "auto-converge is off" in throttle.reason
    assert control.remedy(Session("completed", qemu10=True), advice, "downtime").allowed is False
    assert control.action_words("downtime") == "change downtime-limit of" and control.action_words("abort") == "abort"
    assert control.read_value("downtime", "downtime-limit", "5 s") == (5000, "5 s")
    assert control.read_value("bandwidth", "max-bandwidth", "10 Gbit/s") == (1_250_000_000, "1.16 GiB/s")


class Refusing(Session):
    """A QEMU that refuses every migrate-set-parameters; records what reached it."""

    sent: list[tuple[str, Any]]

    async def execute(self, cmd: str, args: Any = None, *, generation: int | None = None) -> Any:
        self.sent.append((cmd, args))
        raise CommandFailed("src", cmd, "GenericError",
                            "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds")


async def test_a_bad_value_sends_nothing_and_a_refusal_is_one_line_naming_the_parameter() -> None:
    advice = Advice(NOT_CONVERGING, "stuck", remedies=[Remedy("downtime", "downtime-limit", "300 ms", "5 s", "fits")])
    session = Refusing("active", qemu10=True)
    session.sent = []
    with pytest.raises(MigtuiError, match=r"^downtime-limit: 'soon' is not a value"):
        await control.apply_remedy(session, advice, "downtime", "soon")
    assert session.sent == []
    with pytest.raises(MigtuiError) as caught:
        await control.apply_remedy(session, advice, "downtime")  # the proposal
    assert session.sent == [("migrate-set-parameters", {"downtime-limit": 5000})]
    assert str(caught.value) == ("src: QEMU refused downtime-limit 5 s: Parameter 'downtime_limit' expects an"
                                 " integer in the range of 0 to 2000000 milliseconds")


def test_the_destination_is_not_where_a_migration_is_aborted() -> None:
    dst = Session("active", qemu10=True)
    dst.apply_reply("query-status", {"status": "inmigrate", "running": False}, now=1.0)
    answer = control.abort(dst, None)
    assert answer.allowed is False and answer.reason == "src: the destination of this migration: abort it on its source"


# ---------------------------------------------------------------------- the convergence policy


def migrating(number: int, *, total_ms: int = 1000, ram_total: int = 128 << 20) -> MonitorSession:
    """An offline session in pass ``number`` of an active migration, ``total_ms`` in."""
    session = MonitorSession(None, name="src")
    session.apply_reply("query-migrate", {"status": "active", "total-time": total_ms,
                                          "ram": {"remaining": 16 << 20, "total": ram_total,
                                                  "dirty-sync-count": number}}, now=1.0)
    return session


def test_the_steps_raise_the_limit_once_a_pass_after_the_third_then_the_completion_action() -> None:
    run = cp.ConvergeRun(Policy(converge="steps", converge_action="postcopy"), 0)
    assert run.decide(migrating(3).state, 300, NOT_CONVERGING) is None  # not before pass 4
    assert run.decide(migrating(4).state, 300, CONVERGING) is None  # nothing to do for a converging one
    act = run.decide(migrating(4).state, 300, NOT_CONVERGING)
    assert act == cp.Act(cp.DOWNTIME, "pass 4 not converging: step 5 of 6", 400)  # never lowered: above 300
    run.stepped_at = 4
    assert run.decide(migrating(4).state, 400, NOT_CONVERGING) is None  # one step a pass
    final = run.decide(migrating(6).state, 500, NOT_CONVERGING)
    assert final == cp.Act(cp.PAUSE, "pass 6 still not converging after the last step (500 ms); postcopy-ram was"
                                     " off at the start: pause instead")
    run.overridden = "tui took over (downtime)"
    assert run.decide(migrating(7).state, 500, NOT_CONVERGING) is None


def test_the_completion_timeout_counts_per_gib_from_qemus_total_time_with_a_2_gib_floor() -> None:
    run = cp.ConvergeRun(Policy(completion_timeout_s=4.0, converge_action="abort"), 0)
    assert run.decide(migrating(2, total_ms=7900).state, 300, UNKNOWN) is None
    act = run.decide(migrating(2, total_ms=8000).state, 300, UNKNOWN)
    assert act == cp.Act(cp.ABORT, "completion timeout: still copying after 8.0 s (4 s/GiB x 2 GiB)")
    assert cp.timeout_of(Policy(completion_timeout_s=4.0), 8 << 30) == 32.0


def test_a_later_watch_changes_only_the_flags_it_gives() -> None:
    first = Policy(converge="steps", converge_action="pause", explicit=frozenset({"converge", "converge_action"}))
    later = first.merged(Policy(completion_timeout_s=3.0, explicit=frozenset({"completion_timeout"})))
    assert (later.converge, later.converge_action, later.completion_timeout_s) == ("steps", "pause", 3.0)
    assert Policy.from_json(later.to_json()) == later
