"""Will this migration converge, why (in numbers), when, and what would make it: the advisor.

Judged from the migration's own passes (``model/passes.py``), never from one rate
comparison: the RAM remaining at each dirty sync must shrink until it fits
bandwidth x downtime-limit, where QEMU switches over. Until two syncs after the bulk copy
have been seen there is no evidence, and the verdict is ``unknown``.

* **shrink factor** ``r``: how much of the remaining RAM each pass leaves for the next,
  the larger of two measures of it -- the remaining at the last syncs divided by the one
  before (the median of the last three ratios), and QEMU's dirty rate over its send rate
  in the last pass (``dirty-pages-rate`` x page size / ``mbps``). A pass that sheds less
  than 5 % (``r`` >= 0.95) is "not shrinking": that migration never converges.
* **threshold** ``T`` = switchover bandwidth x downtime-limit, the switchover bandwidth
  being ``avail-switchover-bandwidth`` when set (QEMU 8.2+), else the send rate: QEMU
  switches over once the RAM left fits it.
* **expected downtime** = remaining RAM at the last sync / switchover bandwidth: the pause
  if QEMU switched over at its next check. The same on every QEMU (QEMU's own
  ``expected-downtime`` changed in 8.1 from remaining / bandwidth to the last sync's dirty
  bytes / bandwidth, ``model/features.py``); for a migration that is not shrinking both
  agree.
* **ETA** (converging only) = (W - T) / (B x (1 - r')), W being the RAM left now plus
  what the guest dirtied since the last sync (B x r' per second), B the send rate, r' the
  mean of the two measures of ``r`` (the better estimate; the verdict takes the larger):
  the time until the RAM left fits the threshold and QEMU stops the guest for the switchover.

Remedies are proposed, least invasive first, only for a migration that does not converge:
raise max-bandwidth (when the send rate sits at it), set avail-switchover-bandwidth (when
QEMU has it), raise downtime-limit to the expected downtime (its cost: the guest pause),
CPU throttle (when auto-converge is on: QEMU switches that capability only between
migrations), a vCPU dirty limit (``set-vcpu-dirty-limit``, QEMU 7.1+, KVM with its dirty ring:
each vCPU may dirty at most half of what QEMU sends), postcopy (``migrate-start-postcopy``,
when postcopy-ram was on at the start), abort. Pure: reads a VmState and the migration
parameters.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..format import format_bytes, format_duration, format_ms
from .coerce import opt_int
from .migration import FINISHED_STATUSES
from .passes import Pass
from .units import (
    QEMU_DEFAULT_MAX_BANDWIDTH,
    bandwidth_text,
    downtime_text,
    round_up_bandwidth,
    round_up_downtime,
)
from .vmstate import VmState

CONVERGING = "converging"
NOT_CONVERGING = "not-converging"
UNKNOWN = "unknown"

NOT_SHRINKING = 0.95  # a pass that leaves 95 % or more of the RAM for the next one
CAPPED = 0.9  # sending at 90 % of max-bandwidth or more: the cap is what limits it
RATIOS = 3  # the last ratios of remaining RAM looked at
SHOWN_PASSES = 4  # passes named in a reason
MARGIN = 1.25  # a remedy's value leaves this much room over what is needed exactly
THROTTLE_INITIAL = 50  # cpu-throttle-initial proposed when QEMU does not throttle yet (default 20)
THROTTLE_INCREMENT = 20  # cpu-throttle-increment proposed once it throttles (default 10)

# The guest is stopped in these: RAM has converged (or postcopy moved on).
_SWITCHING = frozenset({"pre-switchover", "device"})
_POSTCOPY = frozenset({"postcopy-active", "postcopy-paused", "postcopy-recover-setup", "postcopy-recover"})

# The request actions of the remedies, least invasive first (the dashboard's keys 1-4, then x).
BANDWIDTH = "bandwidth"
SWITCHOVER_BANDWIDTH = "switchover-bandwidth"
DOWNTIME = "downtime"
THROTTLE = "throttle"
DIRTY_LIMIT = "dirty-limit"
POSTCOPY = "postcopy"
ABORT = "abort"
REMEDY_ACTIONS = (BANDWIDTH, SWITCHOVER_BANDWIDTH, DOWNTIME, THROTTLE, DIRTY_LIMIT, POSTCOPY)
# The QEMU parameter each remedy sets (throttle: the first while QEMU does not throttle yet;
# the dirty limit: set-vcpu-dirty-limit's argument; postcopy sets none).
PARAMETERS = {BANDWIDTH: ("max-bandwidth",), SWITCHOVER_BANDWIDTH: ("avail-switchover-bandwidth",),
              DOWNTIME: ("downtime-limit",), THROTTLE: ("cpu-throttle-initial", "cpu-throttle-increment"),
              DIRTY_LIMIT: ("dirty-rate",), POSTCOPY: ()}
# How a refusal names each remedy ("read-only: migtui will not change downtime-limit of src").
WORDS = {**{action: f"change {names[0]} of" for action, names in PARAMETERS.items() if names},
         DIRTY_LIMIT: "set a vCPU dirty limit on", POSTCOPY: "switch to postcopy"}
DIRTY_LIMIT_SHARE = 0.5  # the dirty limit proposed: this share of what QEMU sends


@dataclass(frozen=True)
class Remedy:
    """One thing that would make the migration converge, as the engine would do it."""

    action: str  # the request action (REMEDY_ACTIONS, or "abort")
    parameter: str  # QEMU's migration parameter it sets ("" for abort)
    current: str  # its value now, as an operator types it ("4 MiB/s")
    value: str  # the value proposed ("67 MiB/s")
    effect: str  # what it is expected to do, in numbers
    cost: str = ""  # what it costs (the guest pause, a slower guest)

    @property
    def title(self) -> str:
        if self.action == ABORT:
            return "abort the migration"
        if self.action == POSTCOPY:
            return "switch to postcopy"
        if self.action == DIRTY_LIMIT:
            return f"set the vCPU dirty limit {self.current} → {self.value}"
        verb = "raise" if self.action in (BANDWIDTH, DOWNTIME) else "set"
        return f"{verb} {self.parameter} {self.current} → {self.value}"

    def line(self) -> str:
        """One line: what, the expected effect, and its cost."""
        cost = f"; cost: {self.cost}" if self.cost else ""
        return f"{self.title}: {self.effect}{cost}"


@dataclass(frozen=True)
class PassPoint:
    """One pass as views show the trend: the RAM left at its start and how long it took."""

    number: int
    remaining: int | None = None  # bytes
    seconds: float | None = None


@dataclass(frozen=True)
class Advice:
    """The advisor's word on a monitor's migration (``migration.convergence`` in status --json)."""

    verdict: str = UNKNOWN  # CONVERGING, NOT_CONVERGING or UNKNOWN
    reason: str = ""  # why, in numbers
    headline: str = ""  # a few words for a panel title ("not converging", "converging, ETA 6 s")
    eta_s: float | None = None  # seconds until QEMU switches over (converging only), from ``at``
    at: float | None = None  # when the figures were true (wall clock; see is_news)
    expected_downtime_ms: float | None = None
    remedies: list[Remedy] = field(default_factory=list)
    passes: list[PassPoint] = field(default_factory=list)  # pass 2 on: the trend

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "eta_s": self.eta_s,
            "expected_downtime_ms": self.expected_downtime_ms,
            "remedies": [r.line() for r in self.remedies],
        }


def is_news(before: Advice, after: Advice) -> bool:
    """Whether ``after`` tells a reader of ``before`` anything: a new ``at`` alone only when
    there is an ETA, which counts from it. Otherwise ``at`` stays the first moment the same
    figures were true (a stuck migration's advice, decided at every poll, was sent to every
    view at every poll for its ``at`` alone: a repaint a second of the same words)."""
    if after == before:
        return False
    if before.eta_s is None and after.eta_s is None:
        return replace(after, at=before.at) != before
    return True


@dataclass(frozen=True)
class Settings:
    """What the advisor reads of the migration's parameters and capabilities."""

    downtime_limit_ms: int | None = None
    max_bandwidth: int | None = None  # bytes/s; 0: unlimited
    avail_switchover_bandwidth: int | None = None  # bytes/s; 0: unset; None: this QEMU has none
    throttle_initial: int | None = None
    throttle_increment: int | None = None
    auto_converge: bool | None = None
    postcopy_ram: bool | None = None  # on at the start: postcopy may be started now
    dirty_limit: bool = False  # set-vcpu-dirty-limit may work here (QEMU 7.1+ under KVM; the engine knows)
    vcpu_dirty_limit: int | None = None  # MB/s per vCPU, while a dirty limit is set

    @classmethod
    def of(cls, parameters: Mapping[str, Any], capabilities: Mapping[str, bool], *,
           dirty_limit: bool = False, vcpu_dirty_limit: int | None = None) -> Settings:
        return cls(
            downtime_limit_ms=opt_int(parameters.get("downtime-limit")),
            max_bandwidth=opt_int(parameters.get("max-bandwidth")),
            avail_switchover_bandwidth=opt_int(parameters.get("avail-switchover-bandwidth")),
            throttle_initial=opt_int(parameters.get("cpu-throttle-initial")),
            throttle_increment=opt_int(parameters.get("cpu-throttle-increment")),
            auto_converge=capabilities.get("auto-converge"),
            postcopy_ram=capabilities.get("postcopy-ram"),
            dirty_limit=dirty_limit,
            vcpu_dirty_limit=vcpu_dirty_limit,
        )


