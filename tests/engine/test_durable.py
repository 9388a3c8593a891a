"""What the engine armed outlives the engine (issue 14, points 1 and 2), and so does a
pause it bounds on a source it did not arm (``engine/guard.py``).

A real ``migtui engine`` arms a real lab source and is SIGKILLed; the migration is
started by another QMP client (the lab's own socket); a new engine started in the same
runtime directory -- as systemd or a view starts it -- takes the source up by itself,
from its record and the marker in QEMU, and bounds the pause with the operator's
deadline. Likewise a source the lab armed, watched with an explicit --max-pause: its
pause is recorded, and the next engine bounds it from the recorded start. No test
asserts a duration: each waits for an outcome, with limits far beyond what a loaded
machine needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from conftest import until
from engine_util import EngineProcess, attached, engine_pids, short_runtime_dir, watch
from qemu_util import TracedQemu
from tmux_util import Tmux
from view_util import aborted_and_running, arm_in, open_terminal, wait_screen, watch_args

from migtui.address import MonitorAddress
from migtui.engine.durable import SAME_MIGRATION_S, pause_origin, same_migration
from migtui.engine.records import ArmedRecord, GuardRecord, RecordStore
from migtui.lab.lab import Lab
from migtui.protocol.messages import Pause, PolicyInfo
from migtui.transport.readonly import READ_ONLY_COMMANDS
from migtui.workflow.marker import PREFIX, has_marker
from migtui.workflow.policy import Policy

LONG = 90.0  # a limit for outcomes that take seconds: only a broken engine reaches it


def monitors(lab: Lab) -> list[str]:
    return [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]


def records(directory: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(directory.glob("armed-*.json")):
        with contextlib.suppress(OSError, ValueError):  # being replaced this very moment
            found.append(json.loads(path.read_text()))
    return found


def guards(directory: Path) -> list[dict[str, Any]]:
    """The guard records of ``directory`` (pauses on sources migtui did not arm)."""
    found = []
    for path in sorted(directory.glob("guard-*.json")):
        with contextlib.suppress(OSError, ValueError):  # being replaced this very moment
            found.append(json.loads(path.read_text()))
    return found


# The operator's own flags: the deadline applies to a pause migtui did not arm.
EXPLICIT = ["max_pause", "on_max_pause"]


async def qemu_says(ctl: Any, status: str) -> None:
    deadline = time.monotonic() + LONG
    while (now := (await ctl.execute("query-migrate")).get("status")) != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"QEMU says {now}, not {status}")
        await asyncio.sleep(0.05)


async def markers(ctl: Any) -> list[str]:
    return [o["name"] for o in await ctl.execute("qom-list", {"path": "/objects"}) if o["name"].startswith(PREFIX)]


def restart(directory: Path) -> EngineProcess:
    """A new engine in the runtime directory of a killed one (its pid file is still there)."""
    (directory / "engine.pid").unlink(missing_ok=True)
    return EngineProcess(directory).start()


@pytest.fixture
async def runtime_dir() -> AsyncIterator[Path]:
    directory = short_runtime_dir()
    yield directory
    for pid in engine_pids(directory):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)


def deadline_of(session: Any) -> float | None:
    """When the engine acts on ``session``'s pause (None: no deadline applies)."""
    pause: Pause = session.pause
    return pause.deadline.at if pause.deadline is not None else None


async def arm_through_an_engine(lab: Lab, directory: Path, policy: PolicyInfo) -> EngineProcess:
    engine = EngineProcess(directory).start()
    async with attached(directory) as view:
        src, _dst = await watch(view, monitors(lab), policy)
        await until(lambda: src.connected and src.polls, LONG, "connected")
        assert "armed" in await src.engine_request("arm")
        await until(lambda: src.pause.owner == "migtui", LONG, "armed by migtui")
    return engine


