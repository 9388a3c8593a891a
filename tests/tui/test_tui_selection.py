"""The selection never changes without input (issue 9: quick arrows over unreachable
monitors made it flip between two VMs every half second, at 100 % CPU)."""

from __future__ import annotations

from migtui.errors import SocketMissing
from migtui.transport import ConnectionStatus, ConnState
from migtui.tui.app import make_app
from migtui.tui.widgets.monitor_list import MonitorList
from migtui.workflow.session import MonitorSession


def lost(name: str) -> MonitorSession:
    error = SocketMissing(name, f"{name}: no such socket /nonexist/{name}")
    return MonitorSession.offline(name, status=ConnectionStatus(ConnState.LOST, 3, error))


async def test_quick_arrows_select_the_last_one_and_it_stays() -> None:
    sessions = [lost(f"m{i}") for i in range(1, 5)]
    app = make_app(sessions=sessions, term="xterm-256color")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        dashboard = app.dashboard
        shown: list[str] = []
        select = dashboard.select
        dashboard.select = lambda session: (shown.append(session.name), select(session))  # type: ignore[method-assign]
        monitors = dashboard.query_one(MonitorList)
        for index in (1, 2, 3):  # three presses, all before the app handles the first
            monitors.highlighted = index
        await pilot.pause(0.3)
        settled = len(shown)
        await pilot.pause(0.5)  # no input now: nothing may be selected any more
        assert len(shown) == settled, f"selected {len(shown) - settled} more times without input: {shown[-6:]}"
        assert dashboard.selected is sessions[3] and monitors.highlighted == 3
        assert shown == ["m2", "m3", "m4"][: len(shown)] or shown[-1] == "m4", shown