def mib(n: float | None) -> str:
    """A remaining-RAM figure for a list: "16", "8.2", "0.4" (MiB, the unit said once)."""
    if n is None:
        return "?"
    value = n / (1024 * 1024)
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def advise(state: VmState, settings: Settings, *, connected: bool = True, measuring: bool = False,
           migrated_to: str | None = None) -> Advice:
    """The advice on ``state`` now (see the module's docstring for every formula). ``migrated_to``:
    the source left by migration (a libvirt domain, no longer on its host), to that destination
    ("": one migtui does not watch)."""
    info = state.migration
    status = state.migration_status
    if migrated_to is not None:
        to = f" to {migrated_to}" if migrated_to else ""
        return Advice(UNKNOWN, f"migrated away{to}: {completed(state)}", "migrated away")
    if not connected:
        return Advice(UNKNOWN, "monitor not connected: nothing new to judge", "not connected")
    if state.incoming_side and info.ram is None:
        return Advice(UNKNOWN, f"the destination of a migration ({status}): its source's passes tell",
                      "destination")
    if status == "none" or status in FINISHED_STATUSES:
        return _between(state, settings, measuring)
    if status in _SWITCHING:
        return Advice(CONVERGING, "converged: the RAM left fits the downtime limit and QEMU stopped the guest"
                      f" for the switchover ({status})", "converged: switching over", passes=_points(state))
    if status in _POSTCOPY:
        return Advice(UNKNOWN, f"{status}: the destination runs the guest and fetches the rest of RAM;"
                      " pre-copy convergence no longer applies", "postcopy")
    if status in ("setup", "cancelling", "wait-unplug"):
        return Advice(UNKNOWN, f"migration {status}: no pass yet", status)
    if info.ram is None:
        return Advice(UNKNOWN, f"QEMU gives no RAM figures while {status}", "no RAM figures")
    return _judge(state, settings)


