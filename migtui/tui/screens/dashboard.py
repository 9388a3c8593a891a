"""The dashboard: monitors on the left, the selected one's panels on the right.

Extension points (issue 4 builds the pre-switchover dialog on them):

* ``banners()``: what the auto-height ``#banners`` container at the top of the main
  area holds (always visible at 80x24); ``more_panels()``: panels after the migration's.
  Both are composed with the screen: a widget mounted from ``on_mount`` can come after
  an early exit (a terminal lost at once) stopped its parent's mounting (MountError).
* ``check_action`` looks for ``can_<action>()``: return True (enabled), None
  (shown disabled) or False (hidden). Add ``action_x`` + ``can_x`` + a Binding and
  the footer, help screen and command palette follow; availability is re-checked
  after every session change.
* ``on_sessions_changed`` receives every coalesced :class:`SessionsChanged`; the app
  posts it to every screen on the stack, dialogs included.
* ``selected`` is the session on display.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, OptionList

from ...errors import MigtuiError
from ...model.events import QmpEvent
from ...view.remote import RemoteSession
from ...workflow import session as kinds_
from ..kept_lines import Column, KeptLines, Row
from ..lookup import one
from ..messages import SessionsChanged
from ..widgets.block_jobs import BlockJobsPanel
from ..widgets.dirty_panel import DirtyPanel
from ..widgets.event_log import EMPTY, NEVER_CONNECTED, EventLog, event_line, reconnect_line
from ..widgets.filter_line import FilterLine
from ..widgets.flash_line import BottomBar
from ..widgets.migration_panel import MigrationPanel, is_stale
from ..widgets.monitor_header import MonitorHeader
from ..widgets.monitor_list import MonitorList
from ..widgets.pass_history import PassHistory
from ..widgets.too_small import HORIZONTAL_BREAKPOINTS, VERTICAL_BREAKPOINTS, TooSmall

log = logging.getLogger("migtui.tui")

# Which panels care about which kinds of change.
_LIST = {kinds_.CONNECTION, kinds_.MIGRATION, kinds_.RUN_STATE, kinds_.CONFIG}
_HEADER = {kinds_.CONNECTION, kinds_.RUN_STATE, kinds_.CONFIG}
# CONNECTION too: while a monitor is not connected its figures are greyed as stale.
_MIGRATION = {kinds_.MIGRATION, kinds_.CONFIG, kinds_.CONNECTION}
_DIRTY = {kinds_.MIGRATION, kinds_.DIRTY_RATE, kinds_.CONFIG, kinds_.CONNECTION}
_JOBS = {kinds_.BLOCK_JOBS, kinds_.CONNECTION}

MEASURE_SECONDS = 1


class DashboardScreen(KeptLines, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "next_monitor", "Next monitor", priority=True),
        Binding("shift+tab", "previous_monitor", "Previous monitor", show=False, priority=True),
        Binding("d", "measure_dirty_rate", "Dirty rate"),
        Binding("e", "toggle_all_events", "All events"),
        Binding("pageup", "scroll_events(-1)", "Scroll events up", show=False, priority=True),
        Binding("pagedown", "scroll_events(1)", "Scroll events down", show=False, priority=True),
        # Priority: the app runs it as the "/" arrives, before it hands on the keys typed after it.
        Binding("slash", "filter", show=False, priority=True),
        Binding("escape", "clear_filter", show=False),
    ]
    HORIZONTAL_BREAKPOINTS = HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = VERTICAL_BREAKPOINTS

    def __init__(
        self,
        sessions: Iterable[RemoteSession],
        *,
        clock: Callable[[], float],
        tz: tzinfo | None = None,
        coarse: bool = False,
    ) -> None:
        super().__init__(id="dashboard")
        self.sessions = {s.name: s for s in sessions}
        self._clock = clock
        self._tz = tz
        self._coarse = coarse
        self._selected: RemoteSession | None = None
        self.all_events = False
        self._events_shown: dict[str, int] = {}  # session -> event_count already written
        self._events_generation: dict[str, int] = {}  # session -> its connection when they were
        self._action_states: tuple[object, ...] = ()

    def compose(self) -> ComposeResult:
        with Row(id="body"):
            with Column(id="side"):
                yield MonitorList(list(self.sessions.values()), on_key_move=self._show_named, id="monitors")
                yield PassHistory(id="passes")
            with Column(id="main"):
                with Column(id="banners"):
                    yield from self.banners()
                yield MonitorHeader(id="header")
                yield MigrationPanel(id="migration")
                yield from self.more_panels()
                yield DirtyPanel(self._clock, coarse=self._coarse, id="dirty")
                yield BlockJobsPanel(id="jobs")
                yield EventLog(tz=self._tz, id="events")
        yield TooSmall()
        yield BottomBar(FilterLine())

    def banners(self) -> Iterable[Widget]:
        """The banners a dashboard that does more shows at the top of its main area."""
        return ()

    def more_panels(self) -> Iterable[Widget]:
        """What a dashboard that does more shows between the migration and the dirty rate."""
        return ()

    def on_mount(self) -> None:
        monitors = self.query_one(MonitorList)
        monitors.focus()
        if self.sessions:
            monitors.highlighted = 0  # posts OptionHighlighted -> select()

    # ------------------------------------------------------------------ selection

    @property
    def selected(self) -> RemoteSession | None:
        return self._selected

    def on_option_list_option_highlighted(self, message: OptionList.OptionHighlighted) -> None:
        message.stop()
        if message.option_index != message.option_list.highlighted:
            # A stale message (quick keys queue several): following it would move the
            # highlight back, which queues another, and so round for ever.
            return
        self._show_named(message.option.id or "")

    def _show_named(self, name: str) -> None:
        session = self.sessions.get(name)
        if session is not None and session is not self._selected:
            self.select(session)

    def select(self, session: RemoteSession) -> None:
        """Show ``session`` in the main area."""
        self._selected = session
        self.query_one(MonitorList).select_name(session.name)
        self.show(session, None)
        if not self.all_events:
            self._reload_events()

    def add_session(self, session: RemoteSession) -> None:
        """List a monitor that came after the screen was made (selected if it is the first)."""
        self.sessions[session.name] = session
        monitors = self.query_one(MonitorList)
        monitors.add_session(session)
        if self._selected is None:
            monitors.highlighted = 0

    def remove_session(self, name: str) -> None:
        """Drop a monitor the engine no longer watches. A selected one hands the selection to
        the entry that takes its place in the list (the one after it, else the one before);
        the last one leaves the screen as it is with no monitor at all."""
        monitors = self.query_one(MonitorList)
        names = monitors.names
        index = names.index(name) if name in names else 0
        was_selected = self._selected is not None and self._selected.name == name
        self.sessions.pop(name, None)
        self._events_shown.pop(name, None)
        self._events_generation.pop(name, None)
        monitors.remove_session(name)
        if not was_selected:
            if self._selected is not None:
                monitors.select_name(self._selected.name)
            if self.all_events:
                self._reload_events()
            self._refresh_actions()
            return
        self._selected = None
        remaining = monitors.names or list(self.sessions)
        if remaining:
            self.select(self.sessions[remaining[min(index, len(remaining) - 1)]])
        else:
            self.refresh(recompose=True)  # empty panels, as a screen that never had a monitor

    def _step(self, delta: int) -> None:
        names = self.query_one(MonitorList).names
        if not names:
            return
        current = names.index(self._selected.name) if self._selected and self._selected.name in names else -1
        self.select(self.sessions[names[(current + delta) % len(names)]])

    # ------------------------------------------------------------------ / filter

    def can_filter(self) -> bool:
        """Not while the filter is being typed: there "/" is a character (HOST/DOMAIN names)."""
        focused = self.focused
        return not (isinstance(focused, Input) and focused.id == "filter")

    def action_filter(self) -> None:
        """``/``: a filter line above the footer; the list keeps the names that contain it."""
        self.query_one(FilterLine).add_class("-shown")
        # Now, not as Widget.focus does (a turn later): the keys typed right after the "/" are
        # the next the app hands on, and each went to the dashboard's keys ("m" starts a migration).
        self.set_focus(self.query_one("#filter", Input))

    def on_input_changed(self, message: Input.Changed) -> None:
        if message.input.id != "filter":
            return
        message.stop()
        monitors = self.query_one(MonitorList)
        monitors.set_filter(message.value)
        visible = monitors.names
        if visible and (self._selected is None or self._selected.name not in visible):
            self.select(self.sessions[visible[0]])
        elif self._selected is not None:
            monitors.select_name(self._selected.name)

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id != "filter":
            return
        message.stop()
        self.query_one(FilterLine).set_class(bool(message.value), "-shown")  # shown while it applies
        self.query_one(MonitorList).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one(FilterLine).remove_class("-shown")
        self.query_one(MonitorList).set_filter("")
        if self._selected is not None:
            self.query_one(MonitorList).select_name(self._selected.name)
        self.query_one(MonitorList).focus()

    def action_next_monitor(self) -> None:
        self._step(1)

    def action_previous_monitor(self) -> None:
        self._step(-1)

    def select_by_name(self, name: str) -> None:
        if name in self.sessions:
            self.select(self.sessions[name])

    # ------------------------------------------------------------------ updates

    def on_sessions_changed(self, message: SessionsChanged) -> None:
        monitors = one(self, MonitorList)
        for name, changed in message.changes.items():
            session = self.sessions.get(name)
            if session is None:  # unwatched since (app.remove_session): nothing of it to show
                continue
            if changed & _LIST:
                monitors.update_entry(name)
            if self._selected is not None and name == self._selected.name:
                self.show(self._selected, changed, actions=False)
            elif self.all_events and kinds_.EVENTS in changed:
                self._append_events(session)
        self._refresh_actions()  # once for the whole batch

    def show(self, session: RemoteSession, changed: frozenset[str] | None, *, actions: bool = True) -> None:
        """Repaint the panels ``changed`` concerns (all of them when None); ``actions``: the
        footer's keys too (a caller that shows several changes does that once, itself)."""
        def wants(group: set[str]) -> bool:
            return changed is None or bool(changed & group)

        if wants(_HEADER):
            one(self, MonitorHeader).show(session)
            if not self.all_events:  # QEMU's events come only over a connection: say if there never was one
                one(self, EventLog).set_empty(EMPTY if session.qemu_version else NEVER_CONNECTED)
        if wants(_MIGRATION):
            one(self, MigrationPanel).show(session)
            one(self, PassHistory).set(session.name, session.state.passes.passes,
                                            running=session.state.migration.is_running)
        if wants(_DIRTY):
            one(self, DirtyPanel).show(session)
        if wants(_JOBS):
            one(self, BlockJobsPanel).show(session.state.block_jobs, stale=is_stale(session))
        if changed is not None and kinds_.EVENTS in changed:
            self._append_events(session)
        if actions:
            self._refresh_actions()

    # ------------------------------------------------------------------ events

    def _event_source(self) -> list[RemoteSession]:
        if self.all_events:
            return list(self.sessions.values())
        return [self._selected] if self._selected else []

    def _reload_events(self) -> None:
        entries: list[tuple[float, QmpEvent | str, str | None]] = []
        for session in self._event_source():
            label = session.name if self.all_events else None
            earlier = session.earlier_events
            if earlier:  # the connection before: maybe another QEMU, now gone; marked as such
                entries += [(ev.timestamp or 0.0, ev, label) for ev in earlier]
                entries.append((max(ev.timestamp or 0.0 for ev in earlier), session.name, label))
            entries += [(ev.timestamp or 0.0, ev, label) for ev in session.state.events]
            self._events_shown[session.name] = session.event_count
            self._events_generation[session.name] = session.generation
        if self.all_events:
            entries.sort(key=lambda e: e[0])  # stable: a mark stays after the events it follows
        log_widget = self.query_one(EventLog)
        # QEMU's greeting says its version: a monitor without one was never reached
        never = not self.all_events and self._selected is not None and not self._selected.qemu_version
        log_widget.set_empty(NEVER_CONNECTED if never else EMPTY)
        log_widget.replace([(item, label) for _, item, label in entries])
        scope = "all monitors" if self.all_events else (self._selected.name if self._selected else "")
        log_widget.border_title = f"[b]Events[/b] [dim]({scope}; e toggles)[/dim]"

    def _append_events(self, session: RemoteSession) -> None:
        log_widget = self.query_one(EventLog)
        label = session.name if self.all_events else None
        marked = []
        if self._events_generation.get(session.name, session.generation) != session.generation:
            # A new connection (maybe another QEMU at that socket): what is above was before it.
            self._events_generation[session.name] = session.generation
            if session.earlier_events:
                marked.append(reconnect_line(session.name, label))
            self._events_shown[session.name] = session.event_count - len(session.state.events)
        self._events_generation.setdefault(session.name, session.generation)
        shown = self._events_shown.get(session.name, 0)
        new = min(session.event_count - shown, len(session.state.events))
        events = list(session.state.events)[-new:] if new > 0 else []
        if marked or events:
            log_widget.add_lines([*marked, *(event_line(ev, label, log_widget.tz) for ev in events)])
        self._events_shown[session.name] = session.event_count

    def action_toggle_all_events(self) -> None:
        self.all_events = not self.all_events
        self._reload_events()

    def action_scroll_events(self, direction: int) -> None:
        self.query_one(EventLog).page(direction)

    # ------------------------------------------------------------------ dirty rate

    def can_measure_dirty_rate(self) -> bool | None:
        return self._selected.control("measure").allowed if self._selected is not None else None

    def action_measure_dirty_rate(self) -> None:
        if self._selected is not None and self.can_measure_dirty_rate():
            self._measure(self._selected)

    @work(exclusive=True, group="measure-dirty-rate", exit_on_error=False)
    async def _measure(self, session: RemoteSession) -> None:
        try:
            await session.measure_dirty_rate(MEASURE_SECONDS)
        except MigtuiError as err:
            log.info("%s: dirty rate: %s", session.name, err)
            self.notify(str(err), title="Dirty rate", severity="error")

    # ------------------------------------------------------------------ actions

    def _predicate(self, action: str) -> Callable[[], bool | None] | None:
        # Only actions bound on this screen: Widget has unrelated can_focus, can_view...
        if action not in self._bound_actions():
            return None
        predicate = getattr(self, f"can_{action}", None)
        return predicate if callable(predicate) else None

    def _bound_actions(self) -> set[str]:
        return {b.action.partition("(")[0] for _, b in self._bindings}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        predicate = self._predicate(action)
        return predicate() if predicate is not None else True

    def _refresh_actions(self) -> None:
        """Re-check ``can_*`` and redraw the footer only if an answer changed."""
        states = tuple(
            (action, predicate())
            for action in sorted(self._bound_actions())
            if callable(predicate := getattr(self, f"can_{action}", None))
        )
        if states != self._action_states:
            self._action_states = states
            self.refresh_bindings()

