"""``m``: start a migration of the selected source, keyboard only, at 80x24.

One screen: the destination (each monitored QEMU waiting with ``-incoming defer``, or a URI
to type; for a libvirt domain each other connected libvirt host), the address (migtui's pick,
editable; libvirt's migration URI), the capabilities and parameters both QEMUs have (libvirt's
flags), the disks to mirror (to copy). What is offered is the engine's (``start-offer``); every value is
checked as it is typed with the engine's own functions (``workflow/start.py``), and ``enter``
on a value (or ``ctrl+r``) shows the summary to confirm (``m`` starts, ``n`` steps back).
The engine checks the choices again before it sends anything.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, SelectionList, Static
from textual.widgets.option_list import Option

from ...address import LIBVIRT
from ...format import format_bytes
from ...model.startoffer import StartTarget
from ...model.units import BadValue
from ...workflow import libvirt_start
from ...workflow.libvirt_start import LibvirtPlan
from ...workflow.start import Choices, Plan, plan, summary
from ..widgets.footer import KeyFooter
from ..widgets.too_small import TooSmall
from .confirm import ConfirmScreen

TYPED = "-typed-uri"  # the destination option of a typed URI


class Checklist(SelectionList[str]):
    """Space toggles; enter reviews, as everywhere on this screen (not a second toggle)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "screen.review", "Review", show=False)]


class StartConfirm(ConfirmScreen):
    """The summary: ``m`` again starts the migration."""

    YES_KEY = "m"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "answer(True)", "Start it")]


def summary_text(plan: Plan | LibvirtPlan) -> Content:
    lines = libvirt_start.summary(plan) if isinstance(plan, LibvirtPlan) else summary(plan)
    return Content("\n").join(Content(f"• {line}") for line in lines)


def plan_of(source: str, target: StartTarget, choices: Choices) -> Plan | LibvirtPlan:
    """The engine's own check of these choices: libvirt's for a libvirt host."""
    return libvirt_start.plan(source, target, choices) if target.via == LIBVIRT else plan(source, target, choices)


class StartScreen(ModalScreen[Choices | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Cancel"),
        Binding("ctrl+r", "review", "Review"),
    ]

    def __init__(self, source: str, targets: list[StartTarget]) -> None:
        super().__init__(id="start")
        self.source = source
        self.targets = targets
        self.target = targets[0]

    def compose(self) -> ComposeResult:
        with Vertical(id="start-box") as box:
            box.border_title = f"Start a migration of {self.source}"
            box.border_subtitle = "tab next · space toggles · enter reviews · escape cancels"
            with VerticalScroll(id="start-form"):
                yield Label("Destination", classes="start-label")
                yield OptionList(*(self._destination(t) for t in self.targets), id="start-destination")
                yield Input(id="start-address")
                yield Static("", id="start-note")
                with Horizontal(id="start-options"):
                    yield Checklist(id="start-capabilities")
                    yield Vertical(id="start-parameters")
                yield Label("Disks to mirror (space toggles)", classes="start-label", id="start-disks-label")
                yield Checklist(id="start-disks")
            yield Static("", id="start-check")
        yield TooSmall()
        yield KeyFooter()

    @staticmethod
    def _destination(target: StartTarget) -> Option:
        if target.via == LIBVIRT:
            return Option(f"{target.name}  (libvirt host: libvirt migrates it)", id=target.name)
        if target.name:
            return Option(f"{target.name}  (monitored, waits on -incoming defer)", id=target.name)
        return Option("a URI you type (a QEMU migtui does not watch)", id=TYPED)

    def on_mount(self) -> None:
        self.query_one("#start-capabilities").border_title = "Capabilities"
        self.query_one("#start-parameters").border_title = "Parameters"
        destinations = self.query_one("#start-destination", OptionList)
        destinations.highlighted = 0
        self._load(self.target)
        destinations.focus()

    def _load(self, target: StartTarget) -> None:
        self.target = target
        address = self.query_one("#start-address", Input)
        address.value = target.address
        libvirt = target.via == LIBVIRT
        address.placeholder = ("migration URI tcp://HOST[:PORT] (empty: libvirt picks)" if libvirt
                               else "unix:/PATH or tcp:HOST:PORT")
        self.query_one("#start-disks-label", Label).update(
            "Disks to copy (space toggles; untick shared storage)" if libvirt else "Disks to mirror (space toggles)")
        note = self.query_one("#start-note", Static)
        note.update(Content.styled(target.note, "$text-muted"))
        note.display = bool(target.note)
        caps = self.query_one("#start-capabilities", SelectionList)
        caps.clear_options()
        caps.add_options([(c.name, c.name, c.default == "on") for c in target.capabilities])
        params = self.query_one("#start-parameters", Vertical)
        params.remove_children()
        params.mount_all([Horizontal(Label(p.name, classes="start-param-name"),
                                     Input(p.default, id=f"param-{p.name}", classes="start-param"),
                                     classes="start-param-row") for p in target.parameters])
        disks = self.query_one("#start-disks", SelectionList)
        disks.clear_options()
        # libvirt copies every disk that is not shared (copy-storage): ticked unless unticked
        disks.add_options([(self._disk_label(target, d.node, d.size, d.target, d.why), d.node,
                            libvirt and not d.why) for d in target.disks])
        for index, disk in enumerate(target.disks):
            if disk.why:
                disks.disable_option_at_index(index)
        disks.display = bool(target.disks)
        for label in self.query(".start-label"):
            if label is not self.query(".start-label").first():
                label.display = bool(target.disks)
        self._check()

    @staticmethod
    def _disk_label(target: StartTarget, node: str, size: int | None, to: str, why: str) -> str:
        if why:
            return f"{node}  {format_bytes(size)}: {why}"
        return f"{node}  {format_bytes(size)} → {target.name} {to}"

    def choices(self) -> Choices:
        caps = self.query_one("#start-capabilities", SelectionList)
        disks = self.query_one("#start-disks", SelectionList)
        params = {p.name: self.query_one(f"#param-{p.name}", Input).value for p in self.target.parameters
                  if self.query(f"#param-{p.name}")}
        return Choices(self.target.name, self.query_one("#start-address", Input).value,
                       tuple(str(v) for v in caps.selected), params, tuple(str(v) for v in disks.selected))

    def _check(self) -> Plan | LibvirtPlan | None:
        """The plan of what is on screen, or None with the one line that says why not."""
        line = self.query_one("#start-check", Static)
        try:
            result = plan_of(self.source, self.target, self.choices())
        except BadValue as err:
            line.update(Content.styled(str(err), "$error"))
            return None
        where = self.target.name or (result.address.uri if isinstance(result, Plan) else "")
        line.update(Content.styled(f"{self.source} → {where}: valid; enter reviews", "$success"))
        return result

    # ------------------------------------------------------------------ events

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        name = "" if event.option.id == TYPED else event.option.id
        target = next((t for t in self.targets if t.name == name), None)
        if target is not None and target is not self.target:
            self._load(target)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.focus_next()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._check()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        self._check()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_review()

    def action_review(self) -> None:
        result = self._check()
        if result is None:
            return
        choices = self.choices()

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(choices)

        where = result.destination or (result.address.uri if isinstance(result, Plan) else "")
        self.app.push_screen(StartConfirm(f"Migrate {self.source} to {where}?", summary_text(result),
                                          yes=f"start the migration of {self.source}", no="back",
                                          id="confirm-start"), answered)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
