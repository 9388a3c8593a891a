"""The footer: every key shown whole, ``q Quit`` and ``? Help`` always, in one widget.

Textual's footer lays its keys out in a row that scrolls sideways: at 80 columns a
long row cut ``? Help`` to ``? He``, and at 40 columns the command palette's key, docked
on the right, left stray characters over the row. This one measures the keys and
leaves out what does not fit, least needed first: the palette's key (``^p`` still
works, and help lists it), then the dashboard's conveniences (tab, e, d; help lists
them too), then others from the right. The app's own keys (quit, help) stay.

It is one line of text, not a widget per key: Textual's footer mounts a widget for each
key again whenever a screen's keys change (a pause, a dialog opening), each styled on
its own, in a batch during which no screen repaints -- about a fifth of the view's work
between a pause and its dialog on screen (cProfile, 2026-12-07). Here a change of keys
is one repaint of one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from textual import events
from textual.content import Content
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.binding import Binding
    from textual.screen import Screen

PALETTE_WIDTH = 11  # "▏^p palette": its border, the key, its description
# Left out first when the row is too long (help lists them all).
CONVENIENCES = ("toggle_all_events", "next_monitor", "measure_dirty_rate")
KEPT = ("app.quit", "quit", "app.help", "help")
KEY_STYLE = "bold $footer-key-foreground"
BORDER_STYLE = "$foreground 20%"  # Textual's footer: the palette key's left border


def key_width(key_display: str, description: str) -> int:
    """Cells a compact footer key takes: the key, a space, the description, a gap."""
    return len(key_display) + (1 + len(description) if description else 0) + 1


def fit(keys: list[tuple[str, str, str]], width: int, palette: bool = True) -> tuple[list[int], bool]:
    """Which of ``keys`` ((action, key display, description), in order) fit in ``width``
    cells, and whether the palette's key does too. Returns the indexes kept."""
    kept = list(range(len(keys)))

    def used() -> int:
        return sum(key_width(keys[i][1], keys[i][2]) for i in kept)

    if palette and used() + PALETTE_WIDTH <= width:
        return kept, True
    order = [i for action in CONVENIENCES for i in kept if keys[i][0] == action]
    order += [i for i in reversed(kept) if i not in order and keys[i][0] not in KEPT]
    for index in order:
        if used() <= width:
            break
        kept.remove(index)
    return kept, False


class FooterKey(NamedTuple):
    """One key as the footer shows it."""

    key: str  # what a click presses
    display: str  # how it is written ("?", "^p")
    description: str
    action: str
    enabled: bool


def _piece(key: FooterKey) -> Content:
    text = Content.assemble((key.display, KEY_STYLE), f" {key.description}" if key.description else "")
    return text.stylize("dim") if not key.enabled else text


class KeyFooter(Widget):
    """A compact footer whose keys always fit its width: the keys the screen shows, one line."""

    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom; height: 1; width: 1fr; text-wrap: nowrap;
        color: $footer-foreground; background: $footer-background;
    }
    """
    ALLOW_SELECT = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spans: list[tuple[int, int, FooterKey]] = []  # where each key was drawn (for a click)

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[Any]) -> None:
        if screen is self.screen:
            self.refresh()

    def keys(self) -> tuple[list[FooterKey], FooterKey | None]:
        """The keys the screen offers now, in order, and the command palette's (if any)."""
        app, active = self.app, self.screen.active_bindings

        def key(binding: Binding, enabled: bool) -> FooterKey:
            return FooterKey(binding.key, app.get_key_display(binding), binding.description, binding.action, enabled)

        keys: dict[str, FooterKey] = {}  # one per action, as Textual's footer
        for _node, binding, enabled, _tooltip in active.values():
            if binding.show and binding.action not in keys:
                keys[binding.action] = key(binding, enabled)
        palette = None
        if app.ENABLE_COMMAND_PALETTE and (entry := active.get(app.COMMAND_PALETTE_BINDING)) is not None:
            palette = key(entry[1], entry[2])
        return list(keys.values()), palette

    def render(self) -> Content:
        keys, palette = self.keys()
        width = self.content_size.width or self.app.size.width
        kept, with_palette = fit([(k.action, k.display, k.description) for k in keys], width, palette is not None)
        pieces: list[Content] = []
        self._spans = []
        at = 0
        for index in kept:
            piece = _piece(keys[index])
            self._spans.append((at, at + piece.cell_length, keys[index]))
            pieces.append(piece + " ")
            at += piece.cell_length + 1
        if with_palette and palette is not None:
            piece = _piece(palette)
            gap = max(0, width - at - piece.cell_length - 2)  # its border before, a blank after
            pieces += [Content(" " * gap), Content.styled("▏", BORDER_STYLE)]
            self._spans.append((at + gap + 1, width, palette))
            pieces += [piece, Content(" ")]
        return Content("").join(pieces)

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                if key.enabled:
                    self.app.simulate_key(key.key)
                else:
                    self.app.bell()
                return
