"""Wait for a condition on a session's state, re-checked on every change it reports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .session import MonitorSession


async def wait_until(session: MonitorSession, pred: Callable[[], bool], timeout: float) -> None:
    """Return once ``pred()`` holds; raise TimeoutError after ``timeout`` seconds.

    Event-driven (no polling): the session's change listener wakes the check.
    """
    changed = asyncio.Event()
    remove = session.add_change_listener(lambda _s, _k: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                changed.clear()
                await changed.wait()
    finally:
        remove()
