"""Where migtui's log goes: a file (--log-file), or nowhere.

Never the terminal: a view draws there, and the engine has none. The file is bounded
whatever happens: repeated lines (the same logger, level and message template) pass
in a burst of ``BURST``, then one per second, carrying the count of those left out
(:class:`RepeatFilter`); and at ``MAX_LOG_BYTES`` the file is rotated once (``F`` to
``F.1``), so it never holds more than twice that -- a runtime directory on tmpfs must
not fill up because something goes wrong in a loop.
"""

from __future__ import annotations

import logging
import logging.handlers
import time
from collections.abc import Callable

MAX_LOG_BYTES = 8 * 1024 * 1024  # then F -> F.1 (one kept): at most twice this on disk
BURST = 100  # lines of one kind written at once before they are thinned out
EVERY_S = 1.0  # then one line of that kind per this many seconds
KINDS_KEPT = 1000  # kinds of line remembered (dynamic messages make a kind each)


class RepeatFilter(logging.Filter):
    """Thins out a line that repeats: each kind of line (logger, level, message template)
    has a bucket of ``burst`` lines that refills at one per ``every`` seconds; a line
    finding it empty is left out and counted, and the next one written says how many
    were (so a storm of tracebacks is a few lines a second, not thousands)."""

    def __init__(self, burst: int = BURST, every: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.every = every
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], list[float]] = {}  # kind -> [tokens, when, left out]

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg)[:200])
        now = self.clock()
        bucket = self._kinds.get(kind)
        if bucket is None:
            if len(self._kinds) >= KINDS_KEPT:
                self._forget(now)
            bucket = self._kinds[kind] = [float(self.burst), now, 0.0]
        tokens = min(float(self.burst), bucket[0] + (now - bucket[1]) / self.every)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            bucket[2] += 1
            return False
        bucket[0] = tokens - 1.0
        if bucket[2]:
            left_out, bucket[2] = int(bucket[2]), 0.0
            record.msg = f"{record.getMessage()} [{left_out} more like this left out]"
            record.args = None
        return True

    def _forget(self, now: float) -> None:
        """Drop the kinds whose bucket is full again (nothing of them was left out lately)."""
        for kind, (tokens, when, left_out) in list(self._kinds.items()):
            if not left_out and tokens + (now - when) / self.every >= self.burst:
                del self._kinds[kind]
        if len(self._kinds) >= KINDS_KEPT:  # everything is storming: start afresh
            self._kinds.clear()


def setup_logging(path: str | None, *, max_bytes: int = MAX_LOG_BYTES) -> None:
    """A bounded file handler, or a null one: the lastResort stderr handler must never fire."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    # A log that cannot be written (a full disk) must not turn every line into a traceback
    # on stderr (the engine's stderr is a file in the runtime directory too).
    logging.raiseExceptions = False
    if path is None:
        root.addHandler(logging.NullHandler())
        return
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=1, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
