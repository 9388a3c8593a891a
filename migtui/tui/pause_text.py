"""Text of the pre-switchover banner and dialog: clocks, checklist, steps, outcome.

Pure builders from the workflow's data to Content, so tests and snapshots can read
them without a screen. Every line carries its meaning in a symbol as well as a
colour (✓ ✗ ·), so NO_COLOR and 16-colour terminals lose nothing.
"""

from __future__ import annotations

import enum
import math

from textual.content import Content

from ..format import format_duration, format_ms
from ..model.checks import Check
from ..model.pauseclock import PauseClock
from ..model.switchover import Action, Outcome, StepState, SwitchoverResult
from ..model.vmstate import VmState
from ..protocol.messages import Pause
from ..view.remote import RemoteSession, RemoteSwitchover
from .widgets.hanging import Item

OK, BAD, INFO = "✓", "✗", "·"
_STEP_ICONS = {
    StepState.PENDING: (" ", "$text-muted"),
    StepState.RUNNING: ("▸", "bold $accent"),
    StepState.DONE: (OK, "$success"),
    StepState.FAILED: (BAD, "bold $error"),
    StepState.SKIPPED: ("–", "$text-muted"),
}


class Situation(enum.StrEnum):
    """Where a pause stands as the dialog and the banner show it (before any action)."""

    PAUSED = "paused"  # QEMU waits in pre-switchover and its monitor answers: the clock ticks
    LOST = "lost"  # the source's monitor is lost during the pause: its QEMU may be gone
    REPLACED = "replaced"  # the monitor reconnected: another QEMU may answer there now
    OVER = "over"  # the pause has ended


def situation(session: RemoteSession, generation: int | None = None) -> Situation:
    """Where the engine says the pause stands; ``generation``: the session's when the pause
    was first shown (a new connection may be another QEMU)."""
    if generation is not None and session.generation != generation:
        return Situation.REPLACED
    pause = session.pause
    if not pause.paused:
        return Situation.OVER
    if pause.lost_at is not None:
        return Situation.LOST
    return Situation.PAUSED


def clock_text(seconds: float) -> str:
    """A ticking clock in the one duration format ("300 ms", "12.3 s", "2m 05s"): cut,
    not rounded, to what it shows (a clock never reads ahead)."""
    s = max(0.0, seconds)
    return format_duration(math.floor(s * 10) / 10 if s < 60 else math.floor(s))


def clock_figure(clock: PauseClock, now: float) -> str:
    """The banner's figure: "1.2 s", "≥2.0 s", "≥2.0 s, ≤20.4 s"."""
    if clock.exact:
        return clock_text(clock.seconds(now))
    most = clock.at_most(now)
    return f"≥{clock_text(clock.seconds(now))}" + (f", ≤{clock_text(most)}" if most is not None else "")

def clock_words(clock: PauseClock, now: float) -> str:
    """The dialog's figure: "1.2 s", "at least 2.0 s, at most 20.4 s"."""
    if clock.exact:
        return clock_text(clock.seconds(now))
    most = clock.at_most(now)
    return f"at least {clock_text(clock.seconds(now))}" + (f", at most {clock_text(most)}" if most is not None
                                                          else "")


def banner_line(name: str, clock: PauseClock | None, now: float, deadline: str | None = None, *,
                opens: bool = True) -> Content:
    """One source's banner line: the dialog's figure, "≥" when migtui only saw the pause
    after it began (with "≤" QEMU's bound), the deadline ("abort in 41.3 s", "no deadline"),
    and "s opens" while its dialog is closed. The clock and the deadline come first: at 80
    columns what may be cut is the hint (the status badge below says pre-switchover, and the
    dialog)."""
    took = clock_figure(clock, now) if clock is not None else "?"
    then = f" · {deadline}" if deadline else ""
    key = " · s opens" if opens else ""
    return Content.styled(f" ‖ {name} STOPPED {took}{then}{key} ", "bold reverse $warning")


def covered_banner_line(name: str) -> Content:
    """A paused source's banner line while its dialog is open over the dashboard: the clock and
    the deadline are the dialog's. One clock on screen; and a banner that ticked beneath a
    dialog had Textual draw the whole dashboard again, tinted, at every tick (0.1 s): the view
    took 20 % of a core with the dialog open, 7.6 % now (4 % with it closed; bench/pause_cost.py)."""
    return Content.styled(f" ‖ {name} STOPPED · see the dialog ", "bold reverse $warning")


def gone_banner_line(name: str, clock: PauseClock | None, lost_at: float | None, *, opens: bool = True) -> Content:
    """A paused source whose monitor is lost: no clock ticks for a QEMU that may be gone
    (its last figure comes last: the first to be cut at 80 columns)."""
    took = f"stopped {clock_figure(clock, lost_at)} until then · " if clock is not None and lost_at is not None else ""
    key = "s opens · " if opens else ""
    return Content.styled(f" ‖ {name}: source QEMU gone (monitor lost) · {key}{took}", "bold reverse $error")


