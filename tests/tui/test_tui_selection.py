"""The selection never changes without input (issue 9: quick arrows over unreachable
monitors made it flip between two VMs every half second, at 100 % CPU)."""

from __future__ import annotations

from conftest import app_for, until
from textual import events
from textual.widgets import Input

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


async def test_j_k_g_G_and_a_filter_move_through_a_long_list() -> None:
    """Issue 16: htop's and k9s's keys on the monitor list, and ``/`` to narrow it by name."""
    monitors = [f"{name}=unix:/nonexistent/migtui-test/{name}.qmp"
                for name in ("web1", "web2", "db1", "db2", "cache1")]
    async with app_for(monitors, wait=False) as view:
        app = view.app
        dashboard = app.dashboard
        listed = dashboard.query_one(MonitorList)

        async def selected_after(*keys: str) -> str:
            await view.press(*keys)
            await until(lambda: idle(app), 10, "the keys handled")
            assert dashboard.selected is not None
            return dashboard.selected.name

        assert await selected_after("j", "j") == "db1"
        assert await selected_after("k") == "web2"
        assert await selected_after("G") == "cache1"
        assert await selected_after("g") == "web1"
        assert await selected_after("slash", "d", "b") == "db1"  # the first that matches
        assert listed.names == ["db1", "db2"] and listed.option_count == 2
        assert await selected_after("enter") == "db1"  # the filter stays; the list has the keys again
        assert await selected_after("j") == "db2"
        assert await selected_after("tab") == "db1"  # tab goes round what is shown
        await selected_after("escape")  # clears it: every monitor again, the selection kept
        assert listed.option_count == 5 and dashboard.selected.name == "db1"  # type: ignore[union-attr]


async def test_what_is_typed_right_after_the_slash_goes_to_the_filter() -> None:
    """``/`` then a name at once (a paste, a quick hand): every key after the ``/`` is the
    filter's. Textual moves focus a turn later, and the keys already queued went to the
    dashboard: ``m`` of "mx" opened the start screen instead."""
    monitors = [f"{name}=unix:/nonexistent/migtui-test/{name}.qmp" for name in ("web1", "mx1", "mx2")]
    async with app_for(monitors, wait=False) as view:
        app = view.app
        for key, character in (("slash", "/"), ("m", "m"), ("x", "x")):
            app.post_message(events.Key(key, character))  # as the driver posts them: no turn between
        await until(lambda: idle(app), 10, "the keys handled")
        assert app.dashboard.query_one("#filter", Input).value == "mx"
        assert app.screen is app.dashboard
        assert app.dashboard.query_one(MonitorList).names == ["mx1", "mx2"]
        app.post_message(events.Key("slash", "/"))  # in the filter, a character (libvirt's HOST/DOMAIN)
        await until(lambda: idle(app), 10, "the key handled")
        assert app.dashboard.query_one("#filter", Input).value == "mx/"
