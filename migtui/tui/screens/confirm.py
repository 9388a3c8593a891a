"""A yes/no question in a modal (arming a source).

The key that says yes is the key that asked (``a`` arms): a question can open over the
switchover dialog, where ``y`` resumes, so no question ever answers to ``y``. Every
question names the VM it acts on (its title).
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from ..widgets.footer import KeyFooter
from ..widgets.too_small import TooSmall


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True on :attr:`YES_KEY`, False on ``n`` / ``escape``. A subclass
    binds its own yes key (a Binding to ``answer(True)``)."""

    YES_KEY = ""
    YES_STYLE = "bold $accent"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, question: str | Content, *, yes: str = "yes", no: str = "no",
                 id: str | None = None) -> None:
        super().__init__(id=id, classes="confirm")
        assert self.YES_KEY, "a question answers to the key that asked it"
        self._title = title
        self._question = question
        self._yes = yes
        self._no = no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = self._title
            yield Static(self._question, id="confirm-question")
            yield Static(Content.assemble((self.YES_KEY, self.YES_STYLE), f"  {self._yes}    ",
                                          ("n", "bold $accent"), f"  {self._no}"), id="confirm-keys")
        yield TooSmall()
        yield KeyFooter()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ArmConfirm(ConfirmScreen):
    """Arm this source? ``a`` again arms it."""

    YES_KEY = "a"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("a", "answer(True)", "Arm")]
