"""The flash line: one line above the footer for what the app has to say (k9s's flash).

Toasts covered the event log and the dialog's steps; this line covers nothing: it takes a
row only while it has something to say, and every screen (dashboard, dialogs, help) has
one, so a message stays readable whatever is on top. One message at a time, one line,
clipped with … : a new one replaces the last. The app keeps the message
(:class:`Flash`) and tells every line on the stack (``MigtuiApp.flash``); a line
mounted later (a dialog opening) shows the message in force.

How long: information a few seconds, a warning (a key that does nothing now, and why)
a little longer, an error until the operator's next key or ``ERROR_S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget

from ..kept_lines import KeptLines
from .footer import KeyFooter

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

INFO_S, WARNING_S, ERROR_S = 5.0, 8.0, 20.0
STYLES = {"information": "$foreground", "warning": "bold $warning", "error": "bold $error"}
MARKS = {"information": "", "warning": "! ", "error": "✗ "}


@dataclass(frozen=True)
class Flash:
    text: str
    severity: SeverityLevel = "information"
    until: float = 0.0  # time.monotonic() after which it is gone

    @property
    def sticky(self) -> bool:
        """Gone at the operator's next key (an error or a warning)."""
        return self.severity != "information"


def default_timeout(severity: SeverityLevel) -> float:
    return {"information": INFO_S, "warning": WARNING_S}.get(severity, ERROR_S)


def one_line(message: str, title: str = "") -> str:
    """A message of several lines as one: ``title: line · line``."""
    text = " · ".join(part.strip() for part in message.splitlines() if part.strip())
    return f"{title}: {text}" if title else text


def flash_content(flash: Flash | None) -> Content:
    if flash is None:
        return Content("")
    return Content.styled(f"{MARKS.get(flash.severity, '')}{flash.text}", STYLES.get(flash.severity, ""))


class FlashLine(KeptLines, Widget):
    DEFAULT_CSS = """
    FlashLine { height: 1; width: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
                background: $panel; display: none; }
    FlashLine.-shown { display: block; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._content = Content("")

    def on_mount(self) -> None:
        self.show(getattr(self.app, "current_flash", None))

    def show(self, flash: Flash | None) -> None:
        self._content = flash_content(flash)
        self.set_class(bool(self._content.plain), "-shown")
        self.refresh()

    @property
    def text(self) -> str:
        return self._content.plain

    def render(self) -> Content:
        return self._content


class BottomBar(KeptLines, Vertical):
    """The flash line over the footer, docked at the bottom of a screen; ``above``: a
    line over them (the dashboard's ``/`` filter)."""

    DEFAULT_CSS = """
    BottomBar { dock: bottom; height: auto; width: 100%; }
    BottomBar > KeyFooter { dock: none; }
    """

    def __init__(self, *above: Widget) -> None:
        super().__init__()
        self._above = above

    def compose(self) -> ComposeResult:
        yield from self._above
        yield FlashLine()
        yield KeyFooter()
