"""The Textual app and ``make_app``, the one factory the view and the tests share.

The app shows a view's mirrors of its engine's sessions (``view/remote.py``; the engine
runs them) and turns their change callbacks into one :class:`SessionsChanged` per
burst: changes that arrive within ``COALESCE_S`` are merged, so a flood of events costs
one repaint.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import tzinfo
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.filter import LineFilter
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets._toast import ToastRack  # (private: no public name; its show() redraws a rack)

from ..view.remote import RemoteSession
from ..workflow.session import KINDS, MonitorSession
from .glyphs import ConsoleGlyphs, console_text
from .messages import NOT_AVAILABLE, SessionsChanged
from .pause_watch import PauseWatch
from .screens.confirm import QuitConfirm
from .screens.control_dashboard import ControlDashboard
from .screens.dashboard import DashboardScreen
from .screens.help import HelpScreen
from .screens.switchover_dashboard import SwitchoverDashboard
from .terminal_cues import TerminalCues
from .terminal_driver import TerminalLost, ViewDriver
from .themes import ANSI, DARK, MIGTUI_ANSI, MIGTUI_DARK, colour_system, theme_for
from .widgets.flash_line import Flash, FlashLine, default_timeout, one_line
from .widgets.too_small import HORIZONTAL_BREAKPOINTS, VERTICAL_BREAKPOINTS

if TYPE_CHECKING:
    from ..view.client import EngineClient

COALESCE_S = 1 / 30
# Titles a flash line leaves out: the message says it all (a key's "why not").
_UNTITLED = frozenset({NOT_AVAILABLE, "Engine"})
_HIDDEN_IN_HELP = {"screen.copy_text", "help_quit", "command_palette", "why"}


class MigtuiApp(App[int]):
    engine_client: EngineClient | None = None  # the engine link when this app is a view of one
    startup_notices: Sequence[str] = ()  # what the engine did while no view watched
    freeze_after_start = False  # gc.freeze() once the first screen is up (a view process's own app)
    # Which monitors the engine starts watching later this view shows too (libvirt domains
    # that start or arrive): None, none of them.
    follow: Callable[[RemoteSession], bool] | None = None
    early_notices: Sequence[tuple[str, str]] = ()  # (level, text) the engine said before the app listened
    engine_notices: Sequence[str] = ()  # the engine before this one went away: what that left at stake
    _story_shown = False  # engine_notices' toast is up: the next key takes it (and the toasts with it) away
    CSS_PATH = "app.tcss"
    # Every screen (dialogs, questions, help) says when the terminal is too small.
    HORIZONTAL_BREAKPOINTS = HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = VERTICAL_BREAKPOINTS
    TITLE = "migtui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        # Ctrl+C is q (the same question, if any), on every screen, then exit 130 as a shell
        # expects; Ctrl+Q is q too (Textual's own quits past any question).
        Binding("ctrl+c", "interrupt", show=False, priority=True, system=True),
        Binding("ctrl+q", "quit", show=False, priority=True, system=True),
    ]
    # (title, question) when quitting must be confirmed first (the demo: quitting stops its
    # QEMUs), else None; asked again at each quit.
    quit_question: Callable[[], tuple[str, str] | None] | None = None

    def __init__(
        self,
        sessions: Sequence[RemoteSession],
        *,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        coarse: bool = False,
        ansi: bool = False,
        bell: bool = False,
    ) -> None:
        # ansi_color at once: Textual picks its NO_COLOR filter as the app is made (with
        # ANSI colours it strips them, where it would turn RGB into greys).
        super().__init__(ansi_color=True if ansi else None)
        self.sessions = {s.name: s for s in sessions}
        self.cues = TerminalCues(self._write_terminal, bell=bell, glyphs=console_text if coarse else str)
        self.pauses = PauseWatch(self, self.sessions, clock=clock, cues=self.cues)  # the banner and the dialogs
        self.clock = clock
        self.tz = tz
        self.coarse = coarse
        self._pending: dict[str, set[str]] = {}
        self._held: dict[str, set[str]] = {}  # changes for the screens beneath an opening dialog
        self._held_top: Screen[Any] | None = None  # the one that had them all at once (if one did)
        self._flush_handle: asyncio.TimerHandle | None = None  # the coalesced SessionsChanged, due
        self._unsubscribe: list[Callable[[], None]] = []
        self.current_flash: Flash | None = None  # what the flash lines say now
        self._console_glyphs = ConsoleGlyphs()  # the Linux console's font (coarse)
        self.register_theme(MIGTUI_DARK)
        self.register_theme(MIGTUI_ANSI)
        self.theme = ANSI if ansi else DARK

    def _write_terminal(self, sequence: str) -> None:
        """An escape sequence for the terminal itself (its title, a bell), as Textual writes
        its own (App.bell, copy_to_clipboard): through the driver, in order with the screen."""
        if not self.is_headless and self._driver is not None:
            self._driver.write(sequence)

    def get_line_filters(self) -> Sequence[LineFilter]:
        filters = super().get_line_filters()
        return [*filters, self._console_glyphs] if self.coarse else filters

    def get_default_screen(self) -> SwitchoverDashboard:
        return ControlDashboard(
            self.sessions.values(), clock=self.clock, tz=self.tz, coarse=self.coarse, pauses=self.pauses
        )

    @property
    def dashboard(self) -> DashboardScreen:
        screen = self.screen_stack[0] if self.screen_stack else self.screen
        assert isinstance(screen, DashboardScreen)
        return screen

    # ------------------------------------------------------------------ sessions

    def on_mount(self) -> None:
        if self.freeze_after_start:
            # The screens and widgets built at start live as long as the view: out of the way
            # of every later collection (a full one walked ~75 000 objects; GC was a third of
            # a watching view's CPU).
            self.call_after_refresh(gc.freeze)
        if self.engine_client is not None:  # the engine's messages reach the app in its context
            self.engine_client.context = contextvars.copy_context()
        for line in self.startup_notices:
            self.notify(line, title="While no view watched", timeout=30)
        for level, text in self.early_notices:
            self.engine_notice(level, text)
        if self.engine_notices:
            # The story of a lost engine (which guest is stopped, what bounds it now) is several
            # lines the operator must read whole: a toast that stays, not the one-line flash.
            # Until the operator's next key: at 80x24 it covers half of an open dialog's actions.
            super().notify("\n".join(self.engine_notices), title="The engine", severity="warning", timeout=60)
            self._story_shown = True
        self.cues.start()
        self.pauses.start()  # the engine's picture may hold a pause already
        client = self.engine_client
        if client is not None:
            self._unsubscribe.append(client.add_unwatched_listener(self.remove_session))
        if client is not None and self.follow is not None:
            self._unsubscribe.append(client.add_monitor_listener(self._maybe_add))
            for session in list(client.sessions.values()):  # came while the app started
                self._maybe_add(session)
        for session in self.sessions.values():
            self._unsubscribe.append(session.add_change_listener(self._session_changed))
            self._session_changed(session, KINDS)  # what the engine's picture brought

    def _maybe_add(self, session: RemoteSession) -> None:
        if self.follow is not None and self.follow(session):
            self.add_session(session)

    def add_session(self, session: RemoteSession) -> None:
        """A monitor the engine started watching after this view began (a libvirt domain
        that started, or arrived by migration): listed, followed, its pauses watched."""
        if session.name in self.sessions:
            return
        self.sessions[session.name] = session  # the pause watch shares this mapping
        self._unsubscribe.append(session.add_change_listener(self._session_changed))
        self.pauses.add(session)
        self.dashboard.add_session(session)
        self._session_changed(session, KINDS)

    def remove_session(self, session: RemoteSession, why: str = "") -> None:
        """A monitor the engine no longer watches (a libvirt domain that stopped, was undefined
        or left by migration): gone from the list, the pause watch and any dialog of it."""
        if self.sessions.get(session.name) is not session:
            return
        del self.sessions[session.name]  # the pause watch shares this mapping
        self._pending.pop(session.name, None)
        self._held.pop(session.name, None)
        self.pauses.remove(session.name)
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                screen.remove_session(session.name)
        if why and (self.current_flash is None or why not in self.current_flash.text):
            self.notify(why)  # (a warning the engine sent about it stays: it says more)

    def engine_notice(self, level: str, text: str) -> None:
        """One of the engine's notices, as a toast."""
        self.notify(text, title="Engine", severity="error" if level == "error" else "information", timeout=12)

    def get_driver_class(self) -> type[Driver]:
        driver = super().get_driver_class()
        return ViewDriver if driver is LinuxDriver else driver  # (not one set by $TEXTUAL_DRIVER)

    def on_terminal_lost(self, _message: TerminalLost) -> None:
        # Whichever way the driver learnt it (a failed read or write, POLLHUP); 129 as for SIGHUP.
        self.pauses.detach("terminal lost (hung up)", 129)

    def on_unmount(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.pauses.stop()
        self.cues.stop()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def _session_changed(self, session: MonitorSession, kinds: frozenset[str]) -> None:
        self._pending.setdefault(session.name, set()).update(kinds)
        if self._flush_handle is None:
            # A loop callback, not Textual's set_timer: that makes a Timer and a Task per burst.
            self._flush_handle = asyncio.get_running_loop().call_later(COALESCE_S, self._flush_changes)

    def _flush_changes(self) -> None:  # not _flush: App._flush(stderr) is textual's print capture
        self._flush_handle = None
        pending, self._pending = self._pending, {}
        if not pending:
            return
        message_changes = {name: frozenset(k) for name, k in pending.items()}
        if self.pauses.opening:
            # The screens beneath an opening dialog get theirs once it is on screen (pause_watch).
            top = self.screen_stack[-1]
            if self._held and top is not self._held_top:
                self._held_top = None  # another screen was on top for some of them: all get them all
            else:
                self._held_top = top
            top.post_message(SessionsChanged(self.sessions, message_changes))
            for name, kinds in pending.items():
                self._held.setdefault(name, set()).update(kinds)
            self.pauses.when_shown(self._release_held)
            return
        for screen in self.screen_stack:
            screen.post_message(SessionsChanged(self.sessions, message_changes))

    def _release_held(self) -> None:
        """What the screens beneath a dialog waited for while it opened (its own had them)."""
        held, self._held = self._held, {}
        told, self._held_top = self._held_top, None
        if held:
            changes = {name: frozenset(k) for name, k in held.items()}
            for screen in self.screen_stack:
                if screen is not told:
                    screen.post_message(SessionsChanged(self.sessions, changes))

    @contextmanager
    def batch_update(self) -> Iterator[None]:
        """Textual's batch (a recompose is one), then a prompt to the screens below
        the top one: during a batch a screen skips its pending repaint and Textual only
        prompts the app when the batch ends, so the dashboard behind a dialog would stay
        stale until its next message (seconds, once a migration has ended)."""
        with super().batch_update():
            yield
        for screen in self.screen_stack[:-1]:
            screen.check_idle()

    # ------------------------------------------------------------------ notices

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Textual's notify, said on the flash line above the footer instead of a toast:
        one message at a time, one line (a new one replaces the last)."""
        text = one_line(message, "" if title in _UNTITLED else title)
        timeout = default_timeout(severity) if timeout is None else timeout
        self.flash(Flash(text, severity, time.monotonic() + timeout))
        self.set_timer(timeout, self._flash_expired)

    def flash(self, flash: Flash | None) -> None:
        self.current_flash = flash
        for screen in self.screen_stack:
            for line in screen.query(FlashLine):
                line.show(flash)

    def _flash_expired(self) -> None:
        if self.current_flash is not None and time.monotonic() >= self.current_flash.until - 0.05:
            self.flash(None)

    async def on_event(self, event: events.Event) -> None:
        # The operator's next key clears an error or a warning they have had time to read.
        if isinstance(event, events.Key) and self.current_flash is not None and self.current_flash.sticky:
            self.flash(None)
        if isinstance(event, events.Key) and self._story_shown:  # (toasts have no key of their own)
            self._story_shown = False
            self._clear_toasts()
        await super().on_event(event)

    def _clear_toasts(self) -> None:
        """Every toast goes, also those drawn on the screens beneath a dialog: Textual redraws
        only the top screen's, and the engine's story stayed on the dashboard under the pause's
        dialog until it timed out (seen in tmux after the engine died during a pause)."""
        self.clear_notifications()
        cleared = getattr(self, "_notifications", None)  # App's private list of them: empty now
        if cleared is None:
            return
        for screen in self.screen_stack[:-1]:
            for rack in screen.query(ToastRack):
                rack.show(cleared)

    # ------------------------------------------------------------------ actions

    async def action_quit(self) -> None:
        """Quit the view (the engine keeps watching and guarding)."""
        self.request_quit(0)

    def action_interrupt(self) -> None:
        """Ctrl+C: as q, and the exit status says so (130). Pressed again at the question: quit."""
        self.request_quit(130, again=True)

    def action_help_quit(self) -> None:  # Textual's Ctrl+C ("press ctrl+q to quit"): ours is q's
        self.request_quit(130, again=True)

    def request_quit(self, code: int, *, again: bool = False) -> None:
        """Quit with ``code``, after ``quit_question`` if it asks one (enter quits, n stays)."""
        asking = next((s for s in self.screen_stack if isinstance(s, QuitConfirm)), None)
        question = self.quit_question() if self.quit_question is not None and asking is None else None
        if question is None:
            if asking is None or again:
                self.pauses.quit(code)
            return
        title, text = question

        def answered(yes: bool | None) -> None:
            if yes:
                self.pauses.quit(code)

        self.push_screen(QuitConfirm(title, text, yes="quit", no="stay", id="confirm-quit"), answered)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_keys()))

    def help_keys(self) -> list[tuple[str, str, bool]]:
        """(keys, description, available now) for the app's and the screen's own bindings."""
        screen = self.screen
        keys: dict[str, list[str]] = {}
        if isinstance(screen, DashboardScreen):  # the monitor list's own keys
            keys = {"Next / previous monitor": ["↑↓ jk"], "First / last monitor": ["g G"],
                    "Filter the monitors": ["/"]}
        available: dict[str, bool] = {}
        for node, bindings in ((screen, screen._bindings), (self, self._bindings)):
            for _key, bound in bindings:
                if not bound.description or bound.action in _HIDDEN_IN_HELP or bound.system or "focus" in bound.action:
                    continue
                name = bound.action.partition("(")[0].removeprefix("app.")
                enabled = (self if node is self or bound.action.startswith("app.") else screen).check_action(
                    name, ()) is True
                display = self.get_key_display(bound)
                listed = keys.setdefault(bound.description, [])
                if display not in listed:
                    listed.append(display)
                available[bound.description] = available.get(bound.description, False) or enabled
        keys["Command palette"] = ["^p"]
        keys["Quit (^c too)"] = keys.pop("Quit", ["q"])
        return [(" ".join(k), d, available.get(d, True)) for d, k in keys.items()]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, DashboardScreen):
            yield SystemCommand("Next monitor", "Show the next monitor (tab)", screen.action_next_monitor)
            yield SystemCommand(
                "Previous monitor", "Show the previous monitor (shift+tab)", screen.action_previous_monitor
            )
            if screen.can_measure_dirty_rate():
                yield SystemCommand(
                    "Measure dirty rate",
                    "calc-dirty-rate on the selected monitor (d)",
                    screen.action_measure_dirty_rate,
                )
            yield SystemCommand(
                "Toggle all events", "Event log of all monitors or the selected one (e)",
                screen.action_toggle_all_events,
            )
            if isinstance(screen, SwitchoverDashboard):
                yield from screen.switchover_commands()
            for name in self.sessions:
                yield SystemCommand(
                    f"Show monitor {name}", "Select this monitor", partial(screen.select_by_name, name),
                    discover=False,
                )
        yield SystemCommand("Help", "Keys and what the panels mean (?)", self.action_help)


def make_app(
    *,
    sessions: Sequence[RemoteSession],
    clock: Callable[[], float] = time.time,
    tz: tzinfo | None = None,
    term: str | None = None,
    bell: bool = False,
) -> MigtuiApp:
    """The dashboard on a view's mirrors of its engine's sessions (``view_run.view_main``).

    ``term`` (default: $TERM, with $COLORTERM) picks the glyphs and theme: a 16-colour
    terminal gets its own ANSI colours (``themes.py``); the Linux console also gets half
    blocks instead of eighths and ASCII for what its font lacks (``glyphs.py``). ``bell``:
    ring the terminal's bell when a guest stops (``terminal_cues.py``).
    """
    colours = colour_system(os.environ.get("TERM", ""), os.environ.get("COLORTERM", "")) if term is None \
        else colour_system(term)
    linux_console = (os.environ.get("TERM", "") if term is None else term) == "linux"
    return MigtuiApp(sessions, clock=clock, tz=tz, coarse=linux_console, ansi=theme_for(colours) == ANSI, bell=bell)
