"""The selection never changes without input (issue 9: quick arrows over unreachable
monitors made it flip between two VMs every half second, at 100 % CPU)."""

from __future__ import annotations

from conftest import app_for, until

from migtui.tui.app import MigtuiApp
from migtui.tui.widgets.monitor_list import MonitorList
from migtui.view.remote import RemoteSession


def idle(app: MigtuiApp) -> bool:
    """Nothing left to handle anywhere on the screen: no message is on its way."""
    nodes = [app, app.screen, *app.screen.walk_children()]
    return all(node._message_queue.empty() for node in nodes)


async def test_quick_arrows_select_the_last_one_and_it_stays() -> None:
    monitors = [f"m{i}=unix:/nonexistent/migtui-test/m{i}.qmp" for i in range(1, 5)]
    async with app_for(monitors, wait=False) as view:
        app, sessions = view.app, view.sessions
        await until(lambda: all(" waiting " in str(app.dashboard.query_one(MonitorList).get_option(s.name).prompt)
                                for s in sessions), 30, "every monitor waiting for its socket")
        dashboard = app.dashboard
        shown: list[str] = []
        select = dashboard.select

        def spy(session: RemoteSession) -> None:
            shown.append(session.name)
            select(session)

        dashboard.select = spy  # type: ignore[method-assign]
        listed = dashboard.query_one(MonitorList)
        for index in (1, 2, 3):  # three presses, all before the app handles the first
            listed.highlighted = index
        # A selection that followed its own stale highlights would keep a message on its way
        # for ever (each one moves the highlight back and queues another).
        await until(lambda: idle(app) and dashboard.selected is sessions[3], 10, "the selection to settle")
        assert listed.highlighted == 3
        assert shown == ["m2", "m3", "m4"][: len(shown)] or shown[-1] == "m4", shown
