"""A monitor the engine stops watching (a libvirt domain that stopped, was undefined or
left by migration: the engine's ``unwatched``) goes from the dashboard; the selection
moves to the entry that takes its place. Recorded QEMUs: the engine's ``unwatch`` is the
same for every kind of monitor (the libvirt lifecycle that calls it is tested on real
libvirt in tests/engine/test_libvirt_api.py)."""

from __future__ import annotations

from conftest import app_for, screen_text, until
from replay import recorded_pairs
from tui_util import close_dialogs, text

from migtui.tui.widgets.monitor_header import MonitorHeader
from migtui.tui.widgets.monitor_list import MonitorList


async def test_an_unwatched_monitor_goes_and_the_selection_moves_on() -> None:
    async with app_for(recorded_pairs("storage", 2, 3.0)) as view:
        app = view.app
        await close_dialogs(view)
        dash = app.dashboard
        monitors = app.query_one(MonitorList)
        assert monitors.names == ["src00", "dst00", "src01", "dst01"]
        dash.select_by_name("dst00")
        await view.pilot.pause()

        view.engine.unwatch("dst00", "dst00: shut down")
        await until(lambda: "dst00" not in monitors.names, 10, "dst00 gone from the list", lambda: str(monitors.names))
        await view.pilot.pause()
        assert "dst00" not in view.client.sessions and "dst00" not in app.sessions
        assert dash.selected is not None and dash.selected.name == "src01"  # the one that took its place
        assert text(app, MonitorHeader).startswith("src01")
        screen = screen_text(app)
        assert "dst00" not in screen.replace("dst00: shut down", ""), screen
        assert "dst00: shut down" in screen, screen  # what happened, on the flash line

        # Not the selected one: the selection stays; the last one: the one before it.
        view.engine.unwatch("src00", "src00: migrated away")
        await until(lambda: "src00" not in monitors.names, 10, "src00 gone")
        assert dash.selected is not None and dash.selected.name == "src01"
        dash.select_by_name("dst01")
        view.engine.unwatch("dst01", "dst01: destroyed")
        await until(lambda: "dst01" not in monitors.names, 10, "dst01 gone")
        assert dash.selected is not None and dash.selected.name == "src01"
        # None left: an empty dashboard, still running.
        view.engine.unwatch("src01", "src01: undefined")
        # (the emptied dashboard may be between two layouts: no list at that instant is "not yet")
        await until(lambda: not [n for m in app.query(MonitorList) for n in m.names] and app.query(MonitorList), 10,
                    "the list empty")
        await view.pilot.pause()
        assert app.is_running and dash.selected is None and not app.sessions
        assert "src01" not in screen_text(app).replace("src01: undefined", "")
