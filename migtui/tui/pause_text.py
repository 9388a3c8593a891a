"""Text of the pre-switchover banner and dialog: clocks, checklist, steps, outcome.

Pure builders from the workflow's data to Content, so tests and snapshots can read
them without a screen. Every line carries its meaning in a symbol as well as a
colour (✓ ✗ ·), so NO_COLOR and 16-colour terminals lose nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from textual.content import Content

from ..format import format_duration, format_ms
from ..model.vmstate import VmState
from ..workflow.checklist import Check, Checklist
from ..workflow.pause_tracker import monitor_lost
from ..workflow.session import MonitorSession
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


class Situation(enum.StrEnum):
    """Where a pause stands as the dialog and the banner show it (before any action)."""

    PAUSED = "paused"  # QEMU waits in pre-switchover and its monitor answers: the clock ticks
    LOST = "lost"  # the source's monitor is lost during the pause: its QEMU may be gone
    REPLACED = "replaced"  # the monitor reconnected: another QEMU may answer there now
    OVER = "over"  # the pause has ended


def situation(session: MonitorSession, generation: int | None = None) -> Situation:
    """``generation``: the session's when the pause was first shown."""
    if generation is not None and session.generation != generation:
        return Situation.REPLACED
    if not session.state.in_pre_switchover:
        return Situation.OVER
    if monitor_lost(session):
        return Situation.LOST
    return Situation.PAUSED


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
    """How long the guest has been stopped in this pause, from QEMU's own timestamps.

    ``exact``: ``start`` is QEMU's timestamp of the stop (a STOP or MIGRATION
    pre-switchover event). Otherwise the pause was first seen by a poll (the engine, or
    migtui, started during it): ``start`` is the earliest record of it, so the clock
    says "at least", and ``earliest`` bounds it from the other side -- the pause began
    after the migration started (QEMU's total-time) and after the last status seen before
    it -- so the clock also says "at most".
    """

    start: float  # STOP / MIGRATION pre-switchover timestamp, else the earliest record
    exact: bool
    earliest: float | None = None  # not exact: the pause began after this

    @classmethod
    def of(cls, state: VmState, recorded: float | None = None) -> PauseClock | None:
        """``recorded``: the engine's own record of the pause start (its PAUSE message's
        ``since``), when this is a view's replay: a long pause can outlast the journal."""
        since = state.pre_switchover_since
        if since is None:
            return None
        before = _status_before(state, since)  # a time at which QEMU was not paused yet
        exact = any(c.status == "pre-switchover" and c.source == "event" and c.time == since
                    for c in state.status_changes)
        start = since
        if isinstance(recorded, (int, float)) and recorded < start and (before is None or recorded > before):
            start = float(recorded)
        # The MIGRATION event can come after a poll that saw the pause first: its time is exact.
        last_stop: float | None = None
        for ev in state.events:
            t = ev.timestamp
            if t is None or t > since or (before is not None and t < before):
                continue
            if ev.name == "MIGRATION" and ev.data.get("status") == "pre-switchover":
                start, exact = min(start, t), True
            elif ev.name == "STOP":
                last_stop = t
            elif ev.name == "RESUME":
                last_stop = None
        # STOP precedes MIGRATION pre-switchover by ~1 ms; a stale STOP (guest paused by hand
        # long before) still counts: the guest was down all that time.
        for stop in (last_stop, state.stopped_since):
            if stop is not None and stop <= start:
                start, exact = stop, exact or stop == last_stop
        earliest = None if exact else _migration_start(state, before)
        return cls(start, exact, earliest)

    def seconds(self, now: float) -> float:
        return max(0.0, now - self.start)

    def at_most(self, now: float) -> float | None:
        """The longest the pause can have lasted by ``now`` (None: exact, or no bound)."""
        if self.exact or self.earliest is None:
            return None
        return max(self.seconds(now), now - self.earliest)

    def figure(self, now: float) -> str:
        """The banner's figure: "1.2 s", "≥2.0 s", "≥2.0 s, ≤20.4 s"."""
        if self.exact:
            return clock_text(self.seconds(now))
        most = self.at_most(now)
        return f"≥{clock_text(self.seconds(now))}" + (f", ≤{clock_text(most)}" if most is not None else "")

    def words(self, now: float) -> str:
        """The dialog's figure: "1.2 s", "at least 2.0 s, at most 20.4 s"."""
        if self.exact:
            return clock_text(self.seconds(now))
        most = self.at_most(now)
        return f"at least {clock_text(self.seconds(now))}" + (f", at most {clock_text(most)}" if most is not None
                                                              else "")


