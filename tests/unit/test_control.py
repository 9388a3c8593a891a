"""Migration control without QEMU: when ``x`` may abort a migration (and why not) -- the
answer the engine sends as ``controls``."""

from __future__ import annotations

from typing import Any

import pytest

from migtui.model.events import QmpEvent
from migtui.workflow import control
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
