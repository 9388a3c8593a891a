"""Snapshots of the key screens at 80x24 and 120x40 (pytest-textual-snapshot).

Fed from real QMP data recorded from lab migrations on every recorded QEMU
(tests/fixtures/qmp/<version>/tui/, see tests/fixtures/record_tui.py) through
``MonitorSession.replay``, at named moments of each run, with a fixed clock, UTC
timestamps and fixed names, so every run draws the same screen; the version is in
each test id and snapshot name. Regenerate with
``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import timezone
from pathlib import Path

import pytest
from replay import replayed, replayed_pairs, version  # noqa: F401 (version: a fixture)

from migtui.address import parse_address
from migtui.errors import MonitorError
from migtui.transport import ConnectionStatus, ConnState, Monitor
from migtui.tui.app import MigtuiApp, make_app
from migtui.workflow.session import MonitorSession

SMALL = (80, 24)
LARGE = (120, 40)


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the CI terminal says, snapshots are taken in one known setting.
    monkeypatch.delenv("NO_COLOR", raising=False)




def app_for(sessions: list[MonitorSession], now: float, term: str = "xterm-256color") -> MigtuiApp:
    return make_app(sessions=sessions, clock=lambda: now, tz=timezone.utc, term=term)


def real_error(address: str) -> MonitorError:
    """The error a real connect attempt gives (no invented messages)."""
    monitor = Monitor(parse_address(address), connect_timeout=1.0)

    async def attempt() -> MonitorError:
        try:
            await monitor.connect()
        except MonitorError as err:
            return err
        finally:
            await monitor.close()
        raise AssertionError(f"{address} connected")

    return asyncio.run(attempt())


# --- a migration with storage, pause-before-switchover armed -------------------

def test_storage_migration_active_80x24(snap_compare, version: str) -> None:
    sessions, now = replayed("storage", "active", version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=SMALL)


def test_storage_migration_active_120x40(snap_compare, version: str) -> None:
    sessions, now = replayed("storage", "active", version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=LARGE)


def test_pre_switchover_80x24(snap_compare, version: str) -> None:
    sessions, now = replayed("storage", "paused", version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=SMALL)


def test_completed_with_all_events_120x40(snap_compare, version: str) -> None:
    sessions, now = replayed("storage", "completed", version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=LARGE, press=["e"])


def test_destination_selected_80x24(snap_compare, version: str) -> None:
    sessions, now = replayed("storage", "active", version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=SMALL, press=["down"])


# --- dirty rate -------------------------------------------------------------------

def test_dirty_rate_close_to_bandwidth_80x24(snap_compare, version: str) -> None:
    sessions, now = replayed("stuck", "late", version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=SMALL)


def test_dirty_rate_measured_without_migration_80x24(snap_compare, version: str) -> None:
    sessions, now = replayed("measure", "measured", version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=SMALL)


# --- monitors in trouble ----------------------------------------------------------

def test_lost_and_retrying_monitors_80x24(snap_compare, version: str) -> None:
    (src,), now = replayed("storage", "active", {"src": "src"}, version=version)
    lost = MonitorSession.offline("dst", clock=lambda: now)
    lost.status = ConnectionStatus(
        ConnState.LOST, 3, real_error("dst=unix:/nonexistent/migtui-snapshot/dst.qmp")
    )
    stale = Path("/tmp/migtui-snapshot-stale.qmp")
    stale.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # bound, never listening: what a crashed QEMU leaves
        error = real_error(f"old=unix:{stale}")
    stale.unlink()
    retrying = MonitorSession.offline("old", clock=lambda: now)
    retrying.status = ConnectionStatus(ConnState.RETRYING, 2, error)
    app = app_for([src, lost, retrying], now)
    assert snap_compare(app, terminal_size=SMALL, press=["down"])


def test_fifty_monitors_120x40(snap_compare, version: str) -> None:
    sessions, now = replayed_pairs("storage", 25, 0.5, version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=LARGE, press=["down"] * 30)


# --- help, terminals --------------------------------------------------------------

def test_help_80x24(snap_compare, version: str) -> None:
    sessions, now = replayed("storage", "active", version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=SMALL, press=["question_mark"])


def test_linux_console_80x24(snap_compare, version: str) -> None:
    sessions, now = replayed("storage", "active", version=version)
    assert snap_compare(app_for(sessions, now, term="linux"), terminal_size=SMALL)


def test_no_color_80x24(snap_compare, version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    sessions, now = replayed("stuck", "late", version=version)
    assert snap_compare(app_for(sessions, now), terminal_size=SMALL)