def deadline_text(pause: Pause, now: float) -> str | None:
    """"abort in 41.3 s": what the engine will do when this pause reaches its deadline (a
    countdown: rounded up to the tenth it shows, it never reads late); "no deadline"."""
    deadline = pause.deadline
    if deadline is None:
        return "no deadline" if pause.no_deadline else None
    return f"{deadline.action} in {format_duration(math.ceil(max(0.0, deadline.at - now) * 10) / 10)}"


def engine_note(pause: Pause, now: float) -> list[Content]:
    """The engine's word on a pause: who drives it, what the engine will do, its notes."""
    lines: list[Content] = []
    if pause.driver:
        lines.append(Content.styled(pause.driver, "bold $warning"))
    elif pause.paused:
        then = deadline_text(pause, now)
        if pause.deadline is not None:
            lines.append(Content.styled(f"The engine will {then} (--max-pause {pause.deadline.limit_s:g} s),"
                                        " with or without this view", "$warning"))
        elif pause.no_deadline:
            lines.append(Content.styled(f"No deadline: {pause.no_deadline}", "$text-muted"))
    for key in ("held", "deadline", "auto"):
        text = pause.notes.get(key)
        if text:
            lines.append(Content.styled(("✗ " if key == "held" else "") + text,
                                        "bold $error" if key == "held" else "$accent"))
    return lines


def pause_end(state: VmState, clock: PauseClock) -> float | None:
    """When the pause ended (the first status after pre-switchover), or None if it goes on."""
    if state.in_pre_switchover:
        return None
    after = [c.time for c in state.status_changes if c.time >= clock.start and c.status != "pre-switchover"]
    return min(after) if after else None


def clock_line(clock: PauseClock | None, now: float, ended_at: float | None = None, *,
               downtime_ms: int | None = None, lost_at: float | None = None) -> Content:
    """The dialog's downtime clock: ticking while the pause goes on; its final figure once
    it ended (QEMU's own downtime instead of an estimate, when the migration completed);
    stopped, and said so, when the source's monitor is lost."""
    if lost_at is not None:
        took = f" · guest stopped {clock_words(clock, lost_at)} until then" if clock is not None else ""
        return Content.assemble(("Source monitor lost", "bold reverse $error"), (took, "bold"),
                                (" · its QEMU is gone or unreachable", "$error"))
    if clock is None:
        return Content.styled("Guest stopped: since when is not known yet", "bold $warning")
    if ended_at is not None:
        if not clock.exact and downtime_ms is not None:
            return Content.assemble(("Guest was stopped ", "bold"), (format_ms(downtime_ms), "bold"),
                                    (" (QEMU's downtime; migtui saw the pause only after it began)", "$text-muted"))
        took = clock_words(clock, ended_at)
        return Content.assemble(("Guest was stopped ", "bold"), (took, "bold"),
                                (" in this pause", "$text-muted"))
    return Content.assemble(
        ("Guest stopped ", "bold $warning"), (clock_words(clock, now), "bold reverse $warning"),  # the banner's figure
        (" · all of it counts as downtime", "$warning"),
    )


def check_item(check: Check, width: int = 13, *, stale: bool = False) -> Item:
    """``stale``: the last known figures of a monitor that is lost: muted, none of them green."""
    if stale:
        icon = INFO if check.info else OK if check.ok else BAD
        name = check.name if len(check.name) < width else check.name[: width - 2] + "…"
        return (Content.styled(f"{icon} {name:<{width}}", "$text-muted"), Content.styled(check.detail, "$text-muted"))
    if check.info:
        icon, style = INFO, "$text-muted"
    elif check.ok:
        icon, style = OK, "$success"
    else:
        icon, style = BAD, "bold $error"
    name = check.name if len(check.name) < width else check.name[: width - 2] + "…"
    head = Content.assemble((f"{icon} ", style), (f"{name:<{width}}", "" if check.ok else "bold $error"))
    return head, Content.styled(check.detail, "" if check.ok else "$error")


def checklist_items(checks: list[Check], *, stale: bool = False) -> list[Item]:
    width = min(24, max(len(c.name) for c in checks) + 2) if len(checks) else 13
    return [check_item(c, width, stale=stale) for c in checks]


def end_items(session: RemoteSession, where: Situation) -> list[Item]:
    """What is true once the pause is over (instead of a checklist, which is for a live pause)."""
    state = session.state
    if where is Situation.REPLACED:
        text = (f"{session.name}'s monitor connected again: the QEMU there may be another one, and"
                " what this dialog showed belongs to the one before it")
        return [(Content(""), Content.styled("The pause is over", "bold")), (Content(""), Content.styled(text, ""))]
    bits = [f"migration {state.migration_status}"]
    if state.final_downtime_ms is not None:
        bits.append(f"downtime {format_ms(state.final_downtime_ms)} (QEMU)")
    if state.running is not None:
        bits.append("source guest running" if state.running else "source guest stopped")
    return [(Content(""), Content.styled("The pause is over", "bold")),
            (Content.styled(f"{INFO} ", "$text-muted"), Content(" · ".join(bits)))]


