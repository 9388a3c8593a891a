"""The lab's scenarios: how the guest is paced and what each migration shows.

Scenarios (defaults; ``migtui lab`` --bandwidth, --dirty-rate, --downtime-limit override them):

  scenario  storage  pause  max-bandwidth  guest dirties  what you see
  none      no       no     QEMU's own     2.8 MiB/s      the pair; the destination waits on
                                                          -incoming defer: start it from migtui (m)
  converge  no       no     4 MiB/s        2.8 MiB/s      passes shrink, it completes
  storage   yes      yes    4 MiB/s        2.8 MiB/s      mirror, then pre-switchover
  stuck     no       no     4 MiB/s        8 MiB/s        dirty rate > bandwidth

Why the guest is paced: an unpaced guest re-dirties its whole range (16 MiB)
between two bitmap syncs under KVM and TCG alike, so a precopy either converges
in its first pass (bandwidth x downtime-limit >= 16 MiB, i.e. well under a
second of migration) or never. Pacing the guest with the PIT to a dirty rate R
below the bandwidth B makes each pass about R/B of the one before, like a real
workload; its first sweep is unpaced so the whole range holds data at once.

Measured on this project's machine (2 cores, QEMU 7.2, nested KVM available),
--memory 128 --dirty 16, downtime-limit 300 ms (QEMU's default), with --start:

  converge  KVM: completed after 13.1 s, 15 syncs, downtime 3 ms
            TCG: completed after 13.3 s, 15 syncs, downtime 5 ms
  storage   KVM: pre-switchover after 12.9 s (the mirror of the empty 64 MiB
            disk is in sync during setup, in ~0.1 s); TCG: after 13.2 s
  stuck     KVM and TCG: a new pass every ~3.8 s, 16 MiB left each time; never
  none      QEMU's own max-bandwidth (128 MiB/s in 7.2): completed in 0.1 s

The guest's dirty rate, measured from guest memory (pmemsave twice, 2 s apart):
2.85 MiB/s under KVM and 2.80 under TCG for 2.8 requested; 8.06 and 7.98 for 8.

The vCPU dirty limit (remedy 5, ``set-vcpu-dirty-limit``) needs KVM's dirty ring:
``--dirty-ring 4096`` (``Lab(dirty_ring=...)``) runs both QEMUs with
``-accel kvm,dirty-ring-size=4096``. The guest's paced wait writes no memory for that:
where the kernel emulates the guest's instructions (PVM, the nested KVM of this project's
machine) every emulated write is a ring entry, and a call per PIT read filled the ring
faster than QEMU reaps it -- the vCPU froze once the migration turned dirty logging on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .guest import MiB
from .lab import Lab


@dataclass(frozen=True)
class Scenario:
    storage: bool
    pause: bool
    bandwidth_mib_s: float | None  # None: leave QEMU's default (128 MiB/s in 7.2)
    dirty_rate_mib_s: float
    summary: str


DEFAULT_RATE = 2.8
DEFAULT_BANDWIDTH = 4.0
SCENARIOS = {
    "none": Scenario(False, False, None, DEFAULT_RATE, "the pair, the destination on -incoming defer"),
    "converge": Scenario(False, False, DEFAULT_BANDWIDTH, DEFAULT_RATE, "plain precopy that converges"),
    "storage": Scenario(True, True, DEFAULT_BANDWIDTH, DEFAULT_RATE,
                        "disk mirrored over NBD, pause-before-switchover armed"),
    "stuck": Scenario(False, False, DEFAULT_BANDWIDTH, 8.0, "dirty rate above bandwidth: never converges"),
}


async def setup_scenario(lab: Lab, scenario: Scenario, bandwidth: float | None, downtime: int | None,
                         say: Callable[[str], None] | None = None) -> None:
    """Start the pair and prepare the migration; ``say`` hears each step as it begins (QEMU
    and the guest take seconds to start: the operator sees that something happens)."""
    say = say or (lambda _line: None)
    say("starting both QEMUs, booting the guest ...")
    await lab.start()
    say(f"QEMU {lab.qemu_version} up ({lab.accel}); "
        + ("mirroring the data disk into the destination ..." if scenario.storage else "preparing the migration ..."))
    await lab.prepare(
        storage=scenario.storage,
        pause=scenario.pause,
        max_bandwidth=int(bandwidth * MiB) if bandwidth is not None else None,
        downtime_limit=downtime,
        incoming=scenario is not SCENARIOS["none"],  # none: the destination waits for migtui's start
    )