# ---------------------------------------------------------------------- between migrations


def _between(state: VmState, settings: Settings, measuring: bool) -> Advice:
    status = state.migration_status
    if measuring:
        return Advice(UNKNOWN, "calc-dirty-rate is measuring: an estimate comes, not a verdict", "measuring…")
    done = f"migration {status}" if status != "none" else "no migration"
    if status == "completed":
        done = completed(state)
    rate = state.dirty_rate
    measured = rate.bytes_per_s if rate is not None else None
    if rate is None or measured is None:
        hint = ": a verdict needs a migration's passes" if status == "none" else ""
        return Advice(UNKNOWN, done + hint, status_headline(status))
    done += "; "
    window = _window(rate.calc_time, rate.calc_time_unit)
    how = ", ".join(x for x in (rate.mode, f"max-bandwidth {bandwidth_text(settings.max_bandwidth)}"
                                if settings.max_bandwidth else "") if x)
    reason = (f"{done}calc-dirty-rate: ~{format_bytes(measured)}/s dirtied over {window}"
              f"{f' ({how})' if how else ''}: an estimate, not a verdict; the passes of a migration will tell")
    return Advice(UNKNOWN, reason, f"estimate ~{format_bytes(measured)}/s dirtied over {window}")


def completed(state: VmState) -> str:
    """A completed migration in words, with its final figures once they are in ("migration
    completed in 2.1 s after 5 passes, downtime 40 ms"): a libvirt source's come with libvirt's
    JOB_COMPLETED, which may arrive after the domain has left its host."""
    info = state.migration
    if state.migration_status != "completed":
        return "migration completed"
    passes = f" after {info.pass_number} passes" if info.pass_number else ""
    took = f" in {format_ms(info.total_time)}" if info.total_time is not None else ""
    down = f", downtime {format_ms(state.final_downtime_ms)}" if state.final_downtime_ms is not None else ""
    return f"migration completed{took}{passes}{down}"