async def killed_once_recorded(view: Any, src: Any, engine: EngineProcess,
                               found: Callable[[], list[dict[str, Any]]]) -> float:
    """``src``'s pause start as ``view`` has it (QEMU's own stamp: the MIGRATION event), once
    the record ``found`` holds it; ``engine`` is then SIGKILLed and the view's link gone."""
    await until(lambda: src.state.in_pre_switchover and deadline_of(src) is not None, LONG, "the pause")
    assert src.pause.clock is not None and src.pause.clock.exact
    since: float = src.pause.clock.start
    await until(lambda: (found() or [{}])[0].get("pause"), LONG, "the pause in the record")
    assert found()[0]["pause"] == {"since": since, "exact": True}
    engine.kill()
    await until(lambda: view.closed is not None and view.closed.done(), LONG, "the link gone")
    return since


async def killed_during_a_recorded_pause(lab: Lab, directory: Path, policy: PolicyInfo) -> Any:
    """An engine arms the lab's source, another client migrates it, the engine records the
    pause and is SIGKILLed (no goodbye, no disarm); the lab's control connection to the source."""
    await lab.prepare(storage=True, pause=False)
    first = await arm_through_an_engine(lab, directory, policy)
    ctl = await lab.control(lab.src)
    await lab.migrate()
    await qemu_says(ctl, "pre-switchover")
    await until(lambda: (records(directory) or [{}])[0].get("pause"), LONG, "the pause in the record")
    first.kill()
    return ctl


# ---------------------------------------------------------------------- real QEMU


