"""The engine against real QEMU: views attach and detach, the gate outlives them.

A real ``migtui engine`` process in a private runtime directory; views are
EngineClients (the protocol the dashboard speaks, without the screen) and the real
``migtui status``. The lab drives the QEMUs on its own control sockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import until
from engine_util import EngineProcess, attached, engine_pids, short_runtime_dir, watch

from migtui.engine.server import View
from migtui.lab.lab import Lab
from migtui.model.qmpinput import QmpInput
from migtui.model.switchover import Outcome
from migtui.protocol import framing as p
from migtui.protocol import lines
from migtui.protocol.codec import to_json
from migtui.protocol.messages import Feed, PolicyInfo, Request, Stop
from migtui.protocol.runtime import runtime
from migtui.view.client import EngineClient

MiB = 1024 * 1024


def monitors(lab: Lab) -> list[str]:
    return [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]


def test_the_engine_never_loads_textual() -> None:
    code = ("import sys, migtui.commands.engine, migtui.engine.serve, migtui.engine.server, migtui.engine.engine,"
            " migtui.view.client;"
            " bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'));"
            " print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_view_of_another_protocol_version_gets_one_line(engine: EngineProcess) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(engine.directory / "engine.sock"))
        s.sendall(p.encode_json({"op": "hello", "version": 999, "view": {"kind": "old"}}))
        reply = json.loads(s.makefile("rb").readline())
    assert reply["op"] == "error"
    assert reply["error"].startswith(f"migtui engine speaks protocol {p.VERSION}, this view 999:")
    assert "migtui engine stop" in reply["error"] and "\n" not in reply["error"]


def test_the_runtime_directory_and_socket_are_private(engine: EngineProcess) -> None:
    assert (engine.directory.stat().st_mode & 0o777) == 0o700
    assert ((engine.directory / "engine.sock").stat().st_mode & 0o777) == 0o600


def test_a_view_of_another_uid_is_refused(engine: EngineProcess) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")  # CI runs as root
    # Open the directory and socket for this test only, so that the uid check itself is tested.
    os.chmod(engine.directory, 0o711)
    os.chmod(engine.directory / "engine.sock", 0o666)
    probe = ("import json, socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
             " s.sendall(b'{\"op\":\"hello\",\"version\":1}\\n'); print(s.makefile('rb').readline().decode())")
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                             "-c", probe, str(engine.directory / "engine.sock")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["op"] == "error" and "uid 65534 may not attach" in reply["error"], result


@pytest.mark.qemu
async def test_two_views_and_status_share_one_connection_and_one_y_acts_once(
        lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=True, pause=False)  # mirrored disk, not armed: migtui arms it
    async with attached(engine.directory, kind="first") as one, attached(engine.directory, kind="second") as two:
        src1, _dst1 = await watch(one, monitors(lab))
        src2, dst2 = await watch(two, monitors(lab))  # the same monitors: the same connections
        assert set(one.sessions) == set(two.sessions) == {"src", "dst"}
        await until(lambda: src1.connected and src2.connected and dst2.connected and src2.state.block_jobs, 15,
                    "both views connected, the mirror known")
        # QEMU serves one client per socket: status is answered by the engine that holds it.
        status = subprocess.run([sys.executable, "-m", "migtui", "status", "--json", "--runtime-dir",
                                 str(engine.directory), *monitors(lab)], capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        snaps = json.loads(status.stdout)["monitors"]
        assert [s["name"] for s in snaps] == ["src", "dst"] and all(s["ok"] for s in snaps)
        assert snaps[0]["block_jobs"][0]["device"] == "mirror-data0"

        assert "armed" in await src1.engine_request("arm")
        await until(lambda: src2.state.armed and src2.pause.owner == "migtui", 10, "armed, by migtui")
        await lab.migrate()
        await until(lambda: src1.state.in_pre_switchover and src2.state.in_pre_switchover, 30,
                    "both views see the pause")
        await until(lambda: src2.pause.deadline is not None, 5,
                    "the deadline (migtui's own pause: the default applies)")
        first, second = await asyncio.gather(src1.engine_request("resume"), src2.engine_request("resume"))
        assert sorted([first, second])[0].startswith("src: resume already started by ")
        await until(lambda: src1.switchover.result is not None and src2.switchover.result is not None, 30,
                    "the outcome in both views")
        assert src1.switchover.result is not None and src2.switchover.result is not None
        assert src1.switchover.actor is not None
        assert src1.switchover.result.outcome.value == "completed"
        assert src2.switchover.result.reason == src1.switchover.result.reason
        assert src1.switchover.actor == src2.switchover.actor and src1.switchover.actor.startswith(
            ("first", "second"))
        assert len([s for s in src2.switchover.steps if s.key == "continue"]) == 1


@pytest.mark.qemu
async def test_a_read_only_view_can_change_nothing_whatever_it_sends(lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=False, pause=False)
    async with attached(engine.directory) as rw, attached(engine.directory, read_only=True) as ro:
        await watch(rw, monitors(lab))
        src, _dst = await watch(ro, monitors(lab))
        await until(lambda: src.connected and src.polls > 0, 15, "connected")
        for action in ("arm", "resume", "abort", "measure", "disarm"):
            reply = await ro.call(Request, action=action, monitor="src")  # past the view's own check
            assert reply.ok is False and reply.error == f"read-only view: the engine refuses to {action} src"
        assert (await ro.call(Stop)).ok is False
        # Refused before anything was sent (an arm is answered only once QEMU applied it):
        # QEMU, asked on the lab's own socket, is as it was.
        ctl = await lab.control(lab.src)
        answer: Any = await ctl.execute("query-migrate-capabilities")
        caps = {c["capability"]: c["state"] for c in answer}
        assert caps["pause-before-switchover"] is False and not src.state.armed


@pytest.mark.qemu
async def test_a_killed_view_leaves_the_gate_to_the_engine_and_attach_tells_the_story(
        lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=True, pause=False, max_bandwidth=1 * MiB)  # stays active until we say
    policy = PolicyInfo(max_pause_s=1.0, on_max_pause="abort", explicit=["max_pause", "on_max_pause"])
    view = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _VIEW_THAT_ARMS, str(engine.directory), *monitors(lab), json.dumps(to_json(policy)),
        stdout=asyncio.subprocess.PIPE)
    assert view.stdout is not None
    assert (await asyncio.wait_for(view.stdout.readline(), 30)).startswith(b"armed")
    view.kill()  # the terminal is gone (SIGKILL: no goodbye)
    await view.wait()
    await lab.migrate()
    ctl = await lab.control(lab.src)
    await ctl.execute("migrate-set-parameters", {"max-bandwidth": 1024 * MiB})
    # Nobody is attached: the engine applies the deadline by itself, and the guest runs again.
    async with attached(engine.directory) as later:
        await later.subscribe()
        src = later.sessions["src"]
        await until(lambda: src.switchover.result is not None, 30, "the deadline's abort")
        assert src.switchover.result is not None
        assert src.switchover.result.outcome.value == "aborted", src.switchover.result
        assert src.switchover.actor == "the engine's deadline"
        await until(lambda: src.state.running is True, 10, "the source guest running again")
        assert "aborting the migration (--on-max-pause abort)" in src.pause.notes["deadline"] or \
            "deadline" in src.pause.notes["deadline"]
    # The log records the abort's outcome once, in words ("abort aborted" is not one).
    lines = engine.log.splitlines()
    assert len([line for line in lines if src.switchover.result.reason in line]) == 1, lines
    assert "abort aborted" not in engine.log


@pytest.mark.qemu
async def test_an_auto_resume_is_logged_once(lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=True, pause=True)
    policy = PolicyInfo(auto_resume=True, explicit=["auto_resume"])
    async with attached(engine.directory) as view:
        src, _dst = await watch(view, monitors(lab), policy)
        await until(lambda: src.connected and src.polls, 15, "connected")
        await lab.migrate()
        await until(lambda: src.switchover.result is not None, 30, "auto-resume's outcome")
        result = src.switchover.result
        assert result is not None
        assert result.outcome.value == "completed", result
        actor = src.switchover.actor
    lines = engine.log.splitlines()
    assert len([line for line in lines if result.reason in line]) == 1, lines
    assert actor == "auto-resume"


@pytest.mark.qemu
async def test_a_pause_libvirt_drives_is_left_to_it_unless_the_request_forces_it(
        lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=False, pause=True)
    ctl = await lab.control(lab.src)
    # What libvirt always leaves in its QEMUs (workflow/ownership.py): this one reads as libvirt's.
    await ctl.execute("object-add", {"qom-type": "secret", "id": "masterKey0", "data": "bWlndHVp",
                                     "format": "base64"})
    async with attached(engine.directory) as view:
        src, _dst = await watch(view, monitors(lab))
        await until(lambda: src.connected and src.pause.owner == "libvirt", 15, "libvirt recognised")
        await lab.migrate()
        await until(lambda: src.state.in_pre_switchover, 30, "the pause")
        for action in ("resume", "abort"):
            reply = await view.call(Request, action=action, monitor="src")
            assert (reply.ok, reply.error) == (
                False, "src: libvirt drives this migration: acting now may break it; confirm again to force it"), reply
        # Both refused before anything started (the engine says so as it refuses): nothing was sent.
        for action in ("resume", "abort"):
            assert f"src: {action} refused (libvirt drives this migration; not forced)" in engine.log, engine.log
        info: Any = await ctl.execute("query-migrate")
        assert info["status"] == "pre-switchover"
        assert src.switchover.action is None
        reply = await view.call(Request, action="resume", monitor="src", force=True)
        assert reply.ok and reply.message == "src: resume started", reply
        await until(lambda: src.switchover.result is not None, 30, "the outcome")
        assert src.switchover.result is not None
        assert src.switchover.result.outcome.value == "completed", src.switchover.result
    assert "src: resume forced by test" in engine.log


_VIEW_THAT_ARMS = """
import asyncio, json, sys
sys.path.insert(0, TESTS)
from conftest import until
from engine_util import attached, watch
from migtui.protocol.codec import from_json
from migtui.protocol.messages import PolicyInfo
from migtui.model.switchover import Outcome
async def main():
    directory, src, dst, policy = sys.argv[1], sys.argv[2], sys.argv[3], from_json(PolicyInfo, json.loads(sys.argv[4]))
    async with attached(directory) as view:
        s, _ = await watch(view, [src, dst], policy)
        await until(lambda: s.connected and s.polls, 15, 'connected')
        print((await s.engine_request('arm')).split(':')[1].strip(), flush=True)
        await asyncio.sleep(60)
