"""``m`` on the dashboard: start a migration to a real QEMU waiting on ``-incoming defer``, keys
only, at 80x24, the view attached to an engine on real QEMU (``app_for``); with a disk
mirrored through the UI, the switchover is clean and the disks identical. A read-only view
shows the start unavailable with the reason, and its engine refuses it too."""

from __future__ import annotations

import pytest
from conftest import app_for, screen_text, until
from qemu_util import disks_differ, qemu_io_reads, requires_qemu_img
from tui_util import lab_monitors

from migtui.lab.lab import Lab
from migtui.protocol import messages as m
from migtui.tui.screens.start import StartConfirm, StartScreen
from migtui.tui.screens.switchover import SwitchoverScreen

PATTERN = 0x5A
PATTERN_AT, PATTERN_LEN = 1 << 20, 256 << 10  # written before the start
DURING_AT, DURING_LEN = 9 << 20, 64 << 10  # written while the mirror copies and RAM moves


@pytest.mark.qemu
@requires_qemu_img
async def test_start_from_the_dashboard_with_a_disk_completes(storage_lab: Lab) -> None:
    lab = storage_lab
    await lab.write_pattern(lab.src, PATTERN_AT, PATTERN_LEN, PATTERN)
    async with app_for(lab_monitors(lab)) as view:
        app, (src, _dst) = view.app, view.sessions
        await until(lambda: src.control("start").allowed is True and any(
            t.name == "dst" and t.disks for t in src.start_offer.targets), 30, "m offered with dst and its disks")
        await view.press("m")
        await until(lambda: isinstance(app.screen, StartScreen), 10, "the start screen")
        text = screen_text(app)
        assert "dst  (monitored, waits on -incoming defer)" in text and "pause-before-switchover" in text
        assert "data0  16.0 MiB → dst data0" in text
        # tab: address, capabilities, each parameter (8.2+ has one more), the disks; down, down: data0
        parameters = next(t for t in src.start_offer.targets if t.name == "dst").parameters
        await view.press(*["tab"] * (3 + len(parameters)), "down", "down", "space", "enter")
        await until(lambda: isinstance(app.screen, StartConfirm), 10, "the summary")
        summary = screen_text(app)
        assert "disk data0 (16.0 MiB) → dst data0 over NBD" in summary and "migrate-incoming" in summary, summary
        await view.press("m")
        await until(lambda: src.state.migration_status in ("active", "pre-switchover")
                    or any("start failed" in t for t in view.toasts), 120, "the migration under way")
        assert not any("start failed" in t for t in view.toasts), view.toasts
        await lab.write_pattern(lab.src, DURING_AT, DURING_LEN, PATTERN)
        await until(lambda: isinstance(app.screen, SwitchoverScreen), 120, "the pause dialog")
        await view.press("n", "w")  # write-blocking mirrors: QEMU 8.2+ has block-job-change
        if view.engine_session("src").supports("block-job-change"):
            said = "src: migtui-mirror-data0 write-blocking now (by "
            await until(lambda: any(t.startswith(said) for t in view.toasts), 30, "the mirror write-blocking")
        else:
            await until(lambda: any("has no block-job-change (8.2+)" in t for t in view.toasts), 10, "why not")
        await view.press("s")
        await until(lambda: isinstance(app.screen, SwitchoverScreen), 10, "the pause dialog again")
        await view.press("y")
        done = "src: migration completed; NBD nodes and server removed"
        await until(lambda: done in view.toasts, 120, "the engine's word that it completed")
        sent = [(who, command) for who, command, _ in view.sent.mutating()]
        assert ("dst", "nbd-server-start") in sent and ("src", "blockdev-mirror") in sent
        assert sent.index(("src", "blockdev-mirror")) < sent.index(("dst", "migrate-incoming")) < sent.index(
            ("src", "migrate"))
        assert sent[-2:] == [("src", "blockdev-del"), ("dst", "nbd-server-stop")]
    await lab.stop()
    assert not disks_differ(lab), disks_differ(lab)
    assert qemu_io_reads(lab.dst.disk_path, PATTERN, DURING_AT, DURING_LEN)


@pytest.mark.qemu
async def test_read_only_hides_the_start_and_the_engine_refuses_it(storage_lab: Lab) -> None:
    async with app_for(lab_monitors(storage_lab), read_only=True) as view:
        app, (src, _dst) = view.app, view.sessions
        control = src.control("start")
        assert control.allowed is False and control.reason.startswith("read-only: migtui will not start a migration")
        await view.press("m")
        await until(lambda: any(t.startswith("read-only") for t in view.toasts), 10, "the reason")
        assert not isinstance(app.screen, StartScreen)
        reply = await view.client.call(m.Start, monitor="src", destination="dst")  # past the view's own check
        assert not reply.ok and reply.error == "read-only view: the engine refuses to start a migration of src"
        assert view.sent.mutating() == []
