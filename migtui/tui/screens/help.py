"""The help screen (``?``): the keys, the one way every action is confirmed, the
pre-switchover step and what the panels mean -- two screens at 80x24, like htop's and k9s's.

Every line hangs (a wrapped line starts under the text, not under its head), and the
screen has the flash line and footer of its own in place of the dashboard's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen

from ..widgets.flash_line import BottomBar
from ..widgets.hanging import HangingLines, Item
from ..widgets.too_small import TooSmall

# (keys, what they do, available now)
HelpKey = tuple[str, str, bool]

CONFIRMING = (
    "The switchover dialog is the question: y there resumes at once (it runs once). Every other action"
    " that changes a VM asks first, naming it: enter does it, n or escape does not."
)
PRE_SWITCHOVER = (
    ("a", "arm: its next migration stops before switchover and waits (all downtime); the banner"
          " counts (‖ src STOPPED)"),
    ("y", "resume: finish the disk mirrors (if any), then migrate-continue: the destination takes over"),
    ("x", "abort (asks first): migrate_cancel (and force-cancel the mirrors): the source runs again;"
          " before a pause, x aborts the migration at its stage"),
    ("n", "close the dialog (escape too): the guest stays stopped; s reopens it"),
)
STARTING = (
    ("m", "to a QEMU on -incoming defer or a URI, with what both offer; enter: summary"),
    ("w", "a start's mirrors to write-blocking (8.2+); x stops a start, undoing it"),
)
NOTES = (
    ("--auto-resume", "the engine resumes each pause whose checklist passes"),
    ("--max-pause S", "ends a pause migtui owns after S s (60), by --on-max-pause"),
    ("--read-only", "queries only: no key that changes a VM is offered"),
    ("q", "quits this view only: the engine keeps every pause and its deadline; migtui attach"
          " comes back; ^c is q, then exit status 130"),
    ("libvirt", "drives the pauses of its QEMUs: y and x say why they do nothing"),
)
PANELS = (
    ("Monitors", "status, run or connection state; armed: it will pause"),
    ("Migration", "RAM left, pass, expected downtime (left÷bw or dirty÷bw, as this QEMU computes it)"
                  " against downtime-limit"),
    ("Convergence", "verdict from the RAM left at each sync, ETA; 1-6 remedies; the --converge"
                    " policy's next act"),
    ("Dirty/sent", "the dirty rate against the send rate: context, not a verdict"),
    ("Block jobs", "mirrors: status, progress, speed; errors below"),
    ("Events", "QMP events at QEMU's timestamps; e: this monitor or all"),
)
# Bindings listed as one line in the help.
MERGED = {"Next monitor": "Next / previous monitor", "Previous monitor": "Next / previous monitor",
          "Scroll events up": "Scroll the events", "Scroll events down": "Scroll the events"}
COLUMN = 36  # two keys a row from twice this width on


def _head(text: str, width: int, style: str = "bold $accent") -> Content:
    return Content.styled(f"  {text:<{width}}", style)


def _section(title: str) -> Item:
    return Content(""), Content.styled(title, "bold")


def _entry(key: str, description: str, ok: bool, width: int) -> Content:
    return Content.assemble((f"{key:<{width}}", "bold $accent" if ok else "$text-muted"),
                            (description if ok else f"{description} (not now)", "" if ok else "$text-muted"))


def key_items(keys: Iterable[HelpKey], width: int) -> list[Item]:
    """The keys two to a row where there is room; not available now: dimmed."""
    keys = list(keys)
    key_width = max((len(k) for k, _, _ in keys), default=4) + 1
    column = (width - 4) // 2  # a scrollbar may take two columns
    if width < 2 * COLUMN + 2:
        return [(Content("  "), _entry(k, d, ok, key_width)) for k, d, ok in keys]
    rows: list[Item] = []
    for i in range(0, len(keys), 2):
        left = _entry(*keys[i], key_width)
        left = left.truncate(column - 1, ellipsis=True) if left.cell_length > column - 1 else left
        right = _entry(*keys[i + 1], key_width) if i + 1 < len(keys) else Content("")
        right = right.truncate(column, ellipsis=True) if right.cell_length > column else right
        rows.append((Content("  "), left + Content(" " * (column - left.cell_length)) + right))
    return rows


def help_items(keys: Iterable[HelpKey], width: int) -> list[Item]:
    items = [_section("Keys"), *key_items(keys, width),
             _section("Confirming"), (Content("  "), Content(CONFIRMING)), _section("Pre-switchover")]
    items += [(_head(k, 2), Content(t)) for k, t in PRE_SWITCHOVER]
    items += [(Content.styled(f"  {k} ", "bold"), Content(t)) for k, t in NOTES]
    items.append(_section("Starting a migration"))
    items += [(_head(k, 2), Content(t)) for k, t in STARTING]
    items.append(_section("Panels"))
    head = max(len(k) for k, _ in PANELS) + 1
    items += [(_head(k, head, "bold"), Content(t)) for k, t in PANELS]
    return items


def merged(keys: Iterable[HelpKey]) -> list[HelpKey]:
    """Keys that go together (tab and shift+tab, pgup and pgdn, 1-4) as one line."""
    out: dict[str, tuple[list[str], bool]] = {}
    for key, description, ok in keys:
        if key in ("tab", "shift+tab"):
            key = "tab"  # beside ↑↓ j k: shift+tab goes back
        name = MERGED.get(description, "Remedies (convergence)" if description.startswith("Remedy") else
                          description)
        listed, was = out.get(name, ([], False))
        out[name] = ([*listed, key] if key not in listed else listed, was or ok)
    return [(" ".join(k) if len(k) < 4 else f"{k[0]}-{k[-1]}", d, ok) for d, (k, ok) in out.items()]


class HelpScreen(Screen[None]):
    """The whole terminal (no dashboard footer shows through), closed by escape, q or ?."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close help"),
    ]

    def __init__(self, keys: Iterable[HelpKey]) -> None:
        super().__init__(id="help")
        self._keys = merged(keys)

    def compose(self) -> ComposeResult:
        yield TooSmall()
        with VerticalScroll(id="help-body") as body:
            body.border_title = "migtui help"
            body.border_subtitle = "↑ ↓ pgup pgdn scroll"
            yield HangingLines(help_items(self._keys, self.app.size.width - 4), id="help-text")
        yield BottomBar()

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()  # so the arrows scroll a long help

    def on_resize(self) -> None:
        self.query_one("#help-text", HangingLines).set_items(help_items(self._keys, self.app.size.width - 4))

    @property
    def text(self) -> str:
        """The help as drawn (wrapped lines included)."""
        return "\n".join(self.query_one("#help-text", HangingLines).shown)
