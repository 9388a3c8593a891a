"""The engine against real QEMU: views attach and detach, the gate outlives them.

A real ``migtui engine`` process in a private runtime directory; views are
EngineClients (the protocol the dashboard speaks, without the screen) and the real
``migtui status``. The lab drives the QEMUs on its own control sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import until
from engine_util import EngineProcess, attached, engine_pids, short_runtime_dir, watch

from migtui.engine.server import View
from migtui.lab.lab import Lab
from migtui.logfile import BURST, RepeatFilter, setup_logging
from migtui.model.qmpinput import QmpInput
from migtui.model.switchover import Outcome
from migtui.protocol import framing as p
from migtui.protocol import lines
from migtui.protocol.codec import to_json
from migtui.protocol.messages import Convergence, Error, Feed, PolicyInfo, Request, Stop
from migtui.protocol.runtime import runtime
from migtui.view.client import EngineClient, EngineError

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
        await until(lambda: "deadline" in src.pause.notes, 10, "the deadline's note")  # decided a turn later
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
    # Their queues are written a turn or two later (server.View.send): all in one write.
    await until(lambda: all(written.values()), 30, "both views written")
    for k, chunks in written.items():
        assert len(chunks) == 1, chunks
        messages = [lines.decode(line) for line in b"".join(chunks).splitlines()]
        assert all(isinstance(m, Feed) for m in messages), messages
        assert [e.t for m in messages if isinstance(m, Feed) for e in m.entries] == [0, 1, 2], (k, messages)


async def test_a_polls_input_and_what_it_changed_go_out_in_one_write() -> None:
    """The engine decides the advice and the pause's facts in callbacks of their own, after
    the input that changed them: a view gets them in the same write as that input (it wakes
    once a poll, not twice). An error still goes at the next turn, ahead of a close."""
    chunks: list[bytes] = []
    writer: Any = SimpleNamespace(write=chunks.append, transport=SimpleNamespace(get_write_buffer_size=lambda: 0))
    view = View(writer)
    loop = asyncio.get_running_loop()
    view.send(Feed("src", [QmpInput(1.0, "reply", command="query-migrate", reply={"status": "active"})]))
    loop.call_soon(view.send, Convergence("src"))  # as Engine._flush_advice does
    await until(lambda: chunks, 30, "the write")
    assert [lines.decode(line).OP for line in chunks[0].splitlines()] == ["feed", "convergence"], chunks
    chunks.clear()
    view.send(Feed("src", []))
    view.send(Error("protocol error: x"))
    await asyncio.sleep(0)  # the turn a connection's handler closes it after
    assert [lines.decode(line).OP for line in b"".join(chunks).splitlines()] == ["feed", "error"], chunks


# ---------------------------------------------------------------------- issue 14: what a script can do to the engine


def _fd_limit(soft: int, hard: int) -> Callable[[], None]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return limit


def _open_limit(pid: int) -> tuple[int, int]:
    """The engine's (soft, hard) limit of open files, from /proc."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/PID/limits")


def _leak_connections(path: Path, count: int) -> list[socket.socket]:
    """``count`` connections to the engine that never say anything, as a leaky script
    leaves them: each connect is retried until the engine's backlog takes it."""
    opened: list[socket.socket] = []
    while len(opened) < count:
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(str(path))
        except BlockingIOError:  # the backlog is full: the engine has not accepted yet
            s.close()
            time.sleep(0.001)
            continue
        opened.append(s)
    return opened


def _closed_by_peer(s: socket.socket) -> bool:
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


