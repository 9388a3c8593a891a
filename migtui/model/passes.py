"""The pre-copy's passes, one per dirty-bitmap sync: the evidence the convergence advisor judges.

QEMU copies RAM in passes. Pass 1 sends all of it; at the end of each pass QEMU syncs the
dirty bitmap (``MIGRATION_PASS {pass}``, ``ram.dirty-sync-count``) and the next pass sends
what the guest dirtied meanwhile. So the RAM *remaining at each sync* is the figure that
tells whether a migration converges: it must shrink, pass after pass, until it fits
bandwidth x downtime-limit and QEMU switches over. The RAM bar's percentage does not:
a stuck migration copies the same 16 MiB of a 128 MiB guest again and again at "88-98 %".

Each :class:`Pass` keeps when it began (QEMU's MIGRATION_PASS timestamp when the event was
seen, else a bound from the polls around it), the remaining RAM at its start, and the rates
QEMU reported during it. QEMU's ``remaining`` is only polled, so the remaining at the sync
is taken from the first poll in the pass, carried back to the sync at the send rate (the
pages dirtied after the sync do not count until the next one). Pure: fed by
:class:`~migtui.model.vmstate.VmState` with its inputs and their times.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .migration import MigrationInfo

KEPT = 64  # passes kept: the advisor reads the last few, the trend shows what fits


@dataclass(frozen=True)
class Pass:
    number: int  # ram.dirty-sync-count during this pass (1: the bulk copy of all RAM)
    start: float | None = None  # wall clock of the sync that began it
    exact: bool = False  # ``start`` is QEMU's own MIGRATION_PASS timestamp (else a poll's bound)
    joined: bool = False  # first seen mid-pass (migtui connected during it): when it began is unknown
    end: float | None = None  # the next sync
    # The first poll in the pass: its remaining RAM (bytes), when it was true, the send rate then.
    first_remaining: int | None = None
    first_at: float | None = None
    first_rate: float | None = None
    total: int | None = None  # the guest's RAM
    dirty_rate: float | None = None  # bytes/s: dirty-pages-rate x page size at the sync that began it
    sent: tuple[float, ...] = field(default=(), repr=False)  # every throughput polled in it (bytes/s)

    @property
    def remaining(self) -> int | None:
        """Bytes left to send when the pass began: the first poll's figure plus what was
        sent between the sync and that poll (bounded by the RAM size). None for a pass first
        seen in its middle: how much it had sent by then is unknown."""
        if self.first_remaining is None or self.joined:
            return None
        value = float(self.first_remaining)
        if self.start is not None and self.first_at is not None and self.first_rate:
            value += max(0.0, self.first_at - self.start) * self.first_rate
        if self.total:
            value = min(value, float(self.total))
        return round(value)

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)

    @property
    def sent_rate(self) -> float | None:
        """The mean send rate polled during this pass (bytes/s)."""
        rates = [r for r in self.sent if r > 0]
        return sum(rates) / len(rates) if rates else None


class PassLog:
    """The passes of the current migration, folded from MIGRATION_PASS events and
    query-migrate replies (in arrival order, with their times)."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._passes: list[Pass] = []
        self._last_poll: float | None = None  # when the last query-migrate in a pass was true

    @property
    def passes(self) -> tuple[Pass, ...]:
        return tuple(self._passes)

    @property
    def current(self) -> Pass | None:
        return self._passes[-1] if self._passes else None

    @property
    def last_poll(self) -> float | None:
        """When the last query-migrate folded in was true (about: QEMU answered in between)."""
        return self._last_poll

    def reset(self) -> None:
        self._passes.clear()
        self._last_poll = None

    def on_pass_event(self, number: int, at: float) -> None:
        """``MIGRATION_PASS {pass: number}`` stamped ``at`` (QEMU's clock)."""
        current = self.current
        if current is not None and number == current.number:
            if not current.exact:  # a poll saw this pass first: QEMU's stamp is the exact start
                self._passes[-1] = replace(current, start=at, exact=True, joined=False)
                if len(self._passes) >= 2:
                    self._passes[-2] = replace(self._passes[-2], end=at)
            return
        if current is not None and number < current.number:
            return  # an old event (a new migration resets the log before its first pass)
        self._begin(number, at, exact=True)

    def on_migrate(self, info: MigrationInfo, now: float, asked: float | None = None) -> None:
        """A query-migrate reply received at ``now`` (sent at ``asked``)."""
        ram = info.ram
        number = info.pass_number
        if not info.is_running or ram is None or number is None or number < 1:
            return
        at = now if asked is None else (min(asked, now) + now) / 2  # QEMU answered in between
        current = self.current
        if current is None or number > current.number:
            # The poll saw the sync before its event: it happened after the last poll -- or,
            # with no poll before it in this migration, at some unknown time before this one.
            since = self._last_poll if self._last_poll is not None else at
            self._begin(number, (since + at) / 2, exact=False, joined=self._last_poll is None and number > 1)
        elif number < current.number:
            return
        current = self.current
        assert current is not None
        rate = info.throughput_bytes_per_s
        first = current.first_remaining is None and ram.remaining is not None
        self._passes[-1] = replace(
            current,
            total=ram.total or current.total,
            first_remaining=ram.remaining if first else current.first_remaining,
            first_at=at if first else current.first_at,
            first_rate=rate if first else current.first_rate,
            # QEMU's rate at the sync that began this pass (over the pass before it); none in pass 1.
            dirty_rate=current.dirty_rate if current.dirty_rate is not None or number < 2
            else info.dirty_rate_bytes_per_s,
            sent=(*current.sent, rate)[-32:] if rate is not None else current.sent,
        )
        self._last_poll = at

    def _begin(self, number: int, at: float, *, exact: bool, joined: bool = False) -> None:
        if self._passes:
            self._passes[-1] = replace(self._passes[-1], end=at)
        self._passes.append(Pass(number, start=at, exact=exact, joined=joined))
        del self._passes[:-self._kept]
