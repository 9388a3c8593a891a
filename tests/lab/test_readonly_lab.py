"""--read-only proof: a full real storage migration watched by read-only sessions.

The lab drives everything on its own control sockets; a command listener records
every command migtui actually wrote to the dashboard sockets. All of them must be in
the read-only allow-list, and the switchover actions must refuse without writing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from qemu.qmp import EventListener

from migtui.address import parse_address
from migtui.errors import ReadOnlyRefused
from migtui.lab.lab import MIRROR_JOB, Lab
from migtui.transport import READ_ONLY_COMMANDS, Monitor
from migtui.workflow.arm import arm
from migtui.workflow.autoresume import AutoResume
from migtui.workflow.session import MonitorSession
from migtui.workflow.switchover import Switchovers
from migtui.workflow.waiting import wait_until

pytestmark = pytest.mark.qemu


async def wait_state(session: MonitorSession, pred: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until ``pred()`` holds, re-checked on every change the session reports."""
    try:
        await wait_until(session, pred, timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def test_read_only_session_watches_a_storage_migration_without_writing(lab: Lab) -> None:
    sent: list[tuple[str, str, dict[str, Any] | None]] = []
    sessions: list[MonitorSession] = []
    for vm in (lab.src, lab.dst):
        monitor = Monitor(parse_address(f"{vm.name}={vm.qmp_path}"), read_only=True)
        def note(name: str, args: dict[str, Any] | None, who: str = vm.name) -> None:
            sent.append((who, name, args))
        monitor.add_command_listener(note)
        session = MonitorSession(monitor, interval=0.1)  # fast polls: many chances to misbehave
        session.start()
        sessions.append(session)
    src, dst = sessions
    try:
        for session in sessions:
            def polled(s: MonitorSession = session) -> bool:
                return s.connected and s.polls > 0
            await wait_state(session, polled, f"{session.name} polled")
        await lab.prepare(storage=True, pause=True, max_bandwidth=1 << 30, downtime_limit=500)
        src.poll_soon(config=True)  # capabilities are otherwise re-read every few seconds
        await wait_state(src, lambda: src.state.armed, "armed seen by a poll")
        await lab.migrate()
        await wait_state(src, lambda: src.state.in_pre_switchover, "pre-switchover")

        # Every action refuses before anything reaches the socket.
        before = len(sent)
        controller = Switchovers().for_pause(src, dst)
        src_monitor = src.monitor
        assert src_monitor is not None
        for action in (lambda: arm(src_monitor), controller.resume, controller.abort):
            with pytest.raises(ReadOnlyRefused) as err:
                await action()
            assert "--read-only" in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(ReadOnlyRefused):
            AutoResume(src, dst, switchovers=Switchovers()).start()
        assert [entry for entry in sent[before:] if not entry[1].startswith("query-")] == []

        # The lab finishes the mirror and continues on its control socket.
        ctl = await lab.control(lab.src)
        completed = EventListener("BLOCK_JOB_COMPLETED")
        with ctl.listen(completed):
            await ctl.execute("block-job-cancel", {"device": MIRROR_JOB})
            await asyncio.wait_for(completed.get(), 30)
        await ctl.execute("migrate-continue", {"state": "pre-switchover"})
        await wait_state(src, lambda: src.state.migration_status == "completed", "source completed")
        await wait_state(dst, lambda: dst.state.running is True, "destination running")
        await asyncio.gather(*(s.poll_once() for s in sessions))  # one more full round after the end
    finally:
        await asyncio.gather(*(s.stop() for s in sessions))

    names = {name for _who, name, _args in sent}
    assert {"qmp_capabilities", "query-migrate", "query-status", "query-block-jobs"} <= names
    assert names <= READ_ONLY_COMMANDS, sorted(names - READ_ONLY_COMMANDS)
    assert {who for who, _n, _a in sent} == {"src", "dst"}
