"""Files written whole or not at all: a reader never finds one half written."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_whole(path: Path, data: bytes, *, mode: int = 0o600, sync: bool = False) -> None:
    """``data`` at ``path``: written aside (``.NAME.PID``), then renamed over it. ``sync``:
    fsynced before the rename (a crash leaves the old file or the new one; the directory's
    fsync, which makes the rename itself durable, is the caller's)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
