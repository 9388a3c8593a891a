"""The convergence policy: what the engine does by itself, view or not, about a migration that
does not converge (``--converge``, ``--completion-timeout``, ``--converge-action``).

* ``--converge steps`` (oVirt's convergence schedule): from the pass after the
  ``STEPS_AFTER_PASS``-th, while the advisor finds the migration not converging,
  downtime-limit goes up one step per pass along ``STEPS_MS`` (the next step above the limit
  now: the policy never lowers it). A pass after the last step still not converging gets
  the completion action.
* ``--completion-timeout S`` (Nova's ``live_migration_completion_timeout``, libvirt's
  ``virsh migrate --timeout``): S seconds per GiB of guest RAM, counting at least
  ``MIN_GIB`` as Nova does, from the migration's start by QEMU's own ``total-time``; then
  the completion action, whatever the verdict.
* the completion action (``--converge-action``): ``abort`` (migrate_cancel: the source runs
  on), ``postcopy`` (migrate-start-postcopy; only when postcopy-ram was on at the start,
  else ``pause``, like Nova's force_complete), ``pause`` (libvirt's --timeout-suspend: stop
  the source guest, so nothing more is dirtied and the copy completes; the engine then
  resumes the guest on the destination, or on the source if the migration fails).

It acts once per step and once for the completion action, never on a migration libvirt drives,
and stands down for the rest of a migration as soon as an operator takes a remedy or aborts it.
:class:`ConvergeRun` decides (pure: the engine passes the state, the advice and the time);
``engine/control.py`` acts and tells every view.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..format import format_duration
from ..model.advisor import NOT_CONVERGING
from ..model.units import GiB, downtime_text
from ..model.vmstate import VmState
from .policy import Policy

STEPS_MS = (100, 150, 200, 300, 400, 500)  # oVirt's default schedule
STEPS_AFTER_PASS = 3  # the steps begin with the pass after this one
MIN_GIB = 2.0  # a small guest's timeout counts at least this much RAM (Nova's floor)

DOWNTIME = "downtime"  # an Act's kind besides the completion actions
ABORT = "abort"
POSTCOPY = "postcopy"
PAUSE = "pause"


def steps_text() -> str:
    return " → ".join(str(ms) for ms in STEPS_MS) + " ms"


def active(policy: Policy) -> bool:
    """Whether ``policy`` makes the engine act on a migration at all."""
    return policy.converge == "steps" or policy.completion_timeout_s is not None


def timeout_of(policy: Policy, ram_total: int | None) -> float | None:
    """The completion timeout of a migration of ``ram_total`` bytes of RAM, in seconds."""
    if policy.completion_timeout_s is None:
        return None
    return policy.completion_timeout_s * max(MIN_GIB, (ram_total or 0) / GiB)


def describe(policy: Policy, postcopy_ram: bool | None = None) -> str:
    """The policy in one line, before a migration (or with none under way)."""
    then = action_text(policy, postcopy_ram)
    parts = []
    if policy.converge == "steps":
        parts.append(f"steps from pass {STEPS_AFTER_PASS + 1}: downtime-limit {steps_text()}, then {then}")
    if policy.completion_timeout_s is not None:
        parts.append(f"timeout {policy.completion_timeout_s:g} s/GiB (≥ {MIN_GIB:g} GiB), then {then}")
    return "; ".join(parts)


def action_text(policy: Policy, postcopy_ram: bool | None) -> str:
    action = policy.converge_action
    if action == POSTCOPY and postcopy_ram is False:
        return "pause (postcopy-ram off)"
    return action


@dataclass(frozen=True)
class Act:
    """One thing the policy does now, and why (in numbers)."""

    kind: str  # DOWNTIME, ABORT, POSTCOPY or PAUSE
    reason: str
    value: int | None = None  # downtime-limit in ms (DOWNTIME)


class ConvergeRun:
    """The policy over one migration of one monitor: what it did, and what it does next."""

    def __init__(self, policy: Policy, generation: int) -> None:
        self.policy = policy
        self.generation = generation  # the connection it belongs to
        self.stepped_at = 0  # the pass of the last step
        self.final: str | None = None  # the completion action, once taken
        self.overridden = ""  # who took over (an operator's remedy or abort): the policy stands down
        self.paused = False  # the policy stopped the source guest (pause): it resumes it afterwards
        self.paused_at: float | None = None  # when (the guest's real pause: QEMU's downtime omits it)
        self.busy = False  # an act is under way
        self.ended = False  # the migration ended (the run stays for the views until the next one)
        self.acts: list[tuple[float, str]] = []  # (when, what and why): every view shows them

    def decide(self, state: VmState, downtime_limit: int | None, verdict: str) -> Act | None:
        """What to do now (None: nothing)."""
        if self.overridden or self.final or self.busy or self.ended:
            return None
        info = state.migration
        if info.status != "active":
            return None
        timeout = timeout_of(self.policy, info.ram.total if info.ram else None)
        if timeout is not None and info.total_time is not None and info.total_time / 1000 >= timeout:
            gib = max(MIN_GIB, (info.ram.total if info.ram and info.ram.total else 0) / GiB)
            return self._final(state, f"completion timeout: still copying after {format_duration(timeout)}"
                               f" ({self.policy.completion_timeout_s:g} s/GiB x {gib:.3g} GiB)")
        number = info.pass_number or 0
        if self.policy.converge != "steps" or verdict != NOT_CONVERGING:
            return None
        if number <= STEPS_AFTER_PASS or number <= self.stepped_at:
            return None
        step = next((ms for ms in STEPS_MS if downtime_limit is None or ms > downtime_limit), None)
        if step is not None:
            index = STEPS_MS.index(step) + 1
            return Act(DOWNTIME, f"pass {number} not converging: step {index} of {len(STEPS_MS)}", step)
        return self._final(state, f"pass {number} still not converging after the last step"
                           f" ({downtime_text(STEPS_MS[-1])})")

    def _final(self, state: VmState, reason: str) -> Act:
        action = self.policy.converge_action
        if action == POSTCOPY and not state.capabilities.enabled("postcopy-ram"):
            return Act(PAUSE, f"{reason}; postcopy-ram was off at the start: pause instead")
        return Act(action, reason)

    def line(self, state: VmState, downtime_limit: int | None) -> str:
        """What the policy does next on this migration (or why it does nothing more)."""
        if self.overridden:
            return f"stood down for this migration: {self.overridden}"
        if self.final:
            return f"{self.final} taken" + (": the source guest is stopped" if self.paused and not self.ended else "")
        then = action_text(self.policy, state.capabilities.enabled("postcopy-ram"))
        parts = []
        if self.policy.converge == "steps":
            left = [ms for ms in STEPS_MS if downtime_limit is None or ms > downtime_limit]
            if not self.stepped_at:
                parts.append(f"steps from pass {STEPS_AFTER_PASS + 1}: {' → '.join(map(str, left)) or 'none left'}"
                             f"{' ms' if left else ''}, then {then}")
            else:
                nxt = f"next {downtime_text(left[0])}, then {then}" if left else f"next {then}"
                parts.append(f"steps {downtime_text(downtime_limit or 0)} (pass {self.stepped_at}), {nxt}")
        info = state.migration
        timeout = timeout_of(self.policy, info.ram.total if info.ram else None)
        if timeout is not None:
            parts.append(f"timeout {format_duration(timeout)}, then {then}")
        return "; ".join(parts)
