"""The switchover dialog: one source paused in pre-switchover, and what to do about it.

Shows a clock of how long the guest has been stopped (QEMU's own STOP / MIGRATION
timestamps, ticked with the banner by the app's pause watch, repainting only that line),
the checklist, and the actions with what each will do. ``y`` resumes the switchover,
``x`` then enter aborts (the one confirmation key), ``n`` / ``escape`` close (the guest stays stopped). The work
is the engine's switchover of this pause (its mirror, ``RemoteSwitchover``): closing the
dialog never stops it, reopening shows where it got to, and it runs once. Every fact shown
-- the clock, the checklist, what each key does and whether it may now -- is the engine's
(``RemoteSession.pause`` and ``control()``): the dialog renders it.

It never contradicts itself: the title, the clock, the checklist and the keys all tell
the same :class:`~migtui.tui.pause_text.Situation`. The checklist is for a live pause;
once the pause is over the clock stops at its end and the dialog says how it ended; when
the source's monitor is lost the clock stops, the last figures are marked as such and
the keys say why they do nothing. Resume is green, abort red: never one colour for both.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import ModalScreen

from ...errors import MigtuiError
from ...model.switchover import Outcome
from ...protocol.messages import Control
from ...view.remote import RemoteSession, RemoteSwitchover
from ..messages import NOT_AVAILABLE, SessionsChanged
from ..pause_text import (
    Situation,
    attempt_item,
    checklist_items,
    clock_line,
    dialog_title,
    end_items,
    more_paused_line,
    outcome_item,
    pause_end,
    situation,
    step_items,
    steps_title,
)
from ..widgets.flash_line import BottomBar
from ..widgets.hanging import HangingLines, Item
from ..widgets.text_line import TextLine
from ..widgets.too_small import TooSmall

log = logging.getLogger("migtui.tui")

CLOSE_DESCRIPTION = "the guest stays stopped; s reopens this dialog"


# A key's colour says what it does: resume green, abort red, the others plain.
RESUME_STYLE, ABORT_STYLE, KEY_STYLE = "bold $success", "bold $error", "bold $accent"


def _key(key: str, text: str, detail: str = "", *, enabled: bool = True, style: str = KEY_STYLE) -> Item:
    style = style if enabled else "$text-muted"
    key = f"{key:<3}" if len(key) < 3 else f"{key} "
    body = Content.assemble((text, "bold" if enabled else "$text-muted"),
                            (f": {detail}" if detail else "", "" if enabled else "$text-muted"))
    return Content.styled(key, style), body


def _offered(key: str, text: str, allowed: bool | None, control: Control, style: str) -> list[Item]:
    """A key as the engine offers it: what it does; dimmed with why not; or not at all."""
    if allowed is False:
        return []
    if allowed is None:
        return [_key(key, text, f"not now: {control.reason}", enabled=False)]
    return [_key(key, text, control.does, style=style)]


def _title(text: str, style: str = "bold") -> Item:
    return Content(""), Content.styled(text, style)


class SwitchoverScreen(ModalScreen[None]):
    """The dialog for ``source``'s current pause."""

    # The keys that act on the stopped guest are priority bindings: Textual runs them as the
    # app receives the key, not after the key has gone down to the screen and bubbled back up
    # (two turns of the view's loop, ~0.6 ms of downtime, measured 2026-12-07).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "resume", "Resume switchover", priority=True),
        Binding("y", "why('y')", show=False, priority=True),  # runs only when resume is not available
        Binding("x", "abort", "Abort", priority=True),
        Binding("x", "why('x')", show=False, priority=True),
        # The one confirmation key (screens/confirm.py).
        Binding("enter", "confirm_abort", "Confirm abort", priority=True),
        Binding("n,escape", "close", "Close"),
        # A modal screen hides the app's keys: these two work here too.
        Binding("question_mark", "app.help", "Help", key_display="?"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(
        self,
        source: RemoteSession,
        destination: RemoteSession | None,
        *,
        clock: Callable[[], float],
        abort_first: bool = False,
        note: Callable[[], Content | None] | None = None,
        more: Callable[[], list[str]] = list,
        defer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """``defer(repaint)`` runs a repaint once migtui no longer acts on a stopped guest
        (the pause watch's ``after_critical``); by default at the next turn of the loop."""
        # A DOM id takes letters, digits, _ and - only: not the '.' of vm.1, nor the '/' of HOST/DOMAIN.
        super().__init__(id="switchover-" + re.sub(r"[^A-Za-z0-9_-]", "_", source.name), classes="switchover")
        self.source = source
        self.destination = destination
        self.controller: RemoteSwitchover = source.switchover  # this pause's, even after a reconnection
        self._clock = clock
        self.abort_armed = abort_first
        self._note = note or (lambda: None)
        self._more = more
        self._defer = defer or self.call_later
        self._generation = source.generation  # the connection this pause was shown on
        self._pause = source.pause.clock
        self._ended_at: float | None = None
        self._lost_at: float | None = None  # when the monitor was lost (the clock stops there)
        self._where_shown: Situation | None = None  # what the title, list and keys show
        self._key_states: tuple[bool | None, ...] = ()
        self._ready = False  # composed and mounted: the sections can be filled
        self._unsubscribe: Callable[[], None] | None = None
        self._leaving = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="sw-box") as box:
            box.border_title = dialog_title(self.source.name, self.controller)
            box.can_focus = False
            yield TextLine(id="sw-clock")
            for section in ("more", "note", "checks", "steps", "outcome", "actions"):
                yield HangingLines(id=f"sw-{section}", classes="-empty")
        yield TooSmall()
        yield BottomBar()

    def on_mount(self) -> None:
        self._unsubscribe = self.controller.add_progress_listener(self._on_progress)
        self._ready = True
        self._show_all()
        if self.controller.result is not None and self.controller.action is None:
            self.call_later(self._ended_by_others)  # opened just as another client ended it

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ------------------------------------------------------------------ state

    @property
    def where(self) -> Situation:
        """Where this pause stands (as far as the source's session tells)."""
        return situation(self.source, self._generation)

    @property
    def clock_running(self) -> bool:
        """The downtime clock still ticks (the pause goes on and its monitor answers)."""
        return self._ended_at is None and self._lost_at is None and self.where is Situation.PAUSED

    @property
    def started(self) -> bool:
        """An action (resume or abort) was confirmed: the dialog shows its progress."""
        return self.controller.action is not None

    def _resume(self) -> Control:
        return self.source.control("resume")

    def _abort(self) -> Control:
        return self.source.control("abort")

    def _decided(self) -> bool:
        """Nothing is left to decide here: the pause is over and no action of ours runs."""
        return not self.started and self.where in (Situation.OVER, Situation.REPLACED)

    def can_resume(self) -> bool | None:
        # While the abort waits for its y, y confirms the abort: resume is not on offer.
        return False if self.abort_armed or self._decided() else self._resume().allowed

    def can_confirm_abort(self) -> bool | None:
        if not self.abort_armed:
            return False
        return True if self._abort().allowed else None

    def can_abort(self) -> bool | None:
        return False if self.abort_armed or self._decided() else self._abort().allowed

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        predicate = {"resume": self.can_resume, "confirm_abort": self.can_confirm_abort,
                     "abort": self.can_abort}.get(action)
        return predicate() if predicate is not None else True

    def _refresh_keys(self) -> None:
        """Tell the footer only when a key's availability changed (it then asks every key again)."""
        states = (self.can_resume(), self.can_confirm_abort(), self.can_abort())
        if states != self._key_states:
            self._key_states = states
            self.refresh_bindings()

    def unavailable_reason(self, key: str) -> str:
        """Why ``y`` / ``x`` does nothing right now (one line)."""
        if self.abort_armed:
            return f"abort {self.source.name}? enter aborts, n goes back (y does not answer it)"
        return (self._abort() if key == "x" else self._resume()).reason

    # ------------------------------------------------------------------ rendering

    def _set(self, widget_id: str, items: list[Item]) -> None:
        try:
            widget = self.query_one(widget_id, HangingLines)
        except NoMatches:  # being taken down
            return
        widget.set_class(not items, "-empty")
        widget.set_items(items)

    def section(self, name: str) -> str:
        """The plain text of one section (more, note, checks, steps, outcome, actions; clock)."""
        if name == "clock":
            return self.query_one("#sw-clock", TextLine).shown.plain
        return self.query_one(f"#sw-{name}", HangingLines).plain

    def _show_all(self) -> None:
        self.tick(self._clock())
        self._show_more()
        self._show_note()
        self._show_checks()
        self._show_progress()

    def _show_more(self) -> None:
        names = self._more()
        self._set("#sw-more", [(Content(""), more_paused_line(names))] if names else [])

    def _show_note(self) -> None:
        items: list[Item] = []
        note = self._note()
        if note is not None and note.plain:
            items.append((Content(""), note))
        blocked = self.source.pause.blocked or (self._resume().reason if self.source.read_only else "")
        if blocked:
            items.append(_title(blocked, "bold $warning"))
        self._set("#sw-note", items)

    def _show_checks(self) -> None:
        if self.started:
            return  # the steps tell the story now; the list would only flicker
        where = self.where
        if where in (Situation.OVER, Situation.REPLACED):
            self._set("#sw-checks", end_items(self.source, where))  # the list is for a live pause
            return
        checks = self.source.pause.checklist
        if where is Situation.LOST or self.source.poll_error:
            why = "before the monitor was lost" if where is Situation.LOST else "its polls fail"
            title = Content.styled(f"Last known, {why} (not current)", "bold $warning")
            self._set("#sw-checks", [(Content(""), title), *checklist_items(checks, stale=True)])
            return
        title = Content.styled("Checklist", "bold") + (
            Content.styled("  all green", "$success") if all(c.ok for c in checks)
            else Content.styled("  not all green: resume only if you know why", "bold $error"))
        self._set("#sw-checks", [(Content(""), title), *checklist_items(checks)])

    def _show_actions(self) -> None:
        if self.started and self._abort().allowed is not True:
            self._set("#sw-actions", [_key("n", "Close", "the dialog" if self.controller.finished else
                                           "the dialog; the action goes on", enabled=True)])
            return
        if self._decided():
            self._set("#sw-actions", [_key("n", "Close", "the dialog")])
            return
        if self.abort_armed:
            lines = [_title(f"Abort the migration of {self.source.name}?", "bold $error"),
                     _key("enter", "Yes, abort", self._abort().does, style=ABORT_STYLE),
                     _key("n", "No", "back to the dialog")]
        else:
            lines = [_title("Actions")]
            if not self.started:
                lines += _offered("y", "Resume switchover", self.can_resume(), self._resume(), RESUME_STYLE)
            lines += _offered("x", "Abort", self.can_abort(), self._abort(), ABORT_STYLE)
            lines.append(_key("n", "Close", "the dialog" if self.where is Situation.LOST else CLOSE_DESCRIPTION))
        self._set("#sw-actions", lines)

    def _show_progress(self) -> None:
        c = self.controller
        if c.action is not None:
            self._set("#sw-steps", [_title(steps_title(c)), *step_items(c)])
            self._set("#sw-checks", [])
        else:
            self._set("#sw-steps", [])
        result = c.result
        self._show_title()
        if result is not None and c.action is not None:
            running = self.source.state.running if result.outcome is Outcome.ABORTED else None
            self._set("#sw-outcome", [outcome_item(result, running)])
        elif c.action is None and c.attempt is not None and not self._decided():
            self._set("#sw-outcome", [attempt_item(c.attempt)])
        else:
            self._set("#sw-outcome", [])
        self._show_actions()
        self._refresh_keys()

    def _show_title(self) -> None:
        try:
            box = self.query_one("#sw-box")
        except NoMatches:
            return
        box.border_title = dialog_title(self.source.name, self.controller, self.where,
                                        self.source.state.migration_status)

    def tick(self, now: float) -> None:
        """Show the downtime clock as of ``now`` (the pause watch passes the banner's reading);
        once the pause has ended it keeps its final value, and once the monitor is lost it
        stops where it was then."""
        if not self._ready or not self.is_attached or self._leaving:
            return
        state = self.source.state
        where = self.where
        if where is Situation.PAUSED:
            self._lost_at = None  # back (the same connection): the clock ticks on
            self._pause = self.source.pause.clock or self._pause  # a late event makes it exact
        elif where is Situation.LOST:
            if self._lost_at is None:
                self._lost_at = self.source.pause.lost_at or now
        elif where is Situation.REPLACED and self._ended_at is None:
            if self._lost_at is None:  # reconnected before this dialog saw the loss
                self._lost_at = now
        elif self._ended_at is None and self._pause is not None:
            self._ended_at = pause_end(state, self._pause) or now
        if self._lost_at is not None:
            line = clock_line(self._pause, now, lost_at=self._lost_at)
        else:
            line = clock_line(self._pause, now, self._ended_at, downtime_ms=state.final_downtime_ms)
        try:
            self.query_one("#sw-clock", TextLine).set(line)
        except NoMatches:  # being taken down
            return
        self._show_note()  # the engine's deadline counts down with the clock
        if where is not self._where_shown:  # the rest tells the same story in the same frame
            self._show_sessions()

    def _clock_if_ended(self) -> None:
        """While the pause goes on the watch ticks the clock; its end (or the monitor's
        loss) is shown at once, and so is the QEMU downtime that replaces an estimate."""
        self._show_title()
        if self.where is not Situation.PAUSED or self._lost_at is not None or self._ended_at is not None:
            self.tick(self._clock())

    # ------------------------------------------------------------------ updates

    def _on_progress(self, _controller: RemoteSwitchover) -> None:
        # Called from the switchover's own callbacks (some in the downtime path): only
        # queue a repaint; it runs once the outcome is known (or the guest runs again).
        self._defer(self._progress_now)

    def _progress_now(self) -> None:
        if not self._ready or not self.is_attached or self._leaving:
            return
        c = self.controller
        if c.result is not None and c.action is None:
            self._ended_by_others()
            return
        self._show_progress()
        self._show_note()
        self._clock_if_ended()

    def _ended_by_others(self) -> None:
        """Another client (or QEMU) ended this pause before anything was confirmed here."""
        result = self.controller.result
        if result is None or self._leaving or self.where is Situation.REPLACED:
            return  # a reconnection: the dialog says so itself
        self._leaving = True
        # Untitled, as PauseWatch says it: the reason names the source, and who ended the
        # pause must fit 80 columns.
        self.app.notify(result.reason, severity="warning", timeout=15)
        self.dismiss(None)

    @on(SessionsChanged)
    def _sessions_changed(self, message: SessionsChanged) -> None:
        names = {self.source.name} | ({self.destination.name} if self.destination else set())
        self._defer(self._show_sessions if names & set(message.changes) else self.refresh_more)

    def _show_sessions(self) -> None:
        if not self._ready or not self.is_attached or self._leaving:
            return
        self._where_shown = self.where
        self._show_more()
        self._show_note()
        if self.started:
            self._show_progress()
        else:
            self._show_checks()
            self._show_actions()
        self._clock_if_ended()
        self._refresh_keys()

    def refresh_more(self) -> None:
        """The list of other paused sources changed (the app's pause watch calls this)."""
        if self._ready and self.is_attached and not self._leaving:
            self._show_more()

    # ------------------------------------------------------------------ actions

    def action_resume(self) -> None:
        if self.can_resume() is not True:
            return
        try:
            self.controller.start_resume()
        except MigtuiError as err:  # ReadOnlyRefused: nothing was sent
            self.app.notify(str(err), title="Switchover", severity="error")
            return
        log.info("%s: resume confirmed in the dialog", self.source.name)

    def action_abort(self) -> None:
        if self.can_abort() is True:
            self.abort_armed = True
            self._show_actions()
            self._refresh_keys()

    def action_confirm_abort(self) -> None:
        if self.can_confirm_abort() is not True:
            return
        self.abort_armed = False
        try:
            self.controller.start_abort()
        except MigtuiError as err:
            self.app.notify(str(err), title="Switchover", severity="error")
            return
        log.info("%s: abort confirmed in the dialog", self.source.name)

    def action_why(self, key: str) -> None:
        self.app.notify(self.unavailable_reason(key), title=NOT_AVAILABLE, severity="warning", timeout=6)

    def action_close(self) -> None:
        if self.abort_armed:
            self.abort_armed = False
            self._show_actions()
            self._refresh_keys()
            return
        self._leaving = True
        self.dismiss(None)