@pytest.mark.qemu
async def test_armed_then_killed_the_next_engine_bounds_the_pause_that_came_with_no_engine(
        lab: Lab, runtime_dir: Path) -> None:
    await lab.prepare(storage=True, pause=False)
    # Not explicit: the deadline applies only because migtui armed this source.
    policy = PolicyInfo(max_pause_s=2.0, on_max_pause="abort")
    first = await arm_through_an_engine(lab, runtime_dir, policy)
    [record] = records(runtime_dir)
    assert record["capabilities"] == ["pause-before-switchover"] and record["policy"]["max_pause_s"] == 2.0
    ctl = await lab.control(lab.src)
    assert await markers(ctl) == [f"{PREFIX}{record['token']}"]

    first.kill()  # SIGKILL: no goodbye, no disarm
    await lab.migrate()  # another client migrates: the pause comes with no engine at all
    await qemu_says(ctl, "pre-switchover")
    second = restart(runtime_dir)  # as systemd, or a view, starts one: nobody asks it to watch anything
    try:
        await aborted_and_running(ctl, LONG)  # the recorded deadline (2 s, then abort) bounded it
        assert "src: taken up again, armed by migtui" in second.log
        assert "src: paused 2 s: aborting the migration (--on-max-pause abort)" in second.log
        async with attached(runtime_dir) as later:
            await later.subscribe()
            src = later.sessions["src"]
            await until(lambda: src.switchover.result is not None, LONG, "the story")
            assert src.switchover.actor == "the engine's deadline" and src.pause.owner == "migtui"
        # Stopping the engine sets back what migtui armed: capability, marker and record go.
        stop = subprocess.run([sys.executable, "-m", "migtui", "engine", "stop", "--runtime-dir", str(runtime_dir)],
                              capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop
        await until(lambda: not engine_pids(runtime_dir), LONG, "the engine gone")
        reply: Any = await ctl.execute("query-migrate-capabilities")
        caps = {c["capability"]: c["state"] for c in reply}
        assert caps["pause-before-switchover"] is False and caps["events"] is True  # events was the lab's
        assert await markers(ctl) == [] and records(runtime_dir) == []
    finally:
        second.cleanup()


@pytest.mark.qemu
async def test_killed_during_the_pause_the_next_engine_counts_its_deadline_from_qemus_pause_start(
        lab: Lab, runtime_dir: Path) -> None:
    await lab.prepare(storage=True, pause=False)
    policy = PolicyInfo(max_pause_s=600.0, on_max_pause="abort")  # long: the test ends the pause itself
    first = await arm_through_an_engine(lab, runtime_dir, policy)
    async with attached(runtime_dir) as view:
        await view.subscribe()
        src = view.sessions["src"]
        await lab.migrate()
        since = await killed_once_recorded(view, src, first, partial(records, runtime_dir))
        assert src.pause.owner == "migtui" and deadline_of(src) == since + 600.0
    second = restart(runtime_dir)
    try:
        async with attached(runtime_dir) as later:
            await later.subscribe()
            again = later.sessions["src"]
            await until(lambda: again.pause.owner == "migtui" and deadline_of(again) is not None, LONG,
                        "taken up again, with its deadline")
            # The same pause start, to the microsecond: QEMU's, not the new engine's first sight.
            assert again.pause.clock is not None
            assert again.pause.clock.start == since and deadline_of(again) == since + 600.0
            # ... and its clock says so: how long, not "at least ... at most" (no bound needed).
            assert again.pause.clock.exact and again.pause.clock.earliest is None, again.pause.clock
            assert "QEMU's pause start, as recorded" in again.pause.notes["deadline"]
            assert await again.engine_request("abort") == "src: abort started"
            await until(lambda: again.switchover.result is not None, LONG, "the abort")
        await aborted_and_running(await lab.control(lab.src), LONG)
    finally:
        second.cleanup()


@pytest.mark.qemu
async def test_a_pause_past_its_deadline_when_the_engine_comes_back_is_acted_on_at_once(
        lab: Lab, runtime_dir: Path) -> None:
    ctl = await killed_during_a_recorded_pause(lab, runtime_dir, PolicyInfo(max_pause_s=2.0, on_max_pause="abort"))
    since = records(runtime_dir)[0]["pause"]["since"]
    await asyncio.sleep(max(0.0, since + 2.0 + 0.5 - time.time()))  # its deadline passes with no engine
    second = restart(runtime_dir)
    try:
        await aborted_and_running(ctl, LONG)
        log = second.log
        assert "src: taken up again, armed by migtui" in log and "QEMU's pause start, as recorded" in log
        assert log.index("src: taken up again") < log.index("src: paused 2 s: aborting the migration")
    finally:
        second.cleanup()


@pytest.mark.qemu
async def test_another_qemu_at_the_armed_socket_is_not_taken_for_the_armed_one(lab: Lab, runtime_dir: Path) -> None:
    await lab.prepare(storage=False, pause=False)
    first = await arm_through_an_engine(lab, runtime_dir, PolicyInfo(max_pause_s=2.0))
    assert len(records(runtime_dir)) == 1
    first.kill()
    os.kill(lab.src.pid, signal.SIGKILL)  # the armed QEMU dies too ...
    await until(lambda: lab.src.process is not None and not lab.src.process.running(), LONG, "QEMU gone")
    fresh = TracedQemu(lab.src.qmp_path, machine="pc").start()  # ... and another starts at its socket
    second = restart(runtime_dir)
    try:
        await until(lambda: not records(runtime_dir), LONG, "the record dropped")
        # Said once the record is gone (the file goes first): wait for the line, not a moment.
        await until(lambda: "is not the one migtui armed" in second.log, LONG, "the engine's word on it")
        assert "src: the QEMU at unix:" in second.log
        sent = [c.command for c in fresh.commands()]
        assert "qom-list" in sent and all(c in READ_ONLY_COMMANDS for c in sent), sent
    finally:
        second.cleanup()
        fresh.kill()


@pytest.mark.qemu
async def test_a_record_whose_qemu_is_gone_is_dropped_at_start(lab: Lab, runtime_dir: Path) -> None:
    await lab.prepare(storage=False, pause=False)
    first = await arm_through_an_engine(lab, runtime_dir, PolicyInfo())
    first.kill()
    await lab.stop()  # the QEMU it armed quits: nothing listens at that socket any more
    second = restart(runtime_dir)
    try:
        await until(lambda: not records(runtime_dir), LONG, "the record dropped")
        assert "no QEMU listens there any more: record dropped" in second.log
        async with attached(runtime_dir) as later:
            await later.subscribe()
            assert later.sessions == {}  # nothing watched for it
    finally:
        second.cleanup()


# ---------------------------------------------------------------------- a pause migtui did not arm


async def guarded_pause(lab: Lab, directory: Path, policy: PolicyInfo) -> tuple[EngineProcess, Any]:
    """The lab arms its source itself; an engine watches it with ``policy``; another client
    migrates; the engine records the pause. The engine, and the lab's control connection."""
    await lab.prepare(storage=False, pause=True)  # armed by the lab, not migtui
    engine = EngineProcess(directory).start()
    async with attached(directory) as view:
        src, _dst = await watch(view, monitors(lab), policy)
        await until(lambda: src.connected and src.polls, LONG, "connected")
        ctl = await lab.control(lab.src)
        await lab.migrate()
        await until(lambda: guards(directory), LONG, "the guard record")
    return engine, ctl


@pytest.mark.qemu
async def test_a_pause_migtui_did_not_arm_outlives_the_engine_under_its_explicit_deadline(
        lab: Lab, runtime_dir: Path) -> None:
    # 15 s: the first engine is killed once the record is written (0.25 s into the pause),
    # long before its own deadline even on a loaded machine; the next engine acts at it.
    first, ctl = await guarded_pause(lab, runtime_dir, PolicyInfo(max_pause_s=15.0, on_max_pause="abort",
                                                                   explicit=EXPLICIT))
    [record] = guards(runtime_dir)
    assert record["kind"] == "guard" and "capabilities" not in record, record
    assert record["policy"]["max_pause_s"] == 15.0 and record["policy"]["explicit"] == EXPLICIT
    assert records(runtime_dir) == [] and await markers(ctl) == []  # migtui armed nothing, marked nothing
    first.kill()  # SIGKILL, no view: nothing bounds the pause now
    second = restart(runtime_dir)  # as systemd starts one, or by hand: nobody asks it to watch anything
    try:
        await aborted_and_running(ctl, LONG)  # the recorded deadline (15 s, then abort) bounded it
        log = second.log
        assert f"src: taken up again, guarded by migtui (engine {first.pid}): paused before switchover" in log, log
        assert log.index("src: taken up again") < log.index("src: paused 15 s: aborting the migration")
        await until(lambda: not guards(runtime_dir), LONG, "the guard record removed with its pause")
        assert await markers(ctl) == []
    finally:
        second.cleanup()


@pytest.mark.qemu
async def test_a_guarded_pause_taken_up_again_counts_its_deadline_from_its_recorded_start(
        lab: Lab, runtime_dir: Path) -> None:
    policy = PolicyInfo(max_pause_s=600.0, on_max_pause="abort", explicit=EXPLICIT)  # the test ends the pause
    await lab.prepare(storage=False, pause=True)
    first = EngineProcess(runtime_dir).start()
    async with attached(runtime_dir) as view:
        src, _dst = await watch(view, monitors(lab), policy)
        await lab.migrate()
        since = await killed_once_recorded(view, src, first, partial(guards, runtime_dir))
        assert src.pause.owner == "other" and deadline_of(src) == since + 600.0
    second = restart(runtime_dir)
    try:
        async with attached(runtime_dir) as later:
            await later.subscribe()
            again = later.sessions["src"]
            await until(lambda: again.pause.clock is not None and deadline_of(again) is not None
                        and "taken up again" in again.pause.notes.get("deadline", ""), LONG, "taken up again")
            note = again.pause.notes["deadline"]
            assert "guarded by migtui" in note and "armed by migtui" not in note, note
            assert "QEMU's pause start, as recorded" in note and "(600 s, then abort)" in note, note
            # From the recorded start, to the microsecond: not the new engine's first sight of it.
            assert again.pause.clock is not None and again.pause.clock.start == since and again.pause.clock.exact
            assert deadline_of(again) == since + 600.0 and again.pause.owner == "other"
            # A view that restarted the engine watches again with its policy: the same pause, the same deadline.
            await watch(later, monitors(lab), policy)
            assert deadline_of(again) == since + 600.0
            assert await again.engine_request("abort") == "src: abort started"
            await until(lambda: again.switchover.result is not None, LONG, "the abort")
        await aborted_and_running(await lab.control(lab.src), LONG)
        await until(lambda: not guards(runtime_dir), LONG, "the guard record removed with its pause")
    finally:
        second.cleanup()


@pytest.mark.qemu
async def test_the_end_of_a_guarded_pause_removes_its_record(lab: Lab, runtime_dir: Path) -> None:
    engine, ctl = await guarded_pause(lab, runtime_dir, PolicyInfo(max_pause_s=600.0, on_max_pause="abort",
                                                                    explicit=EXPLICIT))
    try:
        await ctl.execute("migrate_cancel")  # another client ends the pause
        await aborted_and_running(ctl, LONG)
        await until(lambda: not guards(runtime_dir), LONG, "the guard record removed")
        # (said once the file is gone: the engine's log may have it a moment later)
        await until(lambda: "src: its pause is over: guard record removed" in engine.log, LONG, "the engine's word")
    finally:
        engine.cleanup()


@pytest.mark.qemu
async def test_a_guard_record_of_another_pause_is_dropped_and_nothing_is_sent(lab: Lab, runtime_dir: Path) -> None:
    # The lab's source paused by a migration that began after the recorded pause; another
    # QEMU (not paused) at a recorded socket. Each record names a pause that is not there.
    await lab.prepare(storage=False, pause=True)
    ctl = await lab.control(lab.src)
    await lab.migrate()
    await qemu_says(ctl, "pre-switchover")
    fresh = TracedQemu(runtime_dir / "other.qmp", machine="pc").start()
    store = RecordStore(runtime_dir)
    policy = Policy(max_pause_s=1.0, on_max_pause="abort", explicit=frozenset(EXPLICIT))
    src = MonitorAddress("src", "unix", str(lab.src.qmp_path))
    store.save(GuardRecord.new(src, "src", policy, 0.25, time.time() - 3600.0, True))  # a pause before this migration
    other = MonitorAddress("other", "unix", str(fresh.socket_path))
    store.save(GuardRecord.new(other, "other", policy, 0.25, time.time() - 10.0, True))
    engine = restart(runtime_dir)
    try:
        await until(lambda: not guards(runtime_dir), LONG, "both records dropped")
        await until(lambda: engine.log.count("guard record dropped, nothing sent") == 2, LONG, "the engine's word")
        assert "src: paused when migtui guarded it; the migration there began after that pause" in engine.log
        assert "other: paused when migtui guarded it; its pause is over (migration none)" in engine.log
        async with attached(runtime_dir) as later:  # watched only for those records: no longer
            await later.subscribe()
            await until(lambda: later.sessions == {}, LONG, "both unwatched")
        await qemu_says(ctl, "pre-switchover")  # left as it is (a 1 s deadline taken up would have aborted it)
        sent = [c.command for c in fresh.commands()]
        assert sent and all(c in READ_ONLY_COMMANDS for c in sent), sent
    finally:
        engine.cleanup()
        fresh.kill()


# ---------------------------------------------------------------------- without QEMU


def test_a_record_is_written_whole_and_private_and_read_back(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    rec = ArmedRecord.new(MonitorAddress("src", "unix", "/run/vm1.qmp"), "src",
                          Policy(max_pause_s=7.0, on_max_pause="resume", explicit=frozenset({"max_pause"})), 0.5)
    rec.capabilities = ("events", "pause-before-switchover")
    rec.pause_since, rec.pause_exact = 1234.5, True
    store.save(rec)
    path = store.path(rec.token)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    (tmp_path / "armed-garbage.json").write_text("{not json")
    [back] = store.load_all()
    assert back == rec
    store.remove(rec.token)
    assert store.load_all() == [] and (tmp_path / "armed-garbage.json").exists()  # not ours to remove


def test_the_pause_start_an_engine_takes_up() -> None:
    now = 1000.0
    # Recorded by the engine before (QEMU's stamp), in this migration: that is the start.
    assert pause_origin(900.0, migration_start=850.0, seen_unpaused=950.0, now=now) == (900.0, True)
    # A record of an earlier migration's pause: not this one. The earliest this one can have
    # begun: after the migration started and after an engine last saw it running.
    assert pause_origin(700.0, migration_start=850.0, seen_unpaused=800.0, now=now) == (850.0, False)
    assert pause_origin(None, migration_start=850.0, seen_unpaused=960.0, now=now) == (960.0, False)
    assert pause_origin(None, migration_start=None, seen_unpaused=None, now=now) == (now, False)


def test_a_guard_record_is_written_whole_and_private_and_read_back_beside_the_armed_ones(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    policy = Policy(max_pause_s=60.0, on_max_pause="abort", explicit=frozenset({"max_pause", "on_max_pause"}))
    rec = GuardRecord.new(MonitorAddress("src", "tcp", host="h", port=4444), "src", policy, 0.5, 1234.5, True)
    store.save(rec)
    path = store.path(rec.token, "guard-")
    assert path.stat().st_mode & 0o777 == 0o600 and [p.name for p in tmp_path.iterdir()] == [path.name]
    assert store.load_guards() == [rec] and store.load_all() == []  # not an armed record
    data = json.loads(path.read_text())
    assert (data["kind"], data["version"], data["pause"]) == ("guard", 1, {"since": 1234.5, "exact": True})
    assert data["policy"]["explicit"] == ["max_pause", "on_max_pause"]
    # An armed record as the first engines wrote it (version 1, no kind) still loads, and
    # is not taken for a guard record; a guard record of another version is left alone.
    old = {"version": 1, "token": "0123abcd", "address": {"name": "vm", "kind": "unix", "path": "/run/vm.qmp",
                                                          "host": None, "port": None},
           "name": "vm", "capabilities": ["pause-before-switchover"], "policy": {"max_pause_s": 30.0},
           "interval": 1.0, "armed_at": 99.0, "engine_pid": 42, "pause": None}
    (tmp_path / "armed-0123abcd.json").write_text(json.dumps(old))
    (tmp_path / "guard-feedbeef.json").write_text(json.dumps({**data, "version": 2, "token": "feedbeef"}))
    [armed] = store.load_all()
    assert (armed.token, armed.capabilities, armed.pause_since) == ("0123abcd", ("pause-before-switchover",), None)
    assert armed.policy.max_pause_s == 30.0
    assert store.load_guards() == [rec]
    store.remove(rec.token, "guard-")
    assert store.load_guards() == [] and (tmp_path / "guard-feedbeef.json").exists()


def test_a_recorded_pause_is_the_migrations_only_if_it_began_after_the_migration() -> None:
    assert same_migration(900.0, migration_start=850.0)
    assert same_migration(850.0 - SAME_MIGRATION_S / 2, migration_start=850.0)  # two engines' latency apart
    assert not same_migration(700.0, migration_start=850.0)  # an earlier migration's, or another QEMU's
    assert same_migration(700.0, migration_start=None)


def test_the_marker_is_found_by_its_token_only() -> None:
    objects = [{"name": "type", "type": "string"}, {"name": f"{PREFIX}abc", "type": "child<secret>"}]
    assert has_marker(objects, "abc") and not has_marker(objects, "abd") and not has_marker(None, "abc")


# ---------------------------------------------------------------------- the view (the real migtui in tmux)


def flat(screen: str) -> str:
    """The screen's words in one line (a toast wraps its text and frames each line)."""
    return " ".join(word for word in screen.split() if word not in ("▌", "▐", "│", "┃"))


def toasts(screen: str) -> str:
    """The words of the toasts on the screen, in one line: each of their rows starts with
    "▌" (and may cover a dialog, whose border shows on the right)."""
    rows = [row.rsplit("▌", 1)[1].rstrip(" │─╯╮") for row in screen.splitlines() if "▌" in row]
    return " ".join(" ".join(rows).split())


async def screen_says(term: Tmux, text: str, words: Callable[[str], str] = flat) -> str:
    """The words on ``term`` once they include ``text``, with the lines scrolled above the pane
    (a view's last words printed at its bottom row scroll up, as in any terminal)."""
    deadline = time.monotonic() + LONG
    while text not in words(screen := term.screen(history=True)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not on the screen:\n{screen}")
        await asyncio.sleep(0.05)
    return words(screen)


@pytest.mark.qemu
async def test_a_view_whose_engine_is_killed_during_a_pause_starts_a_new_one_and_says_so(
        lab: Lab, terminals: list[Tmux], private_runtime_dir: Path) -> None:
    await lab.prepare(storage=True, pause=False)
    view = open_terminal(terminals, "restart", 100, 30).migtui("--max-pause", "3", *watch_args(lab))
    await arm_in(view)
    await lab.migrate()
    await wait_screen(view, "paused before switchover")
    [old] = engine_pids(private_runtime_dir)
    os.kill(old, signal.SIGKILL)  # the engine dies mid-pause (the OOM killer, say)
    said = await screen_says(view, "a new engine was started at once", toasts)
    assert "the migtui engine died (killed, or it crashed)" in said
    assert "src is still stopped before switchover (paused" in said
    assert "the new engine takes it up from migtui's record: its deadline (3 s, then abort)" in said, said
    # Read, it goes with the operator's next key (at 80x24 it covers half of the dialog's actions):
    # here ?, whose help screen would show the toasts too.
    view.keys("?")
    helped = await wait_screen(view, "migtui help")
    assert "started at once" not in toasts(helped), helped
    view.keys("Escape")
    await until(lambda: engine_pids(private_runtime_dir) not in ([], [old]), LONG, "a new engine")
    await aborted_and_running(await lab.control(lab.src), LONG)  # it took the pause up: its deadline ended it
    await wait_screen(view, "src · connected")
    assert not view.dead()  # the dashboard runs on, on the new engine


@pytest.mark.qemu
async def test_a_view_whose_engine_is_stopped_says_which_guest_stays_stopped_and_that_nothing_bounds_it(
        lab: Lab, terminals: list[Tmux], private_runtime_dir: Path) -> None:
    await lab.prepare(storage=False, pause=True)  # armed by the lab, not migtui
    view = open_terminal(terminals, "stopped", 160, 30).migtui(*watch_args(lab))  # its last words unwrapped
    await wait_screen(view, "src · connected")
    await lab.migrate()
    await wait_screen(view, "paused before switchover")
    stop = await asyncio.create_subprocess_exec(sys.executable, "-m", "migtui", "engine", "stop", "--force",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await stop.communicate()
    assert stop.returncode == 0, out
    said = await screen_says(view, "nothing bounds it now")
    # The engine says goodbye before it cuts the link: the view never takes the stop for a
    # crash or a dropped view, however far the engine's exit has got when it looks.
    assert "migtui: the migtui engine was stopped by migtui engine stop" in said, said
    assert "migtui: src is still stopped before switchover (paused" in said
    assert "so far): nothing bounds it now, no engine runs" in said
    await until(view.dead, LONG, "the view gone")
    assert not engine_pids(private_runtime_dir)  # stopped on purpose: not started again
    log = (private_runtime_dir / "engine.log").read_text(errors="replace")
    assert "Traceback" not in log and "CancelledError" not in log, log


@pytest.mark.qemu(one_build=True)  # the terminal is its subject: the pause paths run on both builds above
async def test_attach_after_the_engine_died_alone_during_a_pause_starts_one_that_takes_it_up(
        lab: Lab, terminals: list[Tmux], runtime_dir: Path) -> None:
    """The engine is killed during a pause with no view to start another: nothing bounds the
    guest's stop. ``migtui attach`` then finds what it armed in the runtime directory, starts
    an engine (which takes the pause up with its deadline) and says so, rather than "no
    migtui engine runs"; the dialog's clock is QEMU's stamp, as recorded."""
    # SIGKILL, and no view: no engine bounds the pause now
    ctl = await killed_during_a_recorded_pause(lab, runtime_dir, PolicyInfo(max_pause_s=600.0, on_max_pause="abort"))
    view = open_terminal(terminals, "attach", 100, 30).migtui("attach", "--runtime-dir", str(runtime_dir))
    said = await screen_says(view, "a new engine was started to take it up", toasts)
    assert f"left src (unix:{lab.src.qmp_path}) armed by migtui" in said, said
    screen = await screen_says(view, "QEMU's pause start, as recorded")
    assert "Guest stopped" in screen and "at most" not in screen, screen
    assert "The engine will abort in" in screen, screen  # the recorded deadline (600 s, then abort)
    view.keys("x")
    await wait_screen(view, "Abort the migration of src?")
    view.keys("Enter")
    await aborted_and_running(ctl, LONG)
