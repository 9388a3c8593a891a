"""The question before migtui aborts a running migration (``x``): it names the VM and says
what will happen (the engine's words)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content

from .confirm import ConfirmScreen


class AbortConfirm(ConfirmScreen):
    """Abort this migration? ``x`` again aborts it."""

    YES_KEY = "x"
    YES_STYLE = "bold $error"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("x", "answer(True)", "Abort")]


def abort_question(name: str, does: str, status: str, mirrors: list[str]) -> Content:
    jobs = f"\nMirrors: {', '.join(mirrors)}." if mirrors else ""
    return Content(f"The migration of {name} is {status}. migtui will {does}.{jobs}")