def status_headline(status: str) -> str:
    return "no migration" if status == "none" else status


def _window(calc_time: int | None, unit: str | None) -> str:
    if calc_time is None:
        return "its window"
    if unit == "millisecond":
        return format_ms(calc_time)
    return format_duration(calc_time)


# ---------------------------------------------------------------------- during the pre-copy


def _points(state: VmState) -> list[PassPoint]:
    return [PassPoint(p.number, p.remaining, p.duration) for p in state.passes.passes if p.number >= 2]


def _judge(state: VmState, settings: Settings) -> Advice:
    info = state.migration
    ram = info.ram
    assert ram is not None
    passes = [p for p in state.passes.passes if p.number >= 2]
    points = _points(state)
    current = state.passes.current
    number = info.pass_number or 0
    if number <= 1 or current is None or current.number <= 1:
        left = f" ({format_bytes(ram.remaining)} of {format_bytes(ram.total)} left)" if ram.total else ""
        return Advice(UNKNOWN, f"first pass: the bulk copy of all RAM{left}; the verdict needs the RAM left at"
                      " two dirty syncs", "first pass", passes=points)
    known = [p for p in passes if p.remaining is not None]
    sent = _send_rate(state, current)
    limit = settings.downtime_limit_ms
    switch_rate = settings.avail_switchover_bandwidth or sent
    last = known[-1] if known else None
    expected = (last.remaining / switch_rate * 1000) if last is not None and last.remaining and switch_rate else None
    figures = _figures(expected, limit, sent, settings)
    if len(known) < 2 or sent is None:
        have = f"{mib(last.remaining)} MiB left at the sync that began pass {last.number}; " if last else ""
        return Advice(UNKNOWN, f"{have}the verdict needs the RAM left at one more dirty sync"
                      + (f"; {figures}" if figures else ""), f"pass {number}: one more sync will tell",
                      expected_downtime_ms=_round(expected), passes=points, at=state.passes.last_poll)
    values = [p.remaining or 0 for p in known]
    ratios = [b / a for a, b in itertools.pairwise(values) if a > 0][-RATIOS:]
    observed = statistics.median(ratios) if ratios else None
    dirty = _dirty_rate(known[-1], current)
    by_rate = dirty / sent if dirty is not None and sent else None
    measures = [m for m in (observed, by_rate) if m is not None]
    # The verdict takes the larger of the two: either one seeing the passes not shrink is
    # evidence enough (each has its noise: the remaining is polled, the send rate is QEMU's
    # 100 ms figure). The ETA takes their mean, the better estimate (docs/benchmarks.md).
    r = max(measures)
    estimate = sum(measures) / len(measures)
    shown = known[-SHOWN_PASSES:]
    trend = ", ".join(mib(p.remaining) for p in shown)
    threshold = switch_rate * limit / 1000 if limit is not None and switch_rate else None
    assert last is not None and last.remaining is not None
    if threshold is not None and last.remaining <= threshold:
        return Advice(CONVERGING, f"RAM left at the last sync ({mib(last.remaining)} MiB) fits the downtime limit:"
                      " QEMU switches over at its next check", "converging: switching over",
                      eta_s=0.0, at=state.passes.last_poll, expected_downtime_ms=_round(expected), passes=points)
    if r >= NOT_SHRINKING:
        how = "growing" if observed is not None and observed > 1.05 else "not shrinking"
        rate_part = (f"; the guest dirties {format_bytes(dirty)}/s, as fast as QEMU sends"
                     f" ({format_bytes(sent)}/s)" if dirty is not None and by_rate is not None
                     and by_rate >= NOT_SHRINKING else "")
        reason = f"remaining RAM {how} over {len(shown)} passes ({trend} MiB){rate_part}"
        if figures:
            reason += f"; {figures}"
        remedies = _remedies(last.remaining, sent, expected, settings, info.cpu_throttle_percentage)
        return Advice(NOT_CONVERGING, reason, "not converging", at=state.passes.last_poll,
                      expected_downtime_ms=_round(expected), remedies=remedies, passes=points)
    eta = _eta(state, sent, estimate, threshold)
    shed = round((1 - estimate) * 100)
    reason = f"remaining RAM shrinking ~{shed} % a pass ({trend} MiB)"
    if eta is not None:
        reason += f"; ETA {eta_text(eta)} to the switchover"
    if figures:
        reason += f"; {figures}"
    headline = f"converging, ETA {eta_text(eta)}" if eta is not None else "converging"
    return Advice(CONVERGING, reason, headline, eta_s=eta, at=state.passes.last_poll,
                  expected_downtime_ms=_round(expected), passes=points)


