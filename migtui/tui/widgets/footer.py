"""The footer: every key shown whole, ``q Quit`` and ``? Help`` always.

Textual's footer lays its keys out in a row that scrolls sideways: at 80 columns a
long row cut ``? Help`` to ``? He``, and at 40 columns the command palette's key, docked
on the right, left stray characters over the row. This one measures the keys and
leaves out what does not fit, least needed first: the palette's key (``^p`` still
works, and help lists it), then the dashboard's conveniences (tab, e, d; help lists
them too), then others from the right. The app's own keys (quit, help) stay.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer

PALETTE_WIDTH = 11  # "▏^p palette": its border, the key, its description
# Left out first when the row is too long (help lists them all).
CONVENIENCES = ("toggle_all_events", "next_monitor", "measure_dirty_rate")
KEPT = ("app.quit", "quit", "app.help", "help")


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


class KeyFooter(Footer):
    """A compact footer whose keys always fit its width (Textual's footer, filtered)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(compact=True, **kwargs)
        self._fitted_width = 0

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())  # one key per action, then the palette's
        keys = [w for w in widgets if not w.has_class("-command-palette")]
        palette = [w for w in widgets if w.has_class("-command-palette")]
        self._fitted_width = self.size.width or self.app.size.width
        kept, with_palette = fit([(getattr(w, "action", ""), getattr(w, "key_display", ""),
                                   getattr(w, "description", "")) for w in keys],
                                 self._fitted_width, bool(palette))
        yield from (keys[i] for i in kept)
        if with_palette:
            yield from palette

    def on_resize(self, event: events.Resize) -> None:
        if self._bindings_ready and event.size.width != self._fitted_width:
            self.call_after_refresh(self.recompose)
