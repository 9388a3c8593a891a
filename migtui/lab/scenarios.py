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
Between its paced writes the guest halts (PIT interrupts wake it ~1000 times a
second): a paced guest costs its host 7-10 % of a core, under KVM and TCG alike,
where its spinning wait took most of one (63-78 % under KVM, 98 % with the dirty
ring, 42-74 % under TCG, on a busy machine: guest.S).

Measured on this project's machine (2 cores, nested KVM available, other sessions
busy on it), --memory 128 --dirty 16, downtime-limit 300 ms (QEMU's default), with
--start, on QEMU 7.2 / 10.0:

  converge  KVM: completed after 13.0 s, 16 passes, downtime 12 ms / 7.0 s, 9 passes, 11 ms
            TCG: completed after 13.3 s, 15 passes, downtime 7 ms / 7.2 s, 9 passes, 14 ms
  storage   KVM: pre-switchover after 13.2 s / 7.0 s (the mirror of the empty 64 MiB
            disk is in sync during setup, in ~0.1 s); TCG: after 13.0 s / 7.2 s
  stuck     a new pass every ~3.7 s / 3.0 s under KVM, ~3.8 s / 3.1 s under TCG; never
            by itself (see below: it used to complete after ~8m30s)
  none      QEMU's own max-bandwidth (128 MiB/s in 7.2): completed in 0.1 s

The stuck scenario completed after ~8m30s (7.2: "8m 31s, 141 passes"; 10.0: "8m 30s,
174 passes", KVM), watched or not. Not QEMU, and not ~2 GiB sent: the guest's page counter
was a byte, and after 255 paced sweeps (2 s each: 16 MiB at 8 MiB/s) it wrapped to 0 and
left each page all zero. QEMU sends an all-zero page as a zero page, a few bytes: a pass
over wrapped pages cost next to none of the 4 MiB/s and took next to no time, so the next
bitmap sync found next to nothing dirty, under bandwidth x downtime-limit, and it completed.
What shows it, on 10.0 (a ``migrate_pending_exact`` trace, guest memory by pmemsave): with
--bandwidth 16 --dirty-rate 32 (a sweep in 0.5 s) it completed after 128 s under KVM and TCG
alike, the guest dirtying 30-32 MiB/s to the end; the exact pending size was 16 MiB at every
sync, then ~10 MiB, then 0.07-0.14 MiB, and QEMU counted ~4900 more zero pages (``duplicate``)
than in the first pass. --dirty 1 (a sweep in 0.125 s), --downtime-limit 10: completed after
32 s with only 160 MiB sent, as the counters, at 245 two seconds before, reached 256; and
so it did (31.9 s, 160 MiB) with no QMP command between ``migrate`` and the end. The
counter is a dword now (zero again after 2^32 sweeps): the same 1 MiB run was still at a
pass every 0.2 s after 1364 sweeps (170 s); ``migtui lab --scenario stuck --start`` on 10.0
under KVM was still active after 17m 41s (stopped by hand), 351 passes one every 3.0 s
(2.9-3.3), past sweeps 256 and 512 with no page zero, the guest at 7.9-8.0 MiB/s and
``dirty-pages-rate`` 1271-1279 pages/s throughout. The guest's 32-bit tick count wraps
after an hour (2^32 PIT ticks): harmless, the pacing and the marker use differences only
(a guest started 28 s before its wrap kept 8 MiB/s through it).
(QEMU's max-bandwidth 4 MiB/s sends ~5 MiB/s here: 5199 MiB in 1040 s; 16 MiB/s sends 16.3.)

The guest's dirty rate, measured from guest memory (pmemsave twice, 2 s apart), for
2.8 MiB/s requested: 2.73 / 2.77 under KVM, 2.65 / 2.71 under TCG; for 8: 7.75 / 7.87
under KVM, 7.28 / 7.86 under TCG (over 3 s on 7.2: 2.78 and 7.88 under KVM, 2.77 and
7.76 under TCG). Booting to the first sweep's end takes 7-12 s under this machine's KVM,
more when it is busy (mostly SeaBIOS's byte-wise memsets of some 850 KiB, every
instruction emulated by PVM), and ~0.5 s under TCG.

The vCPU dirty limit (remedy 5, ``set-vcpu-dirty-limit``) needs KVM's dirty ring:
``--dirty-ring 4096`` (``Lab(dirty_ring=...)``) runs both QEMUs with
``-accel kvm,dirty-ring-size=4096``. The guest's paced wait writes no memory for that
beyond its interrupt's frame (~1000 writes a second to one stack page): where the kernel
emulates the guest's instructions (PVM, the nested KVM of this project's machine) every
emulated write is a ring entry, and a call per PIT read filled the ring faster than QEMU
reaps it -- the vCPU froze once the migration turned dirty logging on. Paced at 8 MiB/s
under the ring, the halting guest dirtied 7.92 MiB/s at 8.6 % of a core.
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
