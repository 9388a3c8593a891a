"""libvirt's event loop on a thread of its own: its callbacks never run on (or block) asyncio.

``virEventRegisterDefaultImpl()`` must come before the first ``open()``; the thread then
loops ``virEventRunDefaultImpl()`` for the life of the process. Callbacks arrive on that
thread and are handed to asyncio with ``loop.call_soon_threadsafe`` (connection.py).
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType

log = logging.getLogger("migtui.libvirt")

_lock = threading.Lock()
_started = False


def _quiet(_opaque: object, _error: object) -> None:
    """libvirt prints every error to stderr unless a handler takes it: the errors come
    back as exceptions to whoever made the call."""


def _run(libvirt: ModuleType) -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # one bad callback must not end every connection's events
            log.exception("libvirt's event loop")


def ensure_started(libvirt: ModuleType) -> None:
    """Register libvirt's default event implementation and start its thread, once."""
    global _started
    with _lock:
        if _started:
            return
        libvirt.registerErrorHandler(_quiet, None)
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run, args=(libvirt,), name="libvirt-events", daemon=True).start()
        _started = True
