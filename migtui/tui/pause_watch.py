"""Brings each pre-switchover pause the engine reports to the operator.

The engine decides everything about a pause (``RemoteSession.pause``: its clock, checklist,
deadline, who drives it, what each key would do); this class only presents it: the banner
shows each paused source and the switchover dialog opens by itself, one source at a time
(the others queue and are named in the open dialog and the banner, so none is lost). When
the engine's --auto-resume handles a pause the dialog opens only if it holds back. A
pause that ended before its dialog could open (libvirt's, tens of ms) still says how it
ended, once, on the flash line -- as the dialog does when someone else ends its pause.

One clock ticks the banner and every open dialog together (``TICK_S``, only while
something is paused), so they show the same tenth of a second. While a guest is
stopped and migtui acts on it (a confirmed resume or abort), every ms of event-loop time
is downtime: ticks stop and repaints wait in :meth:`PauseWatch.after_critical` until the
outcome is known (at most ``HOLD_REPAINT_S``). Nothing else holds.

The engine guards every pause whatever happens to this view: ``q`` just quits (the
command line then says what the engine keeps guarding), and SIGHUP/SIGTERM (terminal
lost, SSH drop) exit at once, as does a terminal whose input fails (``terminal_driver``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from textual.content import Content

from ..view.remote import RemoteSession
from ..workflow.session import CONFIG, CONNECTION, MIGRATION, MonitorSession
from .pause_queue import HELD, PauseQueue, paused
from .pause_text import (
    Situation,
    banner_line,
    covered_banner_line,
    deadline_text,
    engine_note,
    gone_banner_line,
    situation,
)
from .screens.switchover import SwitchoverScreen
from .terminal_cues import TerminalCues, title_text
from .widgets.pause_banner import PauseBanner

if TYPE_CHECKING:
    from textual.app import App
    from textual.timer import Timer

log = logging.getLogger("migtui.tui")

_EXIT_SIGNALS = {signal.SIGHUP: ("SIGHUP (terminal lost)", 129), signal.SIGTERM: ("SIGTERM", 143)}
_RELEVANT = frozenset({MIGRATION, CONNECTION, CONFIG})  # a PAUSE message notifies MIGRATION and CONFIG
BANNER_LINES = 3  # at 80x24 the panels below must stay visible
TICK_S = 0.1  # the downtime clock of the banner and the dialogs, only while a guest is paused
# While migtui acts on a stopped guest the screen waits (at most this long, then it
# repaints anyway: a mirror can take seconds to finish) rather than compete for the loop.
HOLD_REPAINT_S = 0.25
# While a dialog opens, the dashboard beneath it (the banner, the panels; tinted behind the
# modal) waits for the dialog's first frame, at most this long: its repaint for the same pause
# competed with Textual's mount and layout of the dialog (open -> first frame 79 -> 62 ms
# median when held, docs/benchmarks.md 2026-12-07).
OPENING_HOLD_S = 0.3
EXIT_FAILSAFE_S = 0.6  # a view that lost its terminal is gone within a second, however Textual fares


class PauseWatch:
    def __init__(self, app: App[int], sessions: Mapping[str, RemoteSession], *, clock: Callable[[], float],
                 cues: TerminalCues | None = None) -> None:
        self.app = app
        self.cues = cues  # the terminal's title and bell
        self.sessions = sessions
        self.clock = clock
        self.queue = PauseQueue(sessions)
        self._banner_empty = True  # the banner shows nothing now
        self._unsubscribe: list[Callable[[], None]] = []
        self._signals: list[int] = []
        self._ticker: Timer | None = None
        self._deferred: list[Callable[[], None]] = []  # repaints waiting for the critical phase to end
        self._hold: Timer | None = None
        self._flush_scheduled = False
        self._critical_since: float | None = None  # when this critical phase began (monotonic)
        self._told: dict[str, object] = {}  # each source's switchover result this view has said (or found)
        self._detached = False  # the terminal went (or a signal told this view to go)
        self._opening: SwitchoverScreen | None = None  # a dialog pushed, not yet on screen
        self._opening_timer: Timer | None = None
        self._when_shown: list[Callable[[], None]] = []  # what waits for it

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Subscribe, and bring up what is paused already (the engine's picture came first)."""
        for session in self.sessions.values():
            self._follow(session)
        self._install_signals()
        self._ticker = self.app.set_interval(TICK_S, self.tick, pause=True)
        for session in self.sessions.values():
            self._changed(session, frozenset({MIGRATION}))

    def add(self, session: RemoteSession) -> None:
        """Follow a monitor that came after :meth:`start` (already in ``sessions``)."""
        self._follow(session)
        self._changed(session, frozenset({MIGRATION}))

    def _follow(self, session: RemoteSession) -> None:
        self._told[session.name] = session.switchover.result  # from before: the startup notices say it
        self._unsubscribe.append(session.add_change_listener(self._changed))
        self._unsubscribe.append(session.switchover.add_progress_listener(self._switchover_moved))

    def _switchover_moved(self, controller: object) -> None:
        """A pause that others ended (libvirt, another client, QEMU) while no dialog showed it."""
        for name, session in self.sessions.items():
            c = session.switchover
            if c is not controller or c.result is None or c.action is not None or self._told.get(name) is c.result:
                continue
            self._told[name] = c.result
            if not any(d.source is session for d in self._dialogs()):  # an open dialog says it itself
                # Untitled: the reason names the source and the pause, and who ended it must
                # fit 80 columns ("Switchover: " cut "(libvirt resumed it" of a 100+ ms pause).
                self.app.notify(c.result.reason, severity="warning", timeout=15)

    def remove(self, name: str) -> None:
        """A monitor the engine no longer watches (already out of ``sessions``): its dialog
        closes, it leaves the queue, the banner and the title forget it."""
        self.queue.forget(name)
        for dialog in self._dialogs():
            if dialog.source.name == name:
                dialog.dismiss()
        self.schedule_banner()
        self._update_ticker()

    def stop(self) -> None:
        for timer in (self._ticker, self._hold):
            if timer is not None:
                timer.stop()
        self._ticker = self._hold = None
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._remove_signals()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig, (why, code) in _EXIT_SIGNALS.items():
            try:
                loop.add_signal_handler(sig, self.detach, why, code)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._signals.append(sig)

    def _remove_signals(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()

    def detach(self, why: str, code: int) -> None:
        """The terminal is gone (or we are told to go): the view detaches; the engine keeps
        every pause and its deadline.

        Gone within a second whatever happens: a terminal that hung up can leave Textual's
        driver waiting on it, so a last-resort timer ends the process (logs are flushed
        per record; the view holds nothing the engine does not). Once: a hang-up is often
        both a failed read and a SIGHUP."""
        if self._detached:
            return
        self._detached = True
        failsafe = threading.Timer(EXIT_FAILSAFE_S, os._exit, args=(code,))
        failsafe.daemon = True
        failsafe.start()
        log.info("%s: view detached; the engine keeps watching (and guarding) every monitor", why)
        self.app.exit(return_code=code)

    # ------------------------------------------------------------------ detection

    def _changed(self, session: MonitorSession, kinds: frozenset[str]) -> None:
        if not kinds & _RELEVANT or not isinstance(session, RemoteSession):
            return
        news = self.queue.observe(session)
        if news.new:
            log.info("%s: paused in pre-switchover (guest stopped)", session.name)
            if self.cues is not None:
                self.cues.guest_stopped()
        if news.ask:
            self.app.call_later(self.open_dialog, session.name)
        if news.ended:
            self._refresh_dialogs()
        self.schedule_banner()  # also ends a hold as soon as the pause is over
        self._update_ticker()

    # ------------------------------------------------------------------ dialogs

    def _dialogs(self) -> list[SwitchoverScreen]:
        return [s for s in self.app.screen_stack if isinstance(s, SwitchoverScreen)]

    def open_dialog(self, name: str, *, user: bool = False, abort_first: bool = False) -> SwitchoverScreen | None:
        """Open ``name``'s dialog, or queue it behind the one that is open."""
        session = self.sessions.get(name)
        if session is None:
            return None
        controller = session.switchover
        acting = controller.running or controller.action is not None
        if not session.pause.paused and not (user and acting):
            return None
        open_ = self._dialogs()
        for dialog in open_:
            if dialog.source is session:
                return dialog
        if open_:
            self.queue.enqueue(name)
            self._refresh_dialogs()
            return None
        self.queue.unqueue(name)
        dialog = SwitchoverScreen(
            session, self.sessions.get(session.pause.destination or ""), clock=self.clock, abort_first=abort_first,
            note=partial(self.dialog_note, name), more=partial(self.queue.others_paused, name),
            defer=self.after_critical,
        )
        self._begin_opening(dialog)
        self.app.push_screen(dialog, lambda _result: self._dialog_closed(name))
        self._update_ticker()
        self._update_banner()
        return dialog

    @property
    def opening(self) -> bool:
        """A dialog was pushed and has not drawn its first frame yet."""
        return self._opening is not None

    def when_shown(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the opening dialog is on screen (at once if none opens)."""
        if self._opening is None:
            callback()
        elif callback not in self._when_shown:
            self._when_shown.append(callback)

    def _begin_opening(self, dialog: SwitchoverScreen) -> None:
        self._opening = dialog
        dialog.call_after_refresh(self._shown, dialog)  # after its first frame
        if self._opening_timer is not None:
            self._opening_timer.stop()
        self._opening_timer = self.app.set_timer(OPENING_HOLD_S, partial(self._shown, dialog))

    def _shown(self, dialog: SwitchoverScreen) -> None:
        if self._opening is not dialog:
            return
        self._opening = None
        if self._opening_timer is not None:
            self._opening_timer.stop()
            self._opening_timer = None
        waiting, self._when_shown = self._when_shown, []
        for callback in waiting:  # repaints: not while migtui acts on the stopped guest (a quick y)
            self.after_critical(callback)

    def _dialog_closed(self, name: str) -> None:
        self.app.call_later(self._update_banner)  # "s opens" again
        following = self.queue.next_queued()
        if following is not None:
            self.open_dialog(following)

    def dialog_note(self, name: str) -> Content | None:
        """The engine's word on this pause: who drives it, its deadline, its notes, who acted."""
        session = self.sessions.get(name)
        if session is None:
            return None
        lines = engine_note(session.pause, self.clock())
        controller = session.switchover
        if controller.action and controller.actor:
            lines.insert(0, Content.styled(f"{controller.action} started by {controller.actor}", "$accent"))
        silence = session.engine_silence
        if silence is not None:  # nothing here is current, and nothing asked of it is under way
            lines.insert(0, Content.styled(f"✗ {silence}", "bold $error"))
        return Content("\n").join(lines) if lines else None

    def _refresh_dialogs(self) -> None:
        for dialog in self._dialogs():
            dialog.refresh_more()

    # ------------------------------------------------------------------ clock and holds

    def critical(self) -> bool:
        """Hold repaints: migtui acts on a stopped guest (``PauseTracker.critical``) -- for
        at most ``HOLD_REPAINT_S``. An action that takes longer (a mirror that takes
        seconds, a frozen QEMU that does not answer) has the clocks tick again: the screen
        never freezes."""
        if not self.queue.critical():
            self._critical_since = None
            return False
        now = time.monotonic()
        if self._critical_since is None:
            self._critical_since = now
        return now - self._critical_since < HOLD_REPAINT_S

    def after_critical(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (a repaint) soon, or once the critical phase is over.

        Called from session and switchover callbacks, some in the downtime path: it
        only queues. Every call re-checks, so the first callback after the outcome is
        known (the MIGRATION event, the switchover's result) releases the queue.
        """
        if callback not in self._deferred:
            self._deferred.append(callback)
        if self.critical():
            if self._hold is None:
                self._hold = self.app.set_timer(HOLD_REPAINT_S, self._release)
            return
        self._release()

    def _release(self) -> None:
        if self._hold is not None:
            self._hold.stop()
            self._hold = None
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.app.call_later(self._flush_deferred)

    def _flush_deferred(self) -> None:
        self._flush_scheduled = False
        if self.critical():  # it began between the release and now (a `y` in between): wait for its end
            if self._hold is None:
                self._hold = self.app.set_timer(HOLD_REPAINT_S, self._release)
            return
        deferred, self._deferred = self._deferred, []
        for callback in deferred:
            callback()
        self.tick()  # the banner and the dialogs from one clock reading again

    def _update_ticker(self) -> None:
        if self._ticker is None:
            return
        ticking = [s for s in paused(self.sessions) if situation(s) is Situation.PAUSED]
        if ticking or any(d.clock_running for d in self._dialogs()):
            self._ticker.resume()
        else:
            self._ticker.pause()

    def tick(self) -> None:
        """One clock reading for the banner and every open dialog: they show the same tenth."""
        if self.critical():
            return  # the clocks resume (with their final values) once the outcome is known
        now = self.clock()
        self._update_banner(now)
        for dialog in self._dialogs():
            dialog.tick(now)
        self._update_ticker()

    # ------------------------------------------------------------------ banner

    def schedule_banner(self) -> None:
        empty = self.queue.quiet
        if empty and self._banner_empty:
            return  # nothing shown, nothing to show: skip the DOM walk on every poll
        self._banner_empty = empty
        self.after_critical(self._update_banner)

    def _update_banner(self, now: float | None = None) -> None:
        if self._opening is not None:
            self.when_shown(self._update_banner)
            return
        if self.cues is not None:  # the window's title says it too, for a terminal in the background
            self.cues.title(title_text(paused(self.sessions), self.clock() if now is None else now))
        for screen in self.app.screen_stack:
            for banner in screen.query(PauseBanner):
                banner.update(now)

    def banner_content(self, now: float | None = None) -> tuple[list[Content], list[Content]]:
        """(one ticking line per paused source, notes that wrap)."""
        now = self.clock() if now is None else now
        lines: list[Content] = []
        sources = paused(self.sessions)
        shown = sources if len(sources) <= BANNER_LINES else sources[: BANNER_LINES - 1]
        dialogs = self._dialogs()
        open_ = {dialog.source.name for dialog in dialogs}  # "s opens" only what is closed
        ticking = {dialog.source.name for dialog in dialogs if dialog.clock_running}  # its clock is there
        for session in shown:
            pause = session.pause
            opens = session.name not in open_
            if situation(session) is Situation.LOST:  # no clock ticks for a QEMU that may be gone
                lines.append(gone_banner_line(session.name, pause.clock, pause.lost_at, opens=opens))
                continue
            if session.name in ticking:  # its dialog shows the clock and the deadline: nothing beneath ticks
                lines.append(covered_banner_line(session.name))
                continue
            lines.append(banner_line(session.name, pause.clock, now, deadline_text(pause, now), opens=opens))
        if len(shown) < len(sources):  # many at once: one line names the rest, none is lost
            rest = [s.name for s in sources[len(shown):]]
            lines.append(Content.styled(f" ‖ {len(rest)} more guests STOPPED: {', '.join(rest)} ",
                                        "bold reverse $warning"))
        notes = [_note_line(key, text) for key, text in self.queue.banner_notes()]
        silence = next((s.engine_silence for s in sources if s.engine_silent), None)
        if silence is not None:  # the clocks tick on; the deadline, the checklist are its last word
            notes.insert(0, Content.styled(f"✗ {silence}", "bold $error"))
        if any(s.read_only for s in sources):
            notes.append(Content.styled("read-only: migtui will not resume or abort; the guest stays stopped"
                                        " until another client does", "$warning"))
        return lines, notes

    def quit(self, code: int = 0) -> None:
        """Quit: the engine guards every pause without this view (the command line says what)."""
        self.app.exit(return_code=code)


def _note_line(key: str, text: str) -> Content:
    """A pause note: auto-resume held back (loud, ✗), or what it is doing."""
    if key == HELD:
        return Content.styled(f"✗ {text}", "bold $error")
    return Content.styled(text, "$accent")
