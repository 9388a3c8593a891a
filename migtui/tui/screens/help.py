"""The help screen (``?``): every key that works right now, the pre-switchover step, and
what the panels mean."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from ..widgets.too_small import TooSmall

GUIDE = (
    ("Monitors", "on the left: name, a badge with the migration status, then QEMU's run state, "
     "or the connection state while not connected, migtui trying all along (connecting, retrying n, "
     "waiting for the socket: why, retrying: why; "
     "'last: <status>' is then the last status seen). "
     "\"armed\": events and pause-before-switchover are both on, so QEMU stops the guest and "
     "waits before switching over, and says so at once."),
    ("Migration", "status, RAM progress (what is left of the RAM; sent counts re-sent pages), pass number, "
     "expected downtime against downtime-limit, setup and total time, final downtime, and "
     "whatever QEMU adds (cpu throttle, dirty-limit throttle, xbzrle, blocked reasons, error). "
     "QEMU 8.1 changed what expected downtime means, and the figure says which this QEMU "
     "computes (told by its QMP schema): left÷bw is the RAM left to send over the bandwidth, "
     "dirty÷bw the bytes dirtied since the last sync over the bandwidth."),
    ("Convergence", "the engine's verdict on the migration, judged from its passes: the RAM left at "
     "each dirty sync must shrink until it fits bandwidth x downtime-limit. converging (with an ETA to "
     "the switchover), not converging (and why, in numbers), or unknown until two syncs after the bulk "
     "copy. From pass 2 the RAM bar gives way to that trend (left at each sync). The keys below it take "
     "the remedies, least invasive first: 1 raise max-bandwidth, 2 set avail-switchover-bandwidth (QEMU "
     "8.2+), 3 raise downtime-limit to the expected downtime (the guest pauses that long), 4 CPU throttle "
     "(auto-converge only), 5 vCPU dirty limit (KVM with its dirty ring), 6 switch to postcopy (postcopy-ram "
     "on before the start), x abort; each shows its effect and asks first (enter sets, escape does not). "
     "With --converge steps or --completion-timeout the engine acts by itself (policy line: what it does "
     "next; below it, what it did last and why); a remedy or abort taken here makes it stand down."),
    ("Dirty vs sent", "how fast the guest dirties memory against how fast the link sends it, "
     "on one scale over the last minutes: context, not a verdict (a guest that rewrites the same pages "
     "dirties above the send rate and still converges). With no migration running, d measures the dirty "
     "rate (calc-dirty-rate over 1 s): an estimate with its window, before a start."),
    ("Block jobs", "mirrors and other jobs: id, status (with ready or I/O trouble; active sync: "
     "a write-blocking mirror that copies each guest write before completing it), progress, "
     "type, speed limit; errors below the table."),
    ("Events", "every QMP event with QEMU's own timestamp; e switches between the selected "
     "monitor and all of them; pgup / pgdn scroll."),
)


PRE_SWITCHOVER_INTRO = (
    "With pause-before-switchover armed, QEMU stops the guest before it sends the device "
    "state and waits for a client: all of that wait is guest downtime. The banner at the top "
    "(\"‖ src STOPPED 1.2 s before switchover\") names each paused guest and how long it has "
    "been stopped; the switchover dialog opens by itself, with the same clock, a checklist "
    "(mirrors ready and in sync, destination receiving) and the keys:"
)
PRE_SWITCHOVER_KEYS = (
    ("a", "arm the selected source (events and pause-before-switchover) before its migration; "
     "a again confirms"),
    ("s", "open the switchover dialog of the paused source"),
    ("y", "resume: finish each disk mirror gracefully, then migrate-continue: the destination "
     "takes over (runs once)"),
    ("x, then y", "abort: migrate_cancel and force-cancel the mirrors: the source guest runs again "
     "(before a pause, x then x aborts the migration at its stage)"),
    ("n / escape", "close the dialog (the guest stays stopped; s reopens it), or step back from x"),
)
PRE_SWITCHOVER_NOTES = (
    ("--auto-resume", "the engine resumes each pause by itself as soon as its checklist passes, "
     "view or no view; when it fails, the dialog opens and the banner says why."),
    ("--max-pause S", "a pause migtui owns ends after S seconds (default 60) by --on-max-pause: "
     "abort (default), resume (only if the checklist passes) or wait; the banner counts down."),
    ("--read-only", "migtui sends queries only: the dialog shows the pause, y, x and a say why "
     "they do nothing, and the guest stays stopped until another client acts."),
    ("q", "quits this view only: the engine keeps the monitors, every pause and its deadline, and "
     "says so; migtui attach comes back."),
    ("A lost source monitor", "during a pause: the dialog says the source QEMU is gone, its clock "
     "stops, the last figures are marked as such, and y and x say why they do nothing."),
    ("libvirt", "drives the pauses of the QEMUs it manages: there y and x say why they do nothing."),
    ("SIGHUP", "(terminal or SSH connection lost): the view is gone within a second; the engine "
     "keeps watching and guarding; the next migtui or migtui attach shows the pause at once."),
)


def pre_switchover_lines() -> list[Content]:
    width = max(len(k) for k, _ in PRE_SWITCHOVER_KEYS) + 2
    lines = [Content.styled("Pre-switchover", "bold"), Content(PRE_SWITCHOVER_INTRO)]
    lines += [Content.assemble((f"  {key:<{width}}", "bold $accent"), text) for key, text in PRE_SWITCHOVER_KEYS]
    lines += [Content.assemble((f"{title} ", "bold"), text) for title, text in PRE_SWITCHOVER_NOTES]
    return lines


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
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
        lines += [Content(""), *pre_switchover_lines()]
        lines += [Content(""), Content.styled("Panels", "bold")]
        lines += [Content.assemble((f"{title}: ", "bold"), text) for title, text in GUIDE]
        yield TooSmall()
        with VerticalScroll(id="help-body"):
            yield Static(Content("\n").join(lines), id="help-text")
        yield Static("escape / ? / q: close · ↑ ↓ pgup pgdn: scroll", id="help-hint")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()  # so the arrows scroll a long help
