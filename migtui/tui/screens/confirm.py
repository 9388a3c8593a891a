"""A yes/no question in a modal (arming a source, quitting while a guest is paused)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True on ``y``, False on ``n`` / ``escape``."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, question: str | Content, *, yes: str = "yes", no: str = "no",
                 id: str | None = None) -> None:
        super().__init__(id=id, classes="confirm")
        self._title = title
        self._question = question
        self._yes = yes
        self._no = no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = self._title
            yield Static(self._question, id="confirm-question")
            yield Static(Content.assemble(("y", "bold $accent"), f"  {self._yes}    ",
                                          ("n", "bold $accent"), f"  {self._no}"), id="confirm-keys")
        yield Footer(compact=True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
