"""A list of callbacks told of something in turn (the transport's, the sessions', the
switchover's and the views' listeners).

One that raises is logged and never keeps the others -- or the code that told them,
often on the path that resumes a paused guest -- from going on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")


class Listeners(Generic[P]):
    def __init__(self, what: str, logger: logging.Logger, owner: str = "") -> None:
        self._what = what  # "state listener": for the log
        self._log = logger
        self._owner = owner  # the monitor's name, when there is one: for the log
        self._items: list[Callable[P, None]] = []

    def add(self, cb: Callable[P, None]) -> Callable[[], None]:
        """Add ``cb``; returns a function that removes it again (idempotent)."""
        self._items.append(cb)
        return lambda: self._items.remove(cb) if cb in self._items else None

    def __bool__(self) -> bool:
        return bool(self._items)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for cb in list(self._items):  # a callback may remove itself
            try:
                cb(*args, **kwargs)
            except Exception:
                prefix = f"{self._owner}: " if self._owner else ""
                self._log.exception("%s%s %r failed", prefix, self._what, cb)
