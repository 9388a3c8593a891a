"""The view's terminal driver: a terminal that goes away detaches the view, as SIGHUP does.

When an SSH connection drops, sshd closes the pty's master. The kernel sends SIGHUP to the
session leader only (the login shell, which passes it on to its jobs if it can), so a
view may learn of it only from its terminal: a read that ends (EOF) or fails (EIO), a
write that fails, a poll that says hang-up. Textual's driver has no answer for these: a
read error is a panic (a traceback to a terminal that is gone, exit status 1); EOF is
taken for piped input and read again; a failed write ends its writer thread, and the next
30 writes block the app for good. Here each is one :class:`TerminalLost` message, which the
app answers as it answers SIGHUP, and writes after it are dropped so the app can leave.
"""

from __future__ import annotations

import errno
import os
import select
import threading
from collections.abc import Callable
from typing import TextIO

from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

# What a read of a terminal that hung up (or was closed under us) fails with.
_GONE = frozenset({errno.EIO, errno.EBADF, errno.ENXIO})


class TerminalLost(Message):
    """The view's terminal is gone: its input ended or its output failed."""


class ViewDriver(LinuxDriver):
    _hangup: _HangupWatch | None = None
    _told = False

    def start_application_mode(self) -> None:
        file = getattr(self, "_file", None)  # LinuxDriver's private output (without it: Textual's own handling)
        if file is not None and not isinstance(file, _Output):
            # Textual types it as stderr's TextIOWrapper; its writer thread uses write, flush, fileno.
            self._file = _Output(file, self._lost)  # type: ignore[assignment]
        super().start_application_mode()  # type: ignore[no-untyped-call]  # (unannotated in Textual)
        self._hangup = _HangupWatch(self.fileno, self._lost)

    def stop_application_mode(self) -> None:
        if self._hangup is not None:
            self._hangup.stop()
            self._hangup = None
        super().stop_application_mode()

    def run_input_thread(self) -> None:
        try:
            super().run_input_thread()
        except OSError as err:
            if err.errno not in _GONE:
                raise  # Textual's own handling: a panic that shows the traceback
            self._lost()

    def _lost(self) -> None:
        """From any thread; said once, while the app's loop (Driver's private ``_loop``) is open."""
        loop = getattr(self, "_loop", None)
        if not self._told and not (loop is not None and loop.is_closed()):
            self._told = True
            self.send_message(TerminalLost())  # thread-safe, to the app's loop


class _Output:
    """The terminal's output as Textual's writer thread sees it: after a write fails, the
    terminal is lost and further writes are dropped (the app's shutdown still writes)."""

    def __init__(self, file: TextIO, lost: Callable[[], None]) -> None:
        self._file = file
        self._on_lost = lost
        self.failed = False

    def write(self, text: str) -> None:
        if not self.failed:
            self._guard(self._file.write, text)

    def flush(self) -> None:
        if not self.failed:
            self._guard(self._file.flush)

    def fileno(self) -> int:
        return self._file.fileno()

    def _guard(self, call: Callable[..., object], *args: str) -> None:
        try:
            call(*args)
        except OSError:
            self.failed = True
            self._on_lost()


class _HangupWatch:
    """A thread asleep in poll(2) on the terminal until it hangs up (POLLHUP: the master
    side closed), or until stopped: nothing to do while the terminal is there."""

    def __init__(self, fd: int, lost: Callable[[], None]) -> None:
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, args=(fd, lost), name="migtui-hangup", daemon=True)
        self._thread.start()

    def _run(self, fd: int, lost: Callable[[], None]) -> None:
        poller = select.poll()
        poller.register(fd, 0)  # POLLHUP, POLLERR and POLLNVAL are reported whatever is asked
        poller.register(self._wake_r, select.POLLIN)
        try:
            ready = poller.poll()
        except OSError:
            return
        if any(ready_fd == fd for ready_fd, _ in ready):
            lost()

    def stop(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)
