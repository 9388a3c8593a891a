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

import codecs
import contextlib
import errno
import math
import os
import select
import threading
from collections.abc import Callable
from typing import TextIO

from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

# What a read of a terminal that hung up (or was closed under us) fails with.
_GONE = frozenset({errno.EIO, errno.EBADF, errno.ENXIO})
_HUNG_UP = select.POLLHUP | select.POLLERR | select.POLLNVAL
# Textual's own period, used only if its parser no longer says when its timeout falls due.
_FALLBACK_MS = 100


class TerminalLost(Message):
    """The view's terminal is gone: its input ended or its output failed."""


class ViewDriver(LinuxDriver):
    _wake: _Wake | None = None
    _told = False

    def start_application_mode(self) -> None:
        file = getattr(self, "_file", None)  # LinuxDriver's private output (without it: Textual's own handling)
        if file is not None and not isinstance(file, _Output):
            # Textual types it as stderr's TextIOWrapper; its writer thread uses write, flush, fileno.
            self._file = _Output(file, self._lost)  # type: ignore[assignment]
        if self._wake is None:  # the first start, or one after close(): a new pipe
            self._wake = _Wake()
            # Textual sets this flag to stop the input thread (and joins it): it now also wakes it.
            self.exit_event = _WakingEvent(self._wake)
        super().start_application_mode()  # type: ignore[no-untyped-call]  # (unannotated in Textual)

    def close(self) -> None:
        # Not only at the app's end: Driver.suspend_application_mode (App.suspend, SIGTSTP)
        # stops application mode and closes the driver, and resume starts it again.
        super().close()
        if self._wake is not None:
            self._wake.close()
            self._wake = None

    def run_input_thread(self) -> None:
        try:
            self._read_input()
        except OSError as err:
            if err.errno not in _GONE:
                raise  # Textual's own handling: a panic that shows the traceback
            self._lost()

    def _read_input(self) -> None:
        """Textual's input loop (``LinuxDriver.run_input_thread``), asleep between keys."""
        assert self._wake is not None  # started by start_application_mode
        fd, wake = self.fileno, self._wake
        parser = XTermParser(self._debug)
        decode = codecs.getincrementaldecoder("utf-8")().decode
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # POLLHUP, POLLERR and POLLNVAL come whatever is asked
        poller.register(wake.read_fd, select.POLLIN)
        try:
            while not self.exit_event.is_set():
                for ready, mask in poller.poll(_timeout_ms(parser)):
                    if ready == wake.read_fd:
                        wake.drain()
                    elif mask & select.POLLIN:
                        data = os.read(fd, 4096)
                        if not data:  # the terminal's input ended
                            self._lost()
                            return
                        text = decode(data)
                        # "": a character split across reads waits for its end; the parser
                        # takes "" for the end of its input (and fails on what comes next).
                        for event in parser.feed(text) if text else ():
                            self.process_message(event)
                    elif mask & _HUNG_UP:  # hung up with nothing left to read
                        self._lost()
                        return
                for event in parser.tick():
                    self.process_message(event)
        finally:
            with contextlib.suppress(EOFError, ParseError):
                for _event in parser.feed(""):
                    pass

    def _lost(self) -> None:
        """From any thread; said once, while the app's loop (Driver's private ``_loop``) is open."""
        loop = getattr(self, "_loop", None)
        if not self._told and not (loop is not None and loop.is_closed()):
            self._told = True
            self.send_message(TerminalLost())  # thread-safe, to the app's loop


def _timeout_ms(parser: XTermParser) -> int | None:
    """How long the input thread may sleep: until the parser's timeout (a lone ESC is a key
    once ``ESCAPE_DELAY`` passed with nothing after it), or until input when none is due."""
    due = getattr(parser, "_timeout_time", 0.0)  # Parser's private deadline (monotonic); 0.0: unknown
    if due is None:
        return None
    if not due:
        return _FALLBACK_MS
    return max(0, math.ceil((due - get_time()) * 1000))


class _Wake:
    """A pipe that wakes the input thread from poll(2)."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)

    def wake(self) -> None:
        if self._write_fd < 0:
            return  # closed: its number may be another file's by now
        with contextlib.suppress(OSError):  # full: it wakes already
            os.write(self._write_fd, b"x")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self.read_fd, 64)

    def close(self) -> None:
        for fd in (self.read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.read_fd = self._write_fd = -1


class _WakingEvent(threading.Event):
    """Textual's stop flag for the input thread, which wakes it as it is set."""

    def __init__(self, wake: _Wake) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake.wake()


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