async def test_a_thousand_idle_connections_cost_the_engine_a_few_lines_and_views_still_attach() -> None:
    """Issue 14.3: a script leaks a thousand connections that never say hello, to an engine
    whose hard limit of open files is low. The engine raises its soft limit to the hard one,
    closes connections that wait for their hello (the oldest first, then after 10 s), takes a
    bounded number of views and refuses more in one line; its log stays a few lines, and new
    views and `migtui engine stop` work throughout."""
    engine = EngineProcess(short_runtime_dir(), preexec=_fd_limit(64, 128)).start()
    leaked: list[socket.socket] = []
    views: list[EngineClient] = []
    try:
        assert _open_limit(engine.pid) == (128, 128)  # raised to the hard limit
        leaked = await asyncio.to_thread(_leak_connections, engine.directory / "engine.sock", 1000)
        # A view attaches while they are all open on the script's side.
        async with attached(engine.directory, kind="during") as view:
            assert await view.guarding() == []
            # Views up to the engine's bound attach; the next one is refused in one line.
            refused: EngineError | None = None
            for n in range(200):
                client = EngineClient(runtime(engine.directory), kind=f"extra-{n}")
                try:
                    await client.connect(start=False)
                except EngineError as err:
                    refused = err
                    break
                views.append(client)
            assert refused is not None, "the engine took 200 views with 128 file descriptors"
            assert "views attached, the most it takes" in str(refused) and "\n" not in str(refused), refused
            assert 4 <= len(views) < 64
        for client in views:
            await client.close()
        views.clear()
        # Every leaked connection is closed by the engine: the oldest at once, the last after 10 s.
        await until(lambda: all(_closed_by_peer(s) for s in leaked), 120, "the leaked connections closed")
        stop = subprocess.run([sys.executable, "-m", "migtui", "engine", "stop", "--runtime-dir",
                               str(engine.directory)], capture_output=True, text=True, timeout=60)
        assert (stop.returncode, stop.stdout, stop.stderr) == (0, "migtui engine: stopped\n", ""), stop
        assert engine.proc is not None
        await asyncio.to_thread(engine.proc.wait, 60)
        log = engine.log
        assert "Traceback" not in log and "out of system resource" not in log, log[-3000:]
        assert len(log.splitlines()) < 400, f"{len(log.splitlines())} lines"
        assert "no hello within 10 s: closed" not in log  # the refusal goes to the peer, not the log
    finally:
        for client in views:
            await client.close()
        for s in leaked:
            s.close()
        engine.cleanup()