def step_items(controller: RemoteSwitchover) -> list[Item]:
    """One row per step, its duration right-aligned; a failed step's reason follows in full."""
    items: list[Item] = []
    for step in controller.steps:
        icon, style = _STEP_ICONS.get(step.state, ("?", ""))
        failed = step.state is StepState.FAILED
        parts: list[tuple[str, str]] = [(step.label, "bold" if step.state is StepState.RUNNING else "")]
        if step.detail and not failed:
            parts.append((f": {step.detail}", "$text-muted"))
        took = ""
        if step.duration is not None and step.state in (StepState.DONE, StepState.FAILED):
            took = format_duration(step.duration)
        items.append((Content.styled(f"{icon} ", style), Content.assemble(*parts), Content.styled(took, "$text-muted")))
        if failed and step.detail:
            items.append((Content("  "), Content.styled(step.detail, "$error")))
    return items


_OUTCOME_TITLES = {
    Outcome.COMPLETED: "switchover completed",
    Outcome.POSTCOPY: "switchover completed (postcopy)",
    Outcome.ABORTED: "switchover aborted",
    Outcome.OTHER_CLIENT: "switchover ended by another client",
    Outcome.STOPPED: "switchover failed, guest still stopped",
    Outcome.NOT_PAUSED: "not paused, nothing to do",
}


def dialog_title(name: str, controller: RemoteSwitchover, where: Situation = Situation.PAUSED, status: str = "") -> str:
    """The dialog's border title: what this pause is now, or how it ended."""
    action, result = controller.action, controller.result
    if action is None and where is Situation.LOST:
        return f"{name}: source QEMU gone (monitor lost)"
    if action is None and where is Situation.REPLACED:  # whatever the old pause's controller concluded
        return f"{name}: pause over (another connection to the monitor)"
    if result is None:
        if action is None:
            if where is Situation.OVER:
                return f"{name}: pause over (migration {status})"
            return f"{name}: paused before switchover"
        return f"{name}: {'resuming the switchover' if action == Action.RESUME else 'aborting the migration'}"
    titled = _OUTCOME_TITLES.get(result.outcome)
    if titled is not None:
        return f"{name}: {titled}"
    return f"{name}: {'abort' if action == Action.ABORT else 'switchover'} failed"


def steps_title(controller: RemoteSwitchover) -> str:
    if controller.action == Action.ABORT:
        return "Aborting the migration" if controller.result is None else "Steps of the abort"
    return "Resuming the switchover" if controller.result is None else "Steps of the switchover"


def outcome_item(result: SwitchoverResult, source_running: bool | None = None) -> Item:
    """The result a person can act on (the reason is already one line)."""
    outcome = result.outcome
    if outcome in (Outcome.COMPLETED, Outcome.POSTCOPY):
        bits = ["completed: the destination has taken over" if outcome is Outcome.COMPLETED
                else "postcopy-active: the destination runs, the rest of RAM follows"]
        if result.downtime_ms is not None:
            bits.append(f"downtime {format_ms(result.downtime_ms)} (QEMU)")
        if result.pause_ms is not None:
            bits.append(f"paused {format_ms(result.pause_ms)} before switchover")
        if result.destination_running:
            bits.append("destination running")
        return Content.styled(f"{OK} ", "bold $success"), Content.styled(" · ".join(bits), "bold $success")
    if outcome is Outcome.ABORTED:
        runs = result.source_running if source_running is None else source_running
        if runs:
            return Content.styled(f"{OK} ", "bold $success"), Content.styled(
                "aborted: the source guest runs again", "bold $success")
        return Content.styled("! ", "bold $warning"), Content.styled(result.reason, "$warning")
    if outcome is Outcome.OTHER_CLIENT:
        return Content.styled("! ", "bold $warning"), Content.styled(result.reason, "$warning")
    return Content.styled(f"{BAD} ", "bold $error"), Content.styled(result.reason, "$error")


def attempt_item(attempt: SwitchoverResult) -> Item:
    """An action that changed nothing (its command never reached QEMU): what happened, and
    that it can be tried again -- kept in the dialog until the next action starts."""
    return Content.styled("! ", "bold $warning"), Content.styled(attempt.reason, "$warning")


def more_paused_line(names: list[str]) -> Content:
    if not names:
        return Content("")
    who = ", ".join(names)
    return Content.styled(f"Also paused: {who} (its dialog follows when this one closes)", "bold $warning")


