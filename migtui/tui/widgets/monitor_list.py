"""The monitors list: one two-line entry per monitor, the highlighted one is shown.

Line 1: name and migration badge. Line 2: QEMU's run state and "armed". While a
monitor is not connected, what is true now is its connection state: it takes the
badge (`` waiting ``, `` retrying 2 ``) and line 2 says which migration status was seen
last ("last: active"; the header has the full error). An entry is rewritten only
when its text changes, so 50 quiet monitors cost nothing per poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...transport import ConnState
from ...workflow.session import MonitorSession
from .. import badges


def _reason(session: MonitorSession) -> Content:
    """Why the monitor is not connected, without the state word the badge shows."""
    status = session.status
    label = status.label()
    _, colon, why = label.partition(": ")
    return Content.styled(why if colon else "", badges.connection_colour(status.state.value, status.word()))


def entry(session: MonitorSession, width: int, selected: bool = False) -> Content:
    """The two lines for one monitor, fitted to ``width`` cells.

    The selected one is marked with ``▸`` too: a highlight colour alone is lost
    under NO_COLOR.
    """
    state = session.state
    status = session.status
    connected = status.state is ConnState.CONNECTED
    failing = connected and bool(session.poll_error)  # a hung QEMU: what it shows is the last known
    if not connected:
        badge = badges.connection_badge(status.state.value, status.word())
    elif failing:
        badge = badges.polls_failing_badge()
    elif state.migration_status == "none":
        badge = Content("")
    else:
        badge = badges.migration_badge(state.migration_status)
    marker = Content.styled("▸", "bold $accent") if selected else Content(" ")
    name_width = max(4, width - 1 - badge.cell_length - 1)
    name = session.name if len(session.name) <= name_width else session.name[: name_width - 1] + "…"
    gap = " " * max(1, width - 1 - len(name) - badge.cell_length)
    line1 = Content.assemble(marker, (name, "bold"), gap, badge)
    if not connected or failing:
        if state.migration_status != "none":
            line2 = badges.migration_badge(state.migration_status, stale=True)
        elif failing:
            line2 = badges.last_run_state_text(state.run_state.status if state.run_state else None)
        else:
            line2 = _reason(session)
    else:
        line2 = Content(" ").join(badges.vm_state_parts(state))
    line2 = Content(" ") + line2
    if line2.cell_length > width:
        line2 = line2.truncate(width, ellipsis=True)
    return Content("\n").join([line1, line2])


class MonitorList(OptionList):
    """Keeps one Option per session shown, id = session name; ``filter`` narrows them
    to the names that contain it (``/`` on the dashboard)."""

    DEFAULT_CSS = """
    MonitorList { width: 24; height: 1fr; }
    """
    # The keys of htop, k9s, less: j/k down/up, g/G first/last (arrows, home/end too); each
    # replaces OptionList's own binding of its key.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "move('down')", show=False),
        Binding("up,k", "move('up')", show=False),
        Binding("home,g", "move('first')", show=False),
        Binding("end,G", "move('last')", show=False),
        Binding("pagedown", "move('page_down')", show=False),
        Binding("pageup", "move('page_up')", show=False),
    ]

    def __init__(self, sessions: list[MonitorSession], *, on_key_move: Callable[[str], None] | None = None,
                 **kwargs: Any) -> None:
        self._sessions = {s.name: s for s in sessions}
        self._on_key_move = on_key_move
        self._shown: dict[str, Content] = {}
        self._keys: dict[str, tuple[object, ...]] = {}  # what each entry was drawn from (update_entry)
        self._entry_width = 20
        self._selected: str | None = None
        self.filter = ""
        super().__init__(*self._entries(), **kwargs)

    def action_move(self, how: str) -> None:
        """A key that moves the highlight tells the dashboard in the same turn, so one frame
        draws the highlight and the monitor's panels. Textual's OptionHighlighted climbs to
        the screen a message pump at a time, and a frame came first with the highlight alone:
        a key's answer took 55-61 ms against 24-30 ms (docs/benchmarks.md). What else moves
        it (the first highlight, a click, the list's own rebuilds) still goes by that message."""
        moves: dict[str, Callable[[], None]] = {
            "down": self.action_cursor_down, "up": self.action_cursor_up, "first": self.action_first,
            "last": self.action_last, "page_down": self.action_page_down, "page_up": self.action_page_up,
        }
        moves[how]()
        self._key_moved()

    def _key_moved(self) -> None:
        if self.highlighted is None or self._on_key_move is None:
            return
        name = self.get_option_at_index(self.highlighted).id
        if name is not None:
            self._on_key_move(name)

    @property
    def names(self) -> list[str]:
        """The names shown, in order (all of them, or those the filter lets through)."""
        return [n for n in self._sessions if self.filter.lower() in n.lower()]

    def set_filter(self, text: str) -> None:
        if text == self.filter:
            return
        self.filter = text
        self.clear_options()
        self.add_options(self._entries())

    def _entries(self) -> list[Option]:  # not _options: OptionList's own list of them
        options = []
        for name in self.names:
            session = self._sessions[name]
            self._shown[name] = entry(session, self._entry_width, name == self._selected)
            options.append(Option(self._shown[name], id=name))
        return options

    def on_resize(self) -> None:
        # Room for the text: minus padding and the scrollbar OptionList may show.
        width = max(8, self.scrollable_content_region.width - 1)
        if width != self._entry_width:
            self._entry_width = width
            for name in self._sessions:
                self.update_entry(name)
        # Shorter now (the passes below it grew): the selected monitor stays in sight.
        self.call_after_refresh(self.scroll_to_highlight)

    def add_session(self, session: MonitorSession) -> None:
        self._sessions[session.name] = session
        self._shown[session.name] = entry(session, self._entry_width, False)
        self.add_option(Option(self._shown[session.name], id=session.name))

    def remove_session(self, name: str) -> None:
        """Drop a monitor's entry (the engine no longer watches it)."""
        shown = name in self.names
        self._sessions.pop(name, None)
        self._shown.pop(name, None)
        self._keys.pop(name, None)
        if self._selected == name:
            self._selected = None
        if shown:
            self.remove_option(name)

    def update_entry(self, name: str) -> bool:
        """Rewrite one monitor's entry if its text changed; returns True if it did."""
        session = self._sessions.get(name)
        if session is None:
            return False
        # What entry() reads: most batches change none of it (a poll moves the figures only).
        state = session.state
        key = (session.status, bool(session.poll_error), state.migration_status, state.run_state, state.armed,
               self._entry_width, name == self._selected)
        if self._keys.get(name) == key and name in self._shown:
            return False
        self._keys[name] = key
        new = entry(session, self._entry_width, name == self._selected)
        old = self._shown.get(name)
        if old is not None and new.is_same(old):
            return False
        self._shown[name] = new
        if name in self.names:
            self.replace_option_prompt(name, new)
        return True

    def select_name(self, name: str) -> None:
        """Highlight ``name`` and move the ``▸`` marker to it."""
        previous, self._selected = self._selected, name
        if name in self.names and self.highlighted != self.get_option_index(name):
            self.highlighted = self.get_option_index(name)
        for changed in {n for n in (previous, name) if n is not None}:
            self.update_entry(changed)
