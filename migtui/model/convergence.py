"""Will this migration converge? Dirty rate against send rate, as one verdict.

Pure: it reads a :class:`~migtui.model.vmstate.VmState` and a few facts about its
monitor, and returns the words and their tone; the dashboard's dirty panel renders
them. During a migration both rates come from query-migrate (dirty-pages-rate x
page-size, and mbps), averaged over the last few polls, with hysteresis so the verdict
does not flap; between migrations, calc-dirty-rate's result against max-bandwidth.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..format import format_rate
from .vmstate import VmState

# The source guest does not run in these: its last rates are history.
GUEST_STOPPED = frozenset({"pre-switchover", "device", "postcopy-active", "postcopy-paused",
                           "postcopy-recover-setup", "postcopy-recover"})
CLOSE = 0.8  # dirty at 80% of the send rate or more: warn
VERDICT_SAMPLES = 5  # judge on the last few polls, not one: QEMU's figures jitter
HYSTERESIS = 0.05  # and stay put while the ratio hovers at a boundary


class Tone(enum.StrEnum):
    BAD = "bad"
    WARNING = "warning"
    GOOD = "good"
    QUIET = "quiet"  # no judgement: a state, not news
    PLAIN = "plain"


class Trend(enum.StrEnum):
    OVER = "over"
    # QEMU counts a page once per pass, so a guest that re-dirties a small range
    # saturates near the send rate: close is already bad news.
    CLOSE = "close"
    FINE = "fine"


_TREND = {
    Trend.OVER: ("dirty > sent: not converging", Tone.BAD),
    Trend.CLOSE: ("dirty ≈ sent: may not converge", Tone.WARNING),
    Trend.FINE: ("sent > dirty: converging", Tone.GOOD),
}


@dataclass(frozen=True)
class Verdict:
    text: str  # one phrase an operator can act on
    tone: Tone
    trend: Trend | None = None  # what it is based on, during a migration: pass it back next time
    measurable: bool = False  # no figures now: a calc-dirty-rate would tell


def recent_rates(state: VmState) -> tuple[float | None, float | None]:
    """Mean dirty and send rates over the last few samples."""
    samples = list(state.history)[-VERDICT_SAMPLES:]
    dirty = [s.dirty_rate_bytes_per_s for s in samples if s.dirty_rate_bytes_per_s is not None]
    sent = [s.throughput_bytes_per_s for s in samples if s.throughput_bytes_per_s is not None]
    return (sum(dirty) / len(dirty) if dirty else None, sum(sent) / len(sent) if sent else None)


def trend(ratio: float, previous: Trend | None = None) -> Trend:
    """OVER, CLOSE or FINE for dirty/sent; sticks to ``previous`` near a boundary."""
    level = Trend.OVER if ratio > 1 else Trend.CLOSE if ratio >= CLOSE else Trend.FINE
    if previous is None or previous == level:
        return level
    boundary = CLOSE if {previous, level} == {Trend.FINE, Trend.CLOSE} else 1.0
    return previous if abs(ratio - boundary) < HYSTERESIS else level


def convergence(state: VmState, *, connected: bool, measuring: bool = False, max_bandwidth: int | None = None,
                previous: Trend | None = None) -> Verdict:
    """The verdict on ``state``; ``previous`` is the trend of the last verdict (hysteresis)."""
    info = state.migration
    if not connected:
        return Verdict("not connected: the last figures seen", Tone.QUIET)
    if state.migration_status in GUEST_STOPPED:
        return Verdict("guest stopped: nothing new gets dirty", Tone.QUIET)
    if info.is_running:
        if info.ram is None and state.run_state is not None and state.run_state.incoming:
            return Verdict("incoming: the source has the rates", Tone.QUIET)
        if (info.pass_number or 0) <= 1:
            # QEMU reports 0 until its second bitmap sync: unknown, not zero.
            return Verdict("first pass: dirty rate known after it", Tone.QUIET)
        dirty, sent = recent_rates(state)
        if dirty is None or not sent:
            return Verdict("waiting for figures", Tone.QUIET)
        level = trend(dirty / sent, previous)
        text, tone = _TREND[level]
        return Verdict(text, tone, level)
    if measuring:
        return Verdict("measuring…", Tone.WARNING)
    if info.is_finished:
        return Verdict(info.status, Tone.QUIET, measurable=True)
    measured = state.dirty_rate.bytes_per_s if state.dirty_rate else None
    if measured is None:
        return Verdict("no migration", Tone.QUIET, measurable=True)
    text = f"measured {format_rate(measured)}"
    if max_bandwidth:
        over = measured > max_bandwidth
        return Verdict(f"{text} {'>' if over else '<'} max-bandwidth", Tone.BAD if over else Tone.GOOD)
    return Verdict(text, Tone.PLAIN)