asyncio.run(main())
""".replace("TESTS", repr(str(Path(__file__).resolve().parent.parent)))


@pytest.mark.qemu
async def test_a_killed_engine_is_said_and_the_next_one_shows_the_pause(lab: Lab) -> None:
    await lab.prepare(storage=True, pause=True)  # armed by the lab: not migtui's pause
    directory = short_runtime_dir()
    first = EngineProcess(directory).start()
    try:
        async with attached(directory) as view:
            src, _dst = await watch(view, monitors(lab))
            await until(lambda: src.connected and src.polls, 15, "connected")
            await lab.migrate()
            await until(lambda: src.state.in_pre_switchover, 30, "the pause")
            first.kill()  # the engine dies mid-pause
            assert view.closed is not None
            why = await asyncio.wait_for(asyncio.shield(view.closed), 10)
            assert why == "the migtui engine exited"
        # The next view starts a new engine (the monitors are free again) and sees the pause.
        again = EngineClient(view.runtime, kind="again")
        await again.connect(start=True)
        try:
            src2, _ = await watch(again, monitors(lab))
            await until(lambda: src2.state.in_pre_switchover, 15, "the pause, shown at once")
            await until(lambda: src2.pause.clock is not None, 10, "the engine's pause record")
            assert src2.pause.owner == "other" and src2.pause.deadline is None  # not migtui's: no deadline
        finally:
            await again.close()
        stop = [sys.executable, "-m", "migtui", "engine", "stop", "--runtime-dir", str(directory)]
        refused = subprocess.run(stop, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 1, refused
        assert refused.stderr.startswith("migtui engine: not stopped: it guards src: paused ")
        assert refused.stderr.count("\n") == 1 and "--force" in refused.stderr
        forced = subprocess.run([*stop, "--force"], capture_output=True, text=True, timeout=30)
        assert forced.returncode == 0 and forced.stdout.startswith(
            "migtui engine: stopped; left as they are, with no deadline any more: src"), forced.stdout
        await until(lambda: not engine_pids(directory), 15, "the engine gone")
    finally:
        for pid in engine_pids(directory):
            os.kill(pid, signal.SIGKILL)
        first.cleanup()


@pytest.mark.qemu
async def test_an_engine_a_view_started_guards_what_it_armed_then_sets_it_back_and_exits(lab: Lab) -> None:
    """What the engine armed keeps it running after its last view (its next pause needs the
    deadline); once that migration is over, the engine sets back what it armed and exits."""
    await lab.prepare(storage=False, pause=False)
    directory = short_runtime_dir()
    try:
        client = EngineClient(runtime(directory), kind="starter")
        await client.connect(start=True)  # as `migtui MONITOR...` does
        src, _dst = await watch(client, monitors(lab))
        await until(lambda: src.connected and src.polls, 15, "connected")
        await src.engine_request("arm")
        await until(lambda: src.state.armed, 10, "armed")
        assert len(engine_pids(directory)) == 1
        await client.close()  # the last view goes; src stays armed: the engine stays
        log = directory / "engine.log"
        await until(lambda: "no view attached; still guarding: src: armed by migtui" in log.read_text(), 30,
                    "the engine, its last view gone, deciding to stay")
        assert engine_pids(directory), "the engine left a source it armed without a guard"
        async with attached(directory) as later:
            assert await later.guarding() == [
                "src: armed by migtui; its next pause gets the deadline (60 s then abort)"]
            assert await later.guarding(stopping=True) == []  # stopping would set it back instead
            src, _dst = await watch(later, monitors(lab))
            await until(lambda: src.connected and src.polls, 15, "connected again")
            await lab.migrate()
            await until(lambda: src.state.in_pre_switchover, 30, "the pause")
            assert await src.engine_request("resume") == "src: resume started"
            await until(lambda: src.switchover.result is not None, 30, "the outcome")
            assert src.switchover.result is not None
            assert src.switchover.result.outcome is Outcome.COMPLETED, src.switchover.result
        # The migration is over: nothing left to guard. The engine disarms, then exits.
        await until(lambda: not engine_pids(directory), 15, "the engine gone")
        ctl = await lab.control(lab.src)
        listed: Any = await ctl.execute("query-migrate-capabilities")
        caps = {c["capability"]: c["state"] for c in listed}
        assert caps["pause-before-switchover"] is False and caps["events"] is True  # events was the lab's
    finally:
        for pid in engine_pids(directory):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)


def test_engine_stop_without_an_engine_says_so() -> None:
    directory = short_runtime_dir()
    try:
        result = subprocess.run([sys.executable, "-m", "migtui", "engine", "stop", "--runtime-dir",
                                 str(directory)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and result.stdout == f"migtui engine: none runs in {directory}\n"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_two_views_get_each_feed_entry_once() -> None:
    """The engine sends one FEED message object to every view; a view coalescing the next
    batch into its queue must not grow the message another view has queued."""
    written: dict[int, list[bytes]] = {1: [], 2: []}

    def writer(k: int) -> Any:
        return SimpleNamespace(write=written[k].append, transport=SimpleNamespace(get_write_buffer_size=lambda: 0))

    views = [View(writer(1)), View(writer(2))]
    for n in range(3):
        message = Feed("src", [QmpInput(float(n), "event", event={"event": "STOP"})])
        for view in views:
            view.send(message)
    await asyncio.sleep(0)  # their queues are written on the next turn of the loop
    for k, chunks in written.items():
        messages = [lines.decode(line) for line in b"".join(chunks).splitlines()]
        assert all(isinstance(m, Feed) for m in messages), messages
        assert [e.t for m in messages if isinstance(m, Feed) for e in m.entries] == [0, 1, 2], (k, messages)
