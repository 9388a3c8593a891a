"""Faults against real QEMU: after any of them the state is the truth (issue 9).

The engine (a real process) watches a real lab pair; the lab's QEMUs are killed,
frozen and replaced underneath it. Views are EngineClients: what the dashboard reads.
"""

from __future__ import annotations

import os
import signal

import pytest

from engine_util import EngineProcess, attached, until, watch
from migtui.lab.lab import Lab
from qemu_util import QemuProcess


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
