"""The reply deadlines of one QMP connection, on one timer.

A poll's round trip is a few hundred microseconds of Python, and an ``asyncio.timeout``
per command was a tenth of it (a Timeout object, a timer made, pushed on the loop's heap
and cancelled, for a reply that comes in a millisecond): 200 idle monitors ask 200
``query-migrate`` a second. Here each command only notes when its reply is due; one timer
per connection fires at the earliest due moment, fails the overdue replies (TimeoutError)
and re-arms for the next one. A connection answering promptly re-arms it
about once per timeout, not once per command.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol


class Expiring(Protocol):
    def expire(self) -> None:
        """No reply in time: fail whoever waits for it (a no-op once it was answered)."""


class Deadlines:
    def __init__(self) -> None:
        self._due: dict[object, tuple[float, Expiring]] = {}  # key -> (loop time, reply)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, key: object, reply: Expiring, seconds: float) -> None:
        """``reply.expire()`` unless ``key`` is discarded within ``seconds``."""
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds
        self._due[key] = (due, reply)
        if due < self._timer_at:
            self._arm(loop, due)

    def discard(self, key: object) -> None:
        """The reply came (or the caller gave up): no deadline for it any more. The timer
        stays: disarming and arming again per command is what this saves."""
        self._due.pop(key, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self._expire, loop), when

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now = loop.time()
        for key, (due, reply) in list(self._due.items()):
            if due <= now:
                del self._due[key]
                reply.expire()
        if self._due:
            self._arm(loop, min(due for due, _ in self._due.values()))