def test_a_log_storm_is_thinned_out_and_the_log_file_stays_bounded(tmp_path: Path) -> None:
    """Issue 14.3: the same line (a traceback, say) thousands of times a second is written
    in a burst, then once a second with the count left out; and the file is rotated once."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.raiseExceptions)
    path = tmp_path / "engine.log"
    try:
        setup_logging(str(path), max_bytes=256 * 1024)
        storm = logging.getLogger("asyncio")
        for _ in range(20_000):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                storm.exception("socket.accept() out of system resource")
        for n in range(300):  # lines that differ in their arguments only are one kind too
            logging.getLogger("migtui.engine").info("watching %s", f"vm{n}")
        logging.getLogger("migtui.engine").info("a line of another kind")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        logging.raiseExceptions = saved[2]
    text = path.read_text()
    assert text.count("socket.accept() out of system resource") <= BURST + 5, text.count("out of system")
    assert text.count("watching vm") <= BURST + 5
    assert "a line of another kind" in text
    sizes = [p.stat().st_size for p in tmp_path.iterdir()]
    assert sorted(p.name for p in tmp_path.iterdir()) in (["engine.log"], ["engine.log", "engine.log.1"])
    assert max(sizes) <= 256 * 1024 + 64 * 1024, sizes


def test_a_repeated_line_says_how_many_like_it_were_left_out() -> None:
    now = [0.0]
    thinning = RepeatFilter(burst=3, every=1.0, clock=lambda: now[0])
    records = [logging.LogRecord("x", logging.WARNING, __file__, 1, "dropping %s", (f"v{n}",), None)
               for n in range(10)]
    passed = [r for r in records if thinning.filter(r)]
    assert [r.getMessage() for r in passed] == ["dropping v0", "dropping v1", "dropping v2"]
    now[0] = 1.0
    later = logging.LogRecord("x", logging.WARNING, __file__, 1, "dropping %s", ("v10",), None)
    assert thinning.filter(later)
    assert later.getMessage() == "dropping v10 [7 more like this left out]"


async def test_a_stopped_engine_is_named_and_stop_force_ends_it(engine: EngineProcess) -> None:
    """Issue 14.5: SIGSTOP the engine. A new view, `migtui engine stop` and `migtui status`
    say in one line that it is stopped, with its pid and what to do; `--force` ends it."""
    os.kill(engine.pid, signal.SIGSTOP)
    try:
        client = EngineClient(runtime(engine.directory), kind="late")
        with pytest.raises(EngineError) as caught:
            await client.connect(start=False)
        said = str(caught.value)
        assert f"(pid {engine.pid}) is stopped" in said and f"kill -CONT {engine.pid}" in said, said
        assert "migtui engine stop --force" in said and "\n" not in said
        stop = [sys.executable, "-m", "migtui", "engine", "stop", "--runtime-dir", str(engine.directory)]
        refused = await asyncio.to_thread(subprocess.run, stop, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and refused.stdout == "", refused
        assert refused.stderr.startswith("migtui engine: not stopped: the migtui engine at "), refused.stderr
        assert f"kill -CONT {engine.pid}" in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
        assert engine.proc is not None and engine.proc.poll() is None  # not stopped without --force
        forced = await asyncio.to_thread(subprocess.run, [*stop, "--force"], capture_output=True, text=True,
                                         timeout=120)
        assert forced.returncode == 0, forced
        assert forced.stdout.startswith(f"migtui engine: pid {engine.pid} did not answer: "), forced.stdout
        assert forced.stdout.count("\n") == 1 and forced.stderr == "", forced
        assert await asyncio.to_thread(engine.proc.wait, 60) is not None
        assert not (engine.directory / "engine.sock").exists() and not (engine.directory / "engine.pid").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(engine.pid, signal.SIGCONT)


async def test_stop_force_never_signals_a_process_that_is_not_this_directorys_engine() -> None:
    """Issue 14.5: a socket that never answers and an engine.pid naming another process
    (a recycled pid): --force says it found no engine and signals nothing."""
    directory = short_runtime_dir()
    bystander = subprocess.Popen(["sleep", "600"])
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(str(directory / "engine.sock"))
        listener.listen(8)  # connects succeed; nobody ever answers
        (directory / "engine.pid").write_text(f"{bystander.pid}\n")
        stop = [sys.executable, "-m", "migtui", "engine", "stop", "--force", "--runtime-dir", str(directory)]
        result = await asyncio.to_thread(subprocess.run, stop, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result
        assert "does not answer" in result.stderr and "nothing was signalled" in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
        assert bystander.poll() is None  # untouched
    finally:
        listener.close()
        bystander.kill()
        bystander.wait()
        shutil.rmtree(directory, ignore_errors=True)


async def test_an_engine_that_exits_at_once_is_said_with_its_reason() -> None:
    """Issue 14.5: the engine a view starts cannot open its log (a directory is there): the
    view says why at once, from the engine's stderr, instead of waiting out its 10 s."""
    directory = short_runtime_dir()
    try:
        os.chmod(directory, 0o700)
        (directory / "engine.log").mkdir()
        client = EngineClient(runtime(directory), kind="starter")
        with pytest.raises(EngineError) as caught:
            await client.connect(start=True)
        said = str(caught.value)
        assert said.startswith("the migtui engine exited at once: "), said
        assert "engine.log: Is a directory" in said and "\n" not in said, said
    finally:
        for pid in engine_pids(directory):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)


