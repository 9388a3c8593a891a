"""Text of the pre-switchover banner and dialog: clocks, checklist, steps, outcome.

Pure builders from the workflow's data to Content, so tests and snapshots can read
them without a screen. Every line carries its meaning in a symbol as well as a
colour (✓ ✗ ·), so NO_COLOR and 16-colour terminals lose nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content

from ..format import format_duration, format_ms
from ..model.vmstate import VmState
from ..workflow.checklist import Check, Checklist
from ..workflow.switchover import Switchover
from ..workflow.switchover_state import Action, Outcome, StepState, SwitchoverResult
from .widgets.hanging import Item

OK, BAD, INFO = "✓", "✗", "·"
_STEP_ICONS = {
    StepState.PENDING: (" ", "$text-muted"),
    StepState.RUNNING: ("▸", "bold $accent"),
    StepState.DONE: (OK, "$success"),
    StepState.FAILED: (BAD, "bold $error"),
    StepState.SKIPPED: ("–", "$text-muted"),
}


def clock_text(seconds: float) -> str:
    """Tenths while it matters: "0.4 s", "12.3 s", "2m 05.3s", then "1h 02m 05s"."""
    s = max(0.0, seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        minutes, rest = divmod(s, 60)
        return f"{int(minutes)}m {rest:04.1f}s"
    hours, rest = divmod(int(s), 3600)
    return f"{hours}h {rest // 60:02d}m {rest % 60:02d}s"


@dataclass(frozen=True)
class PauseClock:
    """How long the guest has been stopped in this pause, from QEMU's own timestamps."""

    start: float  # STOP (or MIGRATION pre-switchover) timestamp, QEMU's wall clock
    exact: bool  # False: first seen by a poll (migtui started during the pause)

    @classmethod
    def of(cls, state: VmState) -> "PauseClock | None":
        start = state.stopped_since
        since = state.pre_switchover_since
        if since is None:
            return None
        # STOP precedes MIGRATION pre-switchover by ~1 ms; a stale STOP (guest paused
        # by hand long before) still counts: the guest was down all that time.
        start = since if start is None or start > since else start
        seen_by_event = any(c.status == "pre-switchover" and c.source == "event" and c.time == since
                            for c in state.status_changes)
        return cls(start, seen_by_event)

    def seconds(self, now: float) -> float:
        return max(0.0, now - self.start)


def banner_line(name: str, clock: PauseClock | None, now: float, deadline: str | None = None) -> Content:
    """One source's banner line: the dialog's figure (tenths), "≥" when migtui only saw
    the pause after it began, the engine's deadline. Fits 80 columns; what may be cut comes last."""
    took = ("" if clock.exact else "≥") + clock_text(clock.seconds(now)) if clock is not None else "?"
    then = f" · {deadline}" if deadline else ""
    return Content.styled(f" ‖ {name} STOPPED {took} before switchover{then} · s opens ", "bold reverse $warning")


def deadline_text(pause: dict[str, object], now: float) -> str | None:
    """"abort in 42 s": what the engine will do when this pause reaches its deadline."""
    deadline = pause.get("deadline")
    if not isinstance(deadline, (int, float)) or not pause.get("deadline_allowed"):
        return None
    policy = pause.get("policy")
    action = policy.get("on_max_pause", "abort") if isinstance(policy, dict) else "abort"
    return f"{action} in {max(0, int(deadline - now + 0.999))} s"


def engine_note(pause: dict[str, object], now: float) -> list[Content]:
    """The engine's word on a pause: who drives it, what the engine will do, its notes."""
    lines: list[Content] = []
    if pause.get("owner") == "libvirt":
        lines.append(Content.styled("libvirt drives this migration and finishes this pause itself:"
                                    " acting here may break it", "bold $warning"))
    elif pause.get("since") is not None:
        then = deadline_text(pause, now)
        if then:
            policy = pause.get("policy")
            limit = policy.get("max_pause_s") if isinstance(policy, dict) else None
            lines.append(Content.styled(f"The engine will {then} (--max-pause {limit:g} s),"
                                        " with or without this view" if isinstance(limit, (int, float))
                                        else f"The engine will {then}", "$warning"))
        elif pause.get("deadline_why"):
            lines.append(Content.styled(f"No deadline: {pause['deadline_why']}", "$text-muted"))
    notes = pause.get("notes")
    if isinstance(notes, dict):
        for key in ("held", "deadline", "auto"):
            text = notes.get(key)
            if text:
                lines.append(Content.styled(("✗ " if key == "held" else "") + str(text),
                                            "bold $error" if key == "held" else "$accent"))
    return lines


def pause_end(state: VmState, clock: PauseClock) -> float | None:
    """When the pause ended (the first status after pre-switchover), or None if it goes on."""
    if state.in_pre_switchover:
        return None
    after = [c.time for c in state.status_changes if c.time >= clock.start and c.status != "pre-switchover"]
    return min(after) if after else None


def clock_line(clock: PauseClock | None, now: float, ended_at: float | None = None) -> Content:
    if clock is None:
        return Content.styled("Guest stopped: since when is not known yet", "bold $warning")
    if ended_at is not None:
        took = ("" if clock.exact else "at least ") + clock_text(max(0.0, ended_at - clock.start))
        return Content.assemble(("Guest was stopped ", "bold"), (took, "bold"),
                                (" in this pause", "$text-muted"))
    took = ("" if clock.exact else "at least ") + clock_text(clock.seconds(now))  # the banner's figure
    return Content.assemble(
        ("Guest stopped ", "bold $warning"), (took, "bold reverse $warning"),
        (" · all of it counts as downtime", "$warning"),
    )


def check_item(check: Check, width: int = 13) -> Item:
    if check.info:
        icon, style = INFO, "$text-muted"
    elif check.ok:
        icon, style = OK, "$success"
    else:
        icon, style = BAD, "bold $error"
    name = check.name if len(check.name) < width else check.name[: width - 2] + "…"
    head = Content.assemble((f"{icon} ", style), (f"{name:<{width}}", "" if check.ok else "bold $error"))
    return head, Content.styled(check.detail, "" if check.ok else "$error")


def checklist_items(checks: Checklist) -> list[Item]:
    width = min(24, max(len(c.name) for c in checks) + 2) if len(checks) else 13
    return [check_item(c, width) for c in checks]


def step_items(controller: Switchover) -> list[Item]:
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


def dialog_title(name: str, controller: Switchover) -> str:
    """The dialog's border title: what this pause is now, or how it ended."""
    action, result = controller.action, controller.result
    if result is None:
        if action is None:
            return f"{name}: paused before switchover"
        return f"{name}: {'resuming the switchover' if action == Action.RESUME else 'aborting the migration'}"
    titled = _OUTCOME_TITLES.get(result.outcome)
    if titled is not None:
        return f"{name}: {titled}"
    return f"{name}: {'abort' if action == Action.ABORT else 'switchover'} failed"


def steps_title(controller: Switchover) -> str:
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
            pause = f"{result.pause_ms:.1f} ms" if result.pause_ms < 1000 else format_duration(result.pause_ms / 1000)
            bits.append(f"paused {pause} before switchover")
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


def more_paused_line(names: list[str]) -> Content:
    if not names:
        return Content("")
    who = ", ".join(names)
    return Content.styled(f"Also paused: {who} (its dialog follows when this one closes)", "bold $warning")


