"""Where a user's engine lives: one private directory per user, like tmux's /tmp/tmux-UID.

``--runtime-dir`` or ``$MIGTUI_RUNTIME_DIR`` choose it (tests, the lab and the demo
use their own, so they never meet a user's engine); otherwise
``$XDG_RUNTIME_DIR/migtui``, else ``/tmp/migtui-UID``. The directory is 0700 and
owned by the user, or migtui refuses it: the socket inside gives full control of
every VM the engine watches.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import MigtuiError

RUNTIME_ENV = "MIGTUI_RUNTIME_DIR"
MAX_SOCKET_PATH = 107  # sun_path, without its NUL


class RuntimeDirError(MigtuiError):
    """The runtime directory cannot be used safely."""


@dataclass(frozen=True)
class Runtime:
    directory: Path

    @property
    def socket(self) -> Path:
        return self.directory / "engine.sock"

    @property
    def lock(self) -> Path:
        return self.directory / "engine.lock"

    @property
    def pid_file(self) -> Path:
        return self.directory / "engine.pid"

    @property
    def default_log(self) -> Path:
        return self.directory / "engine.log"

    def ensure(self) -> Runtime:
        """Create the directory (0700) or check that an existing one is private and ours."""
        d = self.directory
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            pass  # something else is there: said below
        except OSError as err:
            raise RuntimeDirError(f"runtime directory {d}: {err.strerror or err}") from None
        try:
            st = os.lstat(d)
        except OSError as err:
            raise RuntimeDirError(f"runtime directory {d}: {err.strerror or err}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise RuntimeDirError(f"runtime directory {d} is {_kind(st.st_mode)}, not a directory: remove it,"
                                  f" or choose another with --runtime-dir or ${RUNTIME_ENV}")
        if st.st_uid != os.getuid():
            raise RuntimeDirError(f"runtime directory {d} belongs to uid {st.st_uid}, not {os.getuid()}:"
                                  f" use --runtime-dir or ${RUNTIME_ENV}")
        if st.st_mode & 0o077:
            raise RuntimeDirError(f"runtime directory {d} is open to other users"
                                  f" (mode {stat.S_IMODE(st.st_mode):o}): chmod 700 {d}")
        if len(os.fsencode(self.socket)) > MAX_SOCKET_PATH:
            raise RuntimeDirError(f"runtime directory {d} is too deep for a unix socket: use a shorter one")
        return self


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "a symlink"), (stat.S_ISREG, "a regular file"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "something else"


def runtime(requested: str | os.PathLike[str] | None = None) -> Runtime:
    """The runtime directory to use (not created: call :meth:`Runtime.ensure`)."""
    chosen = requested or os.environ.get(RUNTIME_ENV)
    if chosen:
        return Runtime(Path(chosen).absolute())
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        return Runtime(Path(xdg) / "migtui")
    return Runtime(Path(f"/tmp/migtui-{os.getuid()}"))
