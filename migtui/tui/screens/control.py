"""The questions before migtui changes a running migration: abort it (``x``), or take one of the
advisor's remedies (``1``-``6``: a value to check and send, or postcopy's question).

Each names the VM and says what will happen in numbers (the engine's words). A remedy's
value can be edited before it is sent and is checked as it is typed (bandwidth in MiB/s or
Gbit/s, downtime in ms or s; ``model/units.py``): enter sends it, escape or ``n`` steps
back; a value that cannot be sent is said in one line and nothing goes out.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ...errors import MigtuiError
from ...model.advisor import DIRTY_LIMIT, Remedy
from ...workflow.control import read_value
from ..widgets.flash_line import BottomBar
from ..widgets.too_small import TooSmall
from .confirm import ConfirmScreen


class AbortConfirm(ConfirmScreen):
    """Abort this migration? Enter aborts it."""

    YES_STYLE = "bold $error"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "answer(True)", "Abort")]


def abort_question(name: str, does: str, status: str, mirrors: list[str]) -> Content:
    jobs = f"\nMirrors: {', '.join(mirrors)}." if mirrors else ""
    return Content(f"The migration of {name} is {status}. migtui will {does}.{jobs}")


class PostcopyConfirm(ConfirmScreen):
    """Switch to postcopy? Enter switches (it takes no value)."""

    YES_STYLE = "bold $warning"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "answer(True)", "Postcopy")]


def remedy_question(remedy: Remedy, sends: str) -> Content:
    """Expected effect, cost, and what goes to QEMU."""
    lines = [Content.assemble(("Expected effect: ", "bold"), remedy.effect)]
    if remedy.cost:
        lines.append(Content.assemble(("Cost: ", "bold $warning"), remedy.cost))
    lines.append(Content.assemble(("Sends: ", "bold"), sends))
    return Content("\n").join(lines)


class RemedyScreen(ModalScreen[str | None]):
    """One remedy: its effect and cost, the value (editable), enter to send it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Cancel"),
        Binding("enter", "send", "Set it", show=True),
    ]

    def __init__(self, name: str, key: str, remedy: Remedy) -> None:
        super().__init__(id="remedy", classes="confirm")
        self._name = name
        self._key = key
        self.remedy = remedy

    def compose(self) -> ComposeResult:
        remedy = self.remedy
        with Vertical(id="confirm-box") as box:
            box.border_title = f"{self._name}: {remedy.title}"
            command = "set-vcpu-dirty-limit" if remedy.action == DIRTY_LIMIT else "migrate-set-parameters"
            yield Static(remedy_question(remedy, f"{command} {remedy.parameter} (now {remedy.current})"),
                         id="confirm-question")
            yield Input(remedy.value, id="remedy-value")
            yield Static("", id="remedy-check")
            yield Static(Content.assemble(("enter", "bold $accent"), f"  set {remedy.parameter}    ",
                                          ("escape", "bold $accent"), "  cancel"), id="confirm-keys")
        yield TooSmall()
        yield BottomBar()

    def on_mount(self) -> None:
        self._check(self.remedy.value)
        self.query_one(Input).focus()

    def _check(self, text: str) -> bool:
        """Say what ``text`` would send; False if it cannot be sent."""
        line = self.query_one("#remedy-check", Static)
        try:
            _, shown = read_value(self.remedy.action, self.remedy.parameter, text)
        except MigtuiError as err:
            line.update(Content.styled(str(err), "$error"))
            return False
        line.update(Content.styled(f"{self.remedy.parameter} {self.remedy.current} → {shown}", "$success"))
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        self._check(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_send()

    def action_send(self) -> None:
        text = self.query_one(Input).value
        if self._check(text):
            self.dismiss(text)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