def eta_text(seconds: float) -> str:
    """An estimate to two significant figures, in the one duration format: "300 ms",
    "6.3 s", "18.0 s", "2m 10s"."""
    return format_duration(float(f"{max(0.0, seconds):.2g}"))


def _round(value: float | None) -> float | None:
    """Whole units: the message is re-sent only when a shown figure changes."""
    return None if value is None else float(round(value))


def _send_rate(state: VmState, current: Pass) -> float | None:
    """Bytes/s QEMU sends: the mean over the current pass, else the last polls."""
    if current.sent_rate:
        return current.sent_rate
    rates = [s.throughput_bytes_per_s for s in list(state.history)[-5:] if s.throughput_bytes_per_s]
    return sum(rates) / len(rates) if rates else None


def _dirty_rate(last_known: Pass, current: Pass) -> float | None:
    """QEMU's dirty rate at the latest sync (over the pass before it)."""
    for p in (current, last_known):
        if p.dirty_rate is not None:
            return p.dirty_rate
    return None


def estimate_ms(ms: float) -> str:
    """An estimate to two significant figures ("480 ms", "4.0 s"): the send rate it divides
    by moves from poll to poll, so more digits would only say noise."""
    return format_ms(float(f"{ms:.2g}"))


def _figures(expected: float | None, limit: int | None, sent: float | None, settings: Settings) -> str:
    """"expected downtime 4.0 s > limit 300 ms; capped by max-bandwidth 4 MiB/s"."""
    parts = []
    if expected is not None and limit is not None:
        sign = ">" if expected > limit else "≤"
        parts.append(f"expected downtime {estimate_ms(expected)} {sign} limit {format_ms(limit)}")
    cap = settings.max_bandwidth
    if cap and sent is not None and sent >= CAPPED * cap:
        default = " (QEMU's default)" if cap == QEMU_DEFAULT_MAX_BANDWIDTH else ""
        parts.append(f"capped by max-bandwidth {bandwidth_text(cap)}{default}")
    return "; ".join(parts)


def _eta(state: VmState, sent: float, r: float, threshold: float | None) -> float | None:
    """Seconds from the last poll until the RAM left fits ``threshold``: what that poll had
    left in its pass, plus what the guest dirtied since the sync that began it."""
    ram = state.migration.ram
    last_poll = state.passes.last_poll
    if ram is None or ram.remaining is None or threshold is None or r >= 1 or last_poll is None:
        return None
    polled = next((p for p in reversed(state.passes.passes) if p.first_at is not None), None)
    since = max(0.0, last_poll - polled.start) if polled is not None and polled.start is not None else 0.0
    work = ram.remaining + sent * r * since
    eta = max(0.0, work - threshold) / (sent * (1 - r))
    return round(eta, 1) if eta < 10 else float(round(eta))


