"""Faults against real QEMU: after any of them the state is the truth (issue 9).

The engine (a real process) watches a real lab pair; the lab's QEMUs are killed,
frozen and replaced underneath it. Views are EngineClients: what the dashboard reads.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest
from conftest import until
from engine_util import EngineProcess, attached, watch
from libvirt_lab import commands_by_monitor
from qemu.qmp import EventListener, QMPClient
from qemu_util import QemuProcess, TracedQemu

from migtui.lab.lab import Lab
from migtui.model.coerce import as_mapping
from migtui.model.switchover import Outcome, Phase
from migtui.protocol.messages import PolicyInfo, Request
from migtui.transport.readonly import READ_ONLY_COMMANDS
from migtui.workflow import availability


@pytest.mark.qemu
async def test_a_new_qemu_at_the_same_socket_does_not_inherit_the_dead_ones_pause(
        lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=True, pause=True)
    async with attached(engine.directory) as view:
        src, _dst = await watch(view, [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"])
        await until(lambda: src.connected and src.polls, 15, "connected")
        await lab.migrate()
        await until(lambda: src.state.in_pre_switchover, 30, "the pause")
        generation = src.generation

        os.kill(lab.src.pid, signal.SIGKILL)  # the source QEMU dies in its pause ...
        await until(lambda: not src.connected, 15, "the monitor lost")
        fresh = QemuProcess(lab.src.qmp_path, machine="pc").start()  # ... and another starts there
        try:
            await until(lambda: src.connected and src.generation != generation, 30, "reconnected")
            await until(lambda: src.state.run_state is not None and src.state.capabilities.supports("events"),
                        15, "the new QEMU's own state")
            assert not src.state.in_pre_switchover and src.state.migration_status == "none"
            assert src.state.block_jobs == {} and src.switchover.action is None
            with pytest.raises(Exception, match="not paused in pre-switchover"):
                await src.engine_request("resume")  # nothing to resume: nothing sent
            assert "armed" in await src.engine_request("arm")  # the new QEMU is idle: it can be armed
        finally:
            fresh.kill()


# ---------------------------------------------------------------------- helpers


def monitors(lab: Lab) -> list[str]:
    return [f"src={lab.src.qmp_path}", f"dst={lab.dst.qmp_path}"]


async def qemu_status(lab: Lab) -> tuple[str, list[dict[str, Any]]]:
    """The source's migration status and block jobs, asked on the lab's own socket."""
    ctl = await lab.control(lab.src)
    info: Any = await ctl.execute("query-migrate")
    jobs: Any = await ctl.execute("query-block-jobs")
    return str(info.get("status")), list(jobs)


# ---------------------------------------------------------------------- defect 1: a reconnect is a new QEMU


@pytest.mark.qemu
async def test_nothing_bound_to_the_dead_qemu_reaches_the_new_one_at_its_socket(
        lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=True, pause=True)  # armed by the lab: the explicit flags give it a deadline
    policy = PolicyInfo(max_pause_s=6.0, on_max_pause="abort", explicit=["max_pause", "on_max_pause"])
    async with attached(engine.directory) as view:
        src, _dst = await watch(view, monitors(lab), policy)
        await until(lambda: src.connected and src.polls, 15, "connected")
        await lab.migrate()
        await until(lambda: src.state.in_pre_switchover and src.pause.deadline is not None, 30,
                    "the pause, its deadline")
        generation = src.generation

        # A resume in flight when the QEMU dies: frozen, the source never answers its check.
        os.kill(lab.src.pid, signal.SIGSTOP)
        assert await src.engine_request("resume") == "src: resume started"
        await until(lambda: src.switchover.phase is Phase.CHECKING, 10, "the check under way")
        os.kill(lab.src.pid, signal.SIGKILL)
        await until(lambda: not src.connected, 15, "the monitor lost")
        fresh = TracedQemu(lab.src.qmp_path, machine="pc").start()  # another QEMU at the same socket
        try:
            await until(lambda: src.connected and src.generation != generation, 30, "reconnected")
            await until(lambda: src.state.run_state is not None and src.state.capabilities.supports("events"),
                        15, "the new QEMU's own state")
            assert src.switchover.action is None and src.switchover.pause_since is None
            # The requests are answered as a view's availability answers them: nothing to act on.
            # (An abort covers any migration now: there is none to cancel.)
            for action, said in (("resume", "src is not paused in pre-switchover (status none)"),
                                 ("abort", "src: nothing to abort (migration status none)")):
                reply = await view.call(Request, action=action, monitor="src")
                assert (reply.ok, reply.error) == (False, said), reply
            # The dead pause's deadline went with its connection (its timer cancelled): it does
            # nothing to the new QEMU.
            await until(lambda: not src.pause.paused and src.pause.deadline is None, 15,
                        "the dead pause's deadline gone")
            async with attached(engine.directory, kind="later") as later:
                await later.subscribe()
                again = later.sessions["src"]
                await until(lambda: again.connected and again.polls, 10, "the later view's picture")
                assert again.switchover.pause_since is None and again.switchover.action is None  # not the dead one's
            sent = [c.command for c in fresh.commands()]
            assert "query-migrate" in sent and all(c in READ_ONLY_COMMANDS for c in sent), sent
            # The old pause's switchover ended with one line, having sent nothing to the new QEMU.
            assert "src: the QEMU behind this monitor changed (reconnected): nothing sent" in engine.log
        finally:
            fresh.kill()


@pytest.mark.qemu
async def test_what_the_engine_armed_on_a_dead_qemu_is_not_the_new_ones(lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=False, pause=False)
    # Not explicit: the deadline applies to migtui's own pauses only.
    policy = PolicyInfo(max_pause_s=3.0, on_max_pause="abort")
    async with attached(engine.directory) as view:
        src, _dst = await watch(view, monitors(lab), policy)
        await until(lambda: src.connected and src.polls, 15, "connected")
        assert "armed" in await src.engine_request("arm")
        await until(lambda: src.pause.owner == "migtui", 10, "armed by migtui")
        await lab.migrate()
        await until(lambda: src.state.in_pre_switchover, 30, "the pause")
        generation = src.generation
        os.kill(lab.src.pid, signal.SIGKILL)  # before its deadline
        await until(lambda: not src.connected, 15, "the monitor lost")
        fresh = TracedQemu(lab.src.qmp_path, machine="pc", extra_sockets=1).start()
        try:
            await until(lambda: src.connected and src.generation != generation, 30, "reconnected")
            # Another client arms the new QEMU and migrates it to its own pause: not migtui's.
            ctl = QMPClient("other")
            await ctl.connect(str(fresh.extra_sockets[0]))
            try:
                await ctl.execute("migrate-set-capabilities", {"capabilities": [
                    {"capability": "events", "state": True},
                    {"capability": "pause-before-switchover", "state": True}]})
                await ctl.execute("migrate", {"uri": "exec:cat > /dev/null"})
                await until(lambda: src.state.in_pre_switchover, 30, "the new QEMU's own pause")
                await until(lambda: src.pause.clock is not None, 10, "the engine's record of it")
                assert src.pause.owner == "other" and src.pause.deadline is None, src.pause
                # Its deadline comes (3 s), finds the pause is not migtui's, and does nothing.
                await until(lambda: "src: deadline passed: nothing done" in engine.log, 30, "the deadline passing")
                info: Any = await ctl.execute("query-migrate")
                status = info["status"]
                assert status == "pre-switchover", status  # nobody ended the other client's pause
            finally:
                await ctl.disconnect()
            by_mon = commands_by_monitor(fresh.commands())
            engine_sent = [c.command for mon, cmds in by_mon.items() if "migrate" not in [c.command for c in cmds]
                           for c in cmds]
            assert "query-migrate" in engine_sent and all(c in READ_ONLY_COMMANDS for c in engine_sent), engine_sent
        finally:
            fresh.kill()


# ---------------------------------------------------------------------- defect 3: what never reached QEMU


@pytest.mark.qemu
async def test_a_resume_that_changed_nothing_can_be_tried_again(lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=True, pause=True)
    async with attached(engine.directory) as view:
        src, _dst = await watch(view, monitors(lab))
        await until(lambda: src.connected and src.polls and src.state.block_jobs, 15, "connected")
        await lab.migrate()
        await until(lambda: src.state.in_pre_switchover, 30, "the pause")
        os.kill(lab.src.pid, signal.SIGSTOP)  # frozen: it reads nothing, answers nothing
        try:
            assert await src.engine_request("resume") == "src: resume started"
            await until(lambda: src.switchover.phase is Phase.CHECKING, 10, "the check under way")
            await until(lambda: not src.switchover.running, 15, "the check's end")
        finally:
            os.kill(lab.src.pid, signal.SIGCONT)
        said = "src: no answer from QEMU within 5 s (frozen?): nothing was changed; resume can be tried again"
        assert ("warning", said) in view.notices, view.notices
        # As before the attempt (compared: after `assert ... is None` mypy takes the result below for None).
        assert (src.switchover.action, src.switchover.result) == (None, None)
        assert src.switchover.attempt is not None and src.switchover.attempt.reason == said
        # QEMU is healthy, still paused, its mirror untouched.
        status, jobs = await qemu_status(lab)
        assert status == "pre-switchover" and [j["ready"] for j in jobs] == [True], (status, jobs)
        await until(lambda: src.poll_error is None and availability.resume(src, src.switchover).allowed, 15,
                    "resume on offer again")
        assert await src.engine_request("resume") == "src: resume started"
        await until(lambda: src.switchover.result is not None, 30, "the outcome")
        assert src.switchover.result is not None
        assert src.switchover.result.outcome is Outcome.COMPLETED, src.switchover.result


@pytest.mark.qemu
async def test_the_deadline_does_not_lapse_when_the_operators_resume_changed_nothing(
        lab: Lab, engine: EngineProcess) -> None:
    """The deadline passes while the operator's resume is still checking a frozen QEMU: it
    is left to it. That resume then changes nothing (no answer): the guest is still paused,
    and the deadline acts again by itself -- no pause is left without one."""
    await lab.prepare(storage=True, pause=True)
    policy = PolicyInfo(max_pause_s=3.0, on_max_pause="abort", explicit=["max_pause", "on_max_pause"])
    async with attached(engine.directory) as view:
        src, _dst = await watch(view, monitors(lab), policy)
        await until(lambda: src.connected and src.polls and src.state.block_jobs, 15, "connected")
        await lab.migrate()
        await until(lambda: src.state.in_pre_switchover, 30, "the pause")
        os.kill(lab.src.pid, signal.SIGSTOP)
        try:
            assert await src.engine_request("resume") == "src: resume started"
            await until(lambda: "left to it" in str(src.pause.notes.get("deadline")), 10,
                        "the deadline passing during the resume")
            await until(lambda: src.switchover.attempt is not None, 15, "the resume's end: nothing changed")
        finally:
            os.kill(lab.src.pid, signal.SIGCONT)
        await until(lambda: src.switchover.result is not None, 30, "the deadline acting again")
        assert src.switchover.result is not None
        assert src.switchover.result.outcome is Outcome.ABORTED, src.switchover.result
        assert src.switchover.actor == "the engine's deadline"
        assert "src: deadline passed while resume was under way: left to it" in engine.log
        assert "src: paused 3 s: aborting the migration (--on-max-pause abort)" in engine.log
    status, _jobs = await qemu_status(lab)
    assert status == "cancelled", status


# ---------------------------------------------------------------------- the outcome says what happened


@pytest.mark.qemu
async def test_a_migration_that_fails_after_migrate_continue_says_what_happened(
        lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=False, pause=True)  # RAM only
    async with attached(engine.directory) as view:
        src, dst = await watch(view, monitors(lab))
        await until(lambda: src.connected and src.polls and dst.connected, 15, "connected")
        await lab.migrate()
        await until(lambda: src.state.in_pre_switchover, 30, "the pause")
        os.kill(lab.dst.pid, signal.SIGKILL)
        await until(lambda: not dst.connected, 15, "the destination monitor lost")
        assert await src.engine_request("resume") == "src: resume started"
        await until(lambda: src.switchover.result is not None, 30, "the outcome")
        result = src.switchover.result
        assert result is not None
        assert result.outcome is Outcome.FAILED, result
        assert result.reason.startswith("src: the migration failed after migrate-continue"), result.reason
        if src.state.migration.error_desc is None:
            assert result.reason == ("src: the migration failed after migrate-continue"
                                     " (QEMU gave no reason: check the destination)")
        else:
            assert result.reason.endswith(f": {src.state.migration.error_desc}")
        assert "no reason given" not in result.reason
        reply = await view.call(Request, action="abort", monitor="src")
        # The migration is over (failed): nothing is left to cancel.
        assert (reply.ok, reply.error) == (False, "src: nothing to abort (migration status failed)"), reply
        log_lines = engine.log.splitlines()
        assert len([line for line in log_lines if "resume requested by" in line]) == 1
        assert len([line for line in log_lines if result.reason in line]) == 1, log_lines


# ---------------------------------------------------------------------- defect 10: the final figures


@pytest.mark.qemu
async def test_the_final_figures_are_qemus_when_the_source_quits_right_after_completion(
        lab: Lab, engine: EngineProcess) -> None:
    await lab.prepare(storage=False, pause=False)
    async with attached(engine.directory) as view:
        # A long poll interval: the figures must come from the completion itself, not a poll.
        src, _dst = await watch(view, monitors(lab), interval=1.0)
        await until(lambda: src.connected and src.polls, 15, "connected")
        ctl = await lab.control(lab.src)
        completed = EventListener("MIGRATION", lambda ev: as_mapping(ev.get("data")).get("status") == "completed")
        with ctl.listen(completed):
            await lab.migrate()
            await asyncio.wait_for(completed.get(), 30)
            # As libvirt quits its source QEMU (60-250 ms after completed), but sooner: 10 ms
            # for the engine to ask, then QEMU's own final figures (QEMU answers the engine's
            # query, asked before ours, first), then the end.
            await asyncio.sleep(0.01)
            final: Any = await ctl.execute("query-migrate")
            os.kill(lab.src.pid, signal.SIGKILL)
        await until(lambda: not src.connected, 15, "the monitor lost")
        # The final figures the engine asked for at completion reach the view, then stay.
        await until(lambda: src.state.migration.downtime == final["downtime"], 10, "QEMU's final figures")
        info = src.state.migration
        assert info.status == "completed"
        assert info.downtime is not None and info.downtime == final["downtime"], (info, final)
        assert src.state.final_downtime_ms == final["downtime"]
        assert info.ram is not None and info.ram.transferred == final["ram"]["transferred"], (info.ram, final)
        assert info.ram.remaining == final["ram"]["remaining"] and info.total_time == final["total-time"]


# ---------------------------------------------------------------------- issue 14.4: a frozen engine


@pytest.mark.qemu
async def test_a_frozen_engine_is_marked_silent_and_a_request_the_view_gave_up_on_never_runs(
        lab: Lab, engine: EngineProcess) -> None:
    """SIGSTOP the engine during a pause: the view marks it silent (no heartbeat), with its pid
    and what to do; a confirmed resume the view gives up on is one error line, nothing left
    'resuming'; and once the engine goes on, that request -- expired -- never reaches QEMU."""
    await lab.prepare(storage=False, pause=True)
    async with attached(engine.directory) as view:
        src, _dst = await watch(view, monitors(lab))
        await until(lambda: src.connected and src.polls, 15, "connected")
        await lab.migrate()
        await until(lambda: src.state.in_pre_switchover and src.control("resume").allowed is True, 30,
                    "the pause, resume on offer")
        assert view.silence() is None and src.engine_silence is None
        changes: list[frozenset[str]] = []
        src.add_change_listener(lambda _s, kinds: changes.append(kinds))
        os.kill(engine.pid, signal.SIGSTOP)
        try:
            await until(lambda: view.silence() is not None, 60, "the engine marked silent")
            said = src.engine_silence
            assert said is not None and said.startswith("the migtui engine has said nothing since "), said
            assert f"(pid {engine.pid}) is stopped" in said and f"kill -CONT {engine.pid}" in said, said
            assert any("connection" in kinds for kinds in changes)  # the screen is told to repaint
            view.call_timeout = 2.0  # the view gives up on its request soon
            outcome = await src.switchover.start_resume()  # a task whose error is its result
            assert outcome.startswith("the migtui engine did not answer resume src within 2 s: not done,"
                                      " and it will not be done later"), outcome
            assert f"pid {engine.pid}" in outcome and "\n" not in outcome
            assert src.switchover.requested is None and src.control("resume").allowed is True  # not "resuming"
            assert view.notices[-1] == ("error", outcome)
        finally:
            os.kill(engine.pid, signal.SIGCONT)
        await until(lambda: view.silence() is None, 30, "the engine heard again")
        await until(lambda: "src: resume not done: the view gave up on it" in engine.log, 30,
                    "the engine to refuse the expired request")
        # The engine's refusal is the proof nothing was done; QEMU shows it too.
        status, _jobs = await qemu_status(lab)
        assert status == "pre-switchover"  # the guest still waits: nothing was sent
        assert src.switchover.action is None and src.state.in_pre_switchover
        view.call_timeout = 30.0
        assert await src.engine_request("resume") == "src: resume started"  # a fresh request acts
        await until(lambda: src.switchover.result is not None, 30, "the outcome")
        assert src.switchover.result is not None and src.switchover.result.outcome is Outcome.COMPLETED


@pytest.mark.qemu
async def test_a_destination_that_stops_answering_fails_the_pause_checklist(lab: Lab, engine: EngineProcess) -> None:
    """A hung destination QEMU during the pause: what is known of it is old, and a switchover
    would stall on it with the guest stopped. The checklist's destination line fails, saying
    why (so --auto-resume and the deadline's resume hold), and passes again once it answers."""
    await lab.prepare(storage=False, pause=True)
    async with attached(engine.directory) as view:
        src, dst = await watch(view, monitors(lab))
        await until(lambda: src.connected and src.polls and dst.connected, 15, "connected")
        await lab.migrate()
        await until(lambda: src.state.in_pre_switchover, 30, "the pause")

        def destination() -> Any:
            return next(c for c in src.pause.checklist if c.name == "destination")

        await until(lambda: destination().ok, 15, "the destination checked")
        os.kill(lab.dst.pid, signal.SIGSTOP)  # frozen: it reads nothing, answers nothing
        try:
            # Asked every 10 s while it receives (idle), each command given 5 s.
            await until(lambda: not destination().ok, 60, "the destination's check failing")
            assert destination().detail.startswith("not answering its polls (dst: "), destination()
            assert src.state.in_pre_switchover
        finally:
            os.kill(lab.dst.pid, signal.SIGCONT)
        await until(lambda: destination().ok, 60, "the destination answering again")
