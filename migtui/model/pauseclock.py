"""How long a guest has been stopped in a pre-switchover pause, from QEMU's own timestamps.

Worked out once, in the engine, from its ``VmState`` (:meth:`PauseClock.of`); views get
the clock in the engine's PAUSE message and only tick it. Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from .vmstate import VmState


@dataclass(frozen=True)
class PauseClock:
    """How long the guest has been stopped in this pause, from QEMU's own timestamps.

    ``exact``: ``start`` is QEMU's timestamp of the stop (a STOP or MIGRATION
    pre-switchover event). Otherwise the pause was first seen by a poll (the engine, or
    migtui, started during it): ``start`` is the earliest record of it, so the clock
    says "at least", and ``earliest`` bounds it from the other side -- the pause began
    after the migration started (QEMU's total-time) and after the last status seen before
    it, or after the last sign libvirt gave that it still ran (``VmState.pause_began_after``:
    a read-only libvirt connection gets no QEMU events) -- so the clock also says "at most".
    """

    start: float  # STOP / MIGRATION pre-switchover timestamp, else the earliest record
    exact: bool
    earliest: float | None = None  # not exact: the pause began after this

    @classmethod
    def of(cls, state: VmState, recorded: float | None = None, *, recorded_exact: bool = False) -> PauseClock | None:
        """``recorded``: the engine's own record of the pause start (its PAUSE message's
        ``since``), when this is a view's replay: a long pause can outlast the journal, or a
        pause taken up from an engine before; ``recorded_exact``: it is QEMU's own stamp (the
        engine before had it from QEMU's event)."""
        since = state.pre_switchover_since
        if since is None:
            return None
        before = _status_before(state, since)  # a time at which QEMU was not paused yet
        exact = any(c.status == "pre-switchover" and c.source == "event" and c.time == since
                    for c in state.status_changes)
        start = since
        if isinstance(recorded, (int, float)) and recorded < start and (before is None or recorded > before):
            start, exact = float(recorded), exact or recorded_exact
        # The MIGRATION event can come after a poll that saw the pause first: its time is exact.
        last_stop: float | None = None
        for ev in state.events:
            t = ev.timestamp
            if t is None or t > since or (before is not None and t < before):
                continue
            if ev.name == "MIGRATION" and ev.data.get("status") == "pre-switchover":
                start, exact = min(start, t), True
            elif ev.name == "STOP":
                last_stop = t
            elif ev.name == "RESUME":
                last_stop = None
        # STOP precedes MIGRATION pre-switchover by ~1 ms; a stale STOP (guest paused by hand
        # long before) still counts: the guest was down all that time.
        for stop in (last_stop, state.stopped_since):
            if stop is not None and stop <= start:
                start, exact = stop, exact or stop == last_stop
        earliest = None if exact else _migration_start(state, before)
        after = state.pause_began_after
        if not exact and after is not None and after <= start:
            earliest = after if earliest is None else max(earliest, after)
        return cls(start, exact, earliest)

    def seconds(self, now: float) -> float:
        return max(0.0, now - self.start)

    def at_most(self, now: float) -> float | None:
        """The longest the pause can have lasted by ``now`` (None: exact, or no bound)."""
        if self.exact or self.earliest is None:
            return None
        return max(self.seconds(now), now - self.earliest)


def _status_before(state: VmState, since: float) -> float | None:
    """When the status before this pause was seen (QEMU was not paused then)."""
    before = [c.not_after for c in state.status_changes if c.time < since and c.status != "pre-switchover"]
    return max(before) if before else None


def _migration_start(state: VmState, before: float | None) -> float | None:
    """The latest time the pause cannot have begun before: the migration's start (a
    query-migrate's time less its total-time), or the status seen before the pause."""
    bounds = [] if before is None else [before]
    asked = state.migration_asked
    total = state.migration.total_time
    if asked is not None and total is not None and state.migration.is_running:
        # QEMU counted total-time when it answered, after the query was sent; it truncates
        # to the millisecond, hence the extra one.
        bounds.append(asked - total / 1000 - 0.001)
    return max(bounds) if bounds else None