def _status_before(state: VmState, since: float) -> float | None:
    """When the status before this pause was seen (QEMU was not paused then)."""
    before = [c.not_after for c in state.status_changes if c.time < since and c.status != "pre-switchover"]
    return max(before) if before else None


def _migration_start(state: VmState, before: float | None) -> float | None:
    """The latest time the pause cannot have begun before: the migration's start (a
    query-migrate's time less its total-time), or the status seen before the pause."""
    bounds = [] if before is None else [before]
    asked = state.migration_asked
    total = state.migration.total_time
    if asked is not None and total is not None and state.migration.is_running:
        # QEMU counted total-time when it answered, after the query was sent; it truncates
        # to the millisecond, hence the extra one.
        bounds.append(asked - total / 1000 - 0.001)
    return max(bounds) if bounds else None


def banner_line(name: str, clock: PauseClock | None, now: float, deadline: str | None = None) -> Content:
    """One source's banner line: the dialog's figure (tenths), "≥" when migtui only saw
    the pause after it began (with "≤" QEMU's bound), the engine's deadline. Fits 80
    columns; what may be cut comes last."""
    took = clock.figure(now) if clock is not None else "?"
    then = f" · {deadline}" if deadline else ""
    return Content.styled(f" ‖ {name} STOPPED {took} before switchover{then} · s opens ", "bold reverse $warning")


def gone_banner_line(name: str, clock: PauseClock | None, lost_at: float | None) -> Content:
    """A paused source whose monitor is lost: no clock ticks for a QEMU that may be gone
    (its last figure comes last: the first to be cut at 80 columns)."""
    took = f"stopped {clock.figure(lost_at)} until then · " if clock is not None and lost_at is not None else ""
    return Content.styled(f" ‖ {name}: source QEMU gone (monitor lost) · s opens · {took}", "bold reverse $error")


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


def clock_line(clock: PauseClock | None, now: float, ended_at: float | None = None, *,
               downtime_ms: int | None = None, lost_at: float | None = None) -> Content:
    """The dialog's downtime clock: ticking while the pause goes on; its final figure once
    it ended (QEMU's own downtime instead of an estimate, when the migration completed);
    stopped, and said so, when the source's monitor is lost."""
    if lost_at is not None:
        took = f" · guest stopped {clock.words(lost_at)} until then" if clock is not None else ""
        return Content.assemble(("Source monitor lost", "bold reverse $error"), (took, "bold"),
                                (" · its QEMU is gone or unreachable", "$error"))
    if clock is None:
        return Content.styled("Guest stopped: since when is not known yet", "bold $warning")
    if ended_at is not None:
        if not clock.exact and downtime_ms is not None:
            return Content.assemble(("Guest was stopped ", "bold"), (format_ms(downtime_ms), "bold"),
                                    (" (QEMU's downtime; migtui saw the pause only after it began)", "$text-muted"))
        took = clock.words(ended_at)
        return Content.assemble(("Guest was stopped ", "bold"), (took, "bold"),
                                (" in this pause", "$text-muted"))
    return Content.assemble(
        ("Guest stopped ", "bold $warning"), (clock.words(now), "bold reverse $warning"),  # the banner's figure
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


def checklist_items(checks: Checklist, *, stale: bool = False) -> list[Item]:
    width = min(24, max(len(c.name) for c in checks) + 2) if len(checks) else 13
    return [check_item(c, width, stale=stale) for c in checks]


def end_items(session: MonitorSession, where: Situation) -> list[Item]:
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


def dialog_title(name: str, controller: Switchover, where: Situation = Situation.PAUSED, status: str = "") -> str:
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


def attempt_item(attempt: SwitchoverResult) -> Item:
    """An action that changed nothing (its command never reached QEMU): what happened, and
    that it can be tried again -- kept in the dialog until the next action starts."""
    return Content.styled("! ", "bold $warning"), Content.styled(attempt.reason, "$warning")


def more_paused_line(names: list[str]) -> Content:
    if not names:
        return Content("")
    who = ", ".join(names)
    return Content.styled(f"Also paused: {who} (its dialog follows when this one closes)", "bold $warning")


