"""The help screen (``?``): every key that works right now, and what the panels mean."""

from __future__ import annotations

from typing import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

GUIDE = (
    ("Monitors", "on the left: name, a badge with the migration status, then QEMU's run state, "
     "or the connection state while not connected (connecting, retrying n, lost: why). "
     "\"armed\": pause-before-switchover is on, so QEMU stops the guest and waits before "
     "switching over."),
    ("Migration", "status, RAM progress (sent of total, what is left), throughput, pass number, "
     "expected downtime against downtime-limit, setup and total time, final downtime, and "
     "whatever QEMU adds (cpu throttle, xbzrle, blocked reasons, error)."),
    ("Dirty vs sent", "how fast the guest dirties memory against how fast the link sends it, "
     "on one scale over the last minutes. Dirty at or above sent: the migration will not "
     "converge. With no migration running, d measures the dirty rate (calc-dirty-rate)."),
    ("Block jobs", "mirrors and other jobs: status, ready, progress, speed, I/O status, errors."),
    ("Events", "every QMP event with QEMU's own timestamp; e switches between the selected "
     "monitor and all of them; pgup / pgdn scroll."),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close help"),
    ]

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        super().__init__(id="help")
        self._keys = list(keys)

    def compose(self) -> ComposeResult:
        width = max((len(k) for k, _ in self._keys), default=4) + 2
        lines = [Content.styled("Keys", "bold")]
        lines += [
            Content.assemble((f"  {key:<{width}}", "bold $accent"), description)
            for key, description in self._keys
        ]
        lines += [Content(""), Content.styled("Panels", "bold")]
        lines += [Content.assemble((f"{title}: ", "bold"), text) for title, text in GUIDE]
        with VerticalScroll(id="help-body"):
            yield Static(Content("\n").join(lines), id="help-text")
        yield Static("escape / ? / q: close · ↑ ↓ pgup pgdn: scroll", id="help-hint")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()  # so the arrows scroll a long help