def _remedies(remaining: int, sent: float, expected: float | None, settings: Settings,
              throttling: int | None) -> list[Remedy]:
    limit = settings.downtime_limit_ms
    found: list[Remedy] = []
    left = f"{mib(remaining)} MiB"
    cap = settings.max_bandwidth
    if limit:
        needed = round_up_bandwidth(remaining / (limit / 1000) * MARGIN)
        if cap and sent >= CAPPED * cap and needed > cap:
            found.append(Remedy(BANDWIDTH, "max-bandwidth", bandwidth_text(cap), bandwidth_text(needed),
                                f"at {bandwidth_text(needed)} the {left} left at each pass fit the"
                                f" {format_ms(limit)} limit, if the link carries it"))
        if settings.avail_switchover_bandwidth is not None and needed > sent:
            now = settings.avail_switchover_bandwidth
            found.append(Remedy(SWITCHOVER_BANDWIDTH, "avail-switchover-bandwidth",
                                bandwidth_text(now) if now else "unset", bandwidth_text(needed),
                                f"QEMU judges the switchover at {bandwidth_text(needed)} instead of the"
                                f" {bandwidth_text(sent)} it measures: the {left} left fit {format_ms(limit)}",
                                f"a longer pause if the link carries less during it ({left} at"
                                f" {bandwidth_text(sent)} is {format_ms(remaining / sent * 1000)})"))
    if expected is not None and (limit is None or expected > limit):
        proposed = round_up_downtime(expected * MARGIN)
        found.append(Remedy(DOWNTIME, "downtime-limit", downtime_text(limit) if limit else "?",
                            downtime_text(proposed),
                            f"the {left} left fit {downtime_text(proposed)}: QEMU switches over at its next check",
                            f"the guest pauses up to {downtime_text(proposed)} (expected {estimate_ms(expected)})"))
    if settings.auto_converge:
        if throttling is None:
            value = max(THROTTLE_INITIAL, (settings.throttle_initial or 0) + 10)
            found.append(Remedy(THROTTLE, "cpu-throttle-initial", f"{settings.throttle_initial or 20} %",
                                f"{min(value, 99)} %", "when QEMU starts throttling it slows the vCPUs that much,"
                                " so the guest dirties less per pass", "a slower guest until the switchover"))
        else:
            value = max(THROTTLE_INCREMENT, (settings.throttle_increment or 0) + 10)
            found.append(Remedy(THROTTLE, "cpu-throttle-increment", f"{settings.throttle_increment or 10} %",
                                f"{min(value, 100)} %", f"QEMU throttles the vCPUs (now {throttling} %) harder at"
                                " each pass that does not converge", "a slower guest until the switchover"))
    if settings.dirty_limit:
        value = max(1, int(sent * DIRTY_LIMIT_SHARE / 1_000_000))
        set_now = f"{settings.vcpu_dirty_limit} MB/s" if settings.vcpu_dirty_limit else "none"
        found.append(Remedy(DIRTY_LIMIT, "dirty-rate", set_now, f"{value} MB/s",
                            f"each vCPU may dirty at most {value} MB/s, half of the {bandwidth_text(sent)} QEMU"
                            " sends: each pass leaves about half of the one before",
                            "vCPUs that write faster are held; migtui lifts the limit if the migration fails"))
    if settings.postcopy_ram:
        found.append(Remedy(POSTCOPY, "", "", "", f"the destination runs the guest now and fetches the {left}"
                            " left as it touches them: the migration completes",
                            "the guest runs at the link's pace until its RAM has arrived; if the link breaks,"
                            " neither side has the whole guest (postcopy-paused: recover it)"))
    found.append(Remedy(ABORT, "", "", "", "the source keeps running; the destination is discarded"))
    return found
