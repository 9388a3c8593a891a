"""A yes/no question in a modal: arm a source, abort a migration, quit the demo.

One confirmation scheme for every question (the help says it): the question names the VM
and what will happen, **enter** does it, **n** or **escape** does not. Enter is no action's
key, so a confirmation never reuses a key that means something else (``y`` resumes in the
switchover dialog, ``x`` asks to abort, ``a`` asks to arm): a key pressed out of habit
only says how to answer. The one action without a question is ``y`` in the switchover
dialog: that dialog is the question (the guest is stopped, every second counts).
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from ..widgets.flash_line import BottomBar
from ..widgets.too_small import TooSmall

CONFIRM_KEY = "enter"


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True on enter, False on ``n`` / ``escape``."""

    YES_STYLE = "bold $accent"
    YES_DESCRIPTION = "Yes"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
        Binding("y,a,x,s", "how", show=False),  # a habit: say how to answer
        Binding("question_mark", "app.help", "Help", key_display="?"),
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
            yield Static(Content.assemble((CONFIRM_KEY, self.YES_STYLE), f"  {self._yes}    ",
                                          ("n", "bold $accent"), f"  {self._no}"), id="confirm-keys")
        yield TooSmall()
        yield BottomBar()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def action_how(self) -> None:
        self.app.notify(f"enter: {self._yes} · n or escape: {self._no}", severity="warning")


class ArmConfirm(ConfirmScreen):
    """Arm this source?"""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "answer(True)", "Arm")]


class QuitConfirm(ConfirmScreen):
    """Quit although quitting ends something (the demo stops its QEMUs)?"""

    YES_STYLE = "bold $error"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "answer(True)", "Quit")]