async def test_a_full_runtime_directory_is_said_not_a_connection_reset() -> None:
    """Issue 14.5: the runtime directory (a tmpfs, as $XDG_RUNTIME_DIR is) is full: the
    engine a view starts cannot write engine.pid; it exits cleanly, and the view says the
    directory is full instead of 'Connection reset by peer'."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")  # CI runs as root
    directory = short_runtime_dir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(directory)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        with contextlib.suppress(OSError), open(directory / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        client = EngineClient(runtime(directory), kind="starter")
        with pytest.raises(EngineError) as caught:
            await client.connect(start=True)
        said = str(caught.value)
        assert f"the runtime directory {directory} is full" in said and "\n" not in said, said
        assert "reset by peer" not in said
        await until(lambda: not engine_pids(directory), 30, "the engine gone")
    finally:
        for pid in engine_pids(directory):
            os.kill(pid, signal.SIGKILL)
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def test_a_regular_file_at_the_runtime_path_is_named() -> None:
    """Issue 14.5: not just 'File exists'."""
    directory = short_runtime_dir()
    path = directory / "rt"
    try:
        path.write_text("")
        result = subprocess.run([sys.executable, "-m", "migtui", "engine", "stop", "--runtime-dir", str(path)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 1, result
        assert result.stderr == (f"migtui engine: runtime directory {path} is a regular file, not a directory:"
                                 " remove it, or choose another with --runtime-dir or $MIGTUI_RUNTIME_DIR\n")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(("first", "says"), [
    (b'{"op": "hello", "version": true}', "protocol error: hello.version: expected an integer, got True"),
    (b"[" * 200_000 + b"]" * 200_000, "protocol error: not a JSON line (maximum recursion depth exceeded"),
    (b'{"op": "hello", "version": ' + b"[" * 990 + b"]" * 990 + b"}", "protocol error: "),
], ids=["boolean-version", "nested-200000-deep", "nested-990-deep-in-a-field"])
def test_a_hello_that_is_not_one_gets_one_error_line(engine: EngineProcess, first: bytes, says: str) -> None:
    """Issue 14.5, end to end: a boolean version, JSON nested beyond any depth (as the hello
    or as a later request) each get one error line, and the engine goes on."""
    for hello_first in (False, True):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(60)
            s.connect(str(engine.directory / "engine.sock"))
            reader = s.makefile("rb")
            if hello_first:  # a good hello, then the bad line as a request
                s.sendall(p.encode_json({"op": "hello", "version": p.VERSION}))
                assert json.loads(reader.readline())["op"] == "welcome"
            s.sendall(first + b"\n")
            while True:
                reply = json.loads(reader.readline())
                if reply["op"] != "heartbeat":
                    break
            assert reply["op"] == "error" and reply["error"].startswith(says), reply
            assert reader.readline() == b""  # then the connection closes
    assert engine.proc is not None and engine.proc.poll() is None
    assert "Traceback" not in engine.log


@pytest.mark.qemu
async def test_a_burst_of_unread_subscribes_is_dropped_at_the_limit_not_after_building_it(
        lab: Lab, engine: EngineProcess) -> None:
    """Issue 14.5: thousands of `subscribe`s in one burst, none of their answers read: the
    view is dropped once 16 MiB are unread, before the engine built them all in memory."""
    await lab.prepare(storage=False, pause=False)
    async with attached(engine.directory) as view:
        src, _dst = await watch(view, monitors(lab))
        await until(lambda: src.connected and src.polls, 15, "connected")
        await lab.migrate()  # events and figures: a picture worth sending
        await until(lambda: src.state.migration_status == "completed", 60, "a completed migration in the journal")
    picture = await asyncio.to_thread(_picture_bytes, engine.directory)
    count = max(3000, (400 * MiB) // max(picture, 1))  # the answers would be 400 MiB at least
    before = _peak_rss(engine.pid)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(engine.directory / "engine.sock"))
        s.sendall(p.encode_json({"op": "hello", "version": p.VERSION, "view": {"kind": "greedy"}}))
        burst = b"".join(p.encode_json({"op": "subscribe", "id": n}) for n in range(count))
        await asyncio.to_thread(_send_until_closed, s, burst)
        await until(lambda: "dropping greedy" in engine.log, 120, "the greedy view dropped")
    grown = _peak_rss(engine.pid) - before
    assert grown < 150 * MiB, f"the engine grew by {grown // MiB} MiB for {count} pictures of {picture} bytes"
    print(f"{count} subscribes of {picture} bytes each: the engine grew by {grown // MiB} MiB")
    async with attached(engine.directory) as later:  # the engine serves on
        await later.subscribe()
        assert set(later.sessions) == {"src", "dst"}


def _picture_bytes(directory: Path) -> int:
    """The size of what one `subscribe` makes the engine send."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(directory / "engine.sock"))
        reader = s.makefile("rb")
        s.sendall(p.encode_json({"op": "hello", "version": p.VERSION}))
        reader.readline()  # welcome
        s.sendall(p.encode_json({"op": "subscribe", "id": 1}))
        size = 0
        while True:
            line = reader.readline()
            size += len(line)
            if json.loads(line).get("op") == "reply":
                return size


def _send_until_closed(s: socket.socket, data: bytes) -> None:
    s.settimeout(120)
    with contextlib.suppress(OSError):  # the engine drops us before it read all of it
        s.sendall(data)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")
