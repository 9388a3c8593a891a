"""What a view does, and says, when its engine goes away.

The engine is what bounds a pause. When it goes while a guest the view shows is
stopped before switchover -- or armed, or migrating with pause-before-switchover on,
so that its next pause would stop it -- the view must not just exit:

- **died** (SIGKILL, the OOM killer, a crash: it left its pid file behind): the view
  starts a new engine at once -- which takes up from its records what migtui armed, and
  the pauses it bounded with the operator's explicit deadline --,
  watches its monitors again with the policy the engine had for each, and says so;
- **stopped** (``migtui engine stop [--force]``, SIGTERM: it removed its pid file on the
  way out): someone meant it, so nothing is restarted; the view says which guest is
  still stopped, for how long, and that nothing bounds it now.

No textual here: the dashboard (``tui/view_run.py``) asks and prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..format import format_duration
from ..model.migration import RUNNING_STATUSES
from ..protocol.runtime import Runtime
from .remote import RemoteSession


@dataclass(frozen=True)
class EngineLoss:
    how: str  # "died", "stopped", or "alive" (it dropped this view, and runs on)
    stranded: tuple[tuple[RemoteSession, str], ...]  # guests stopped, or to be, with their line
    by: str = ""  # the engine's goodbye: "stopped by migtui engine stop on pts/3 (pid 4242)"

    @property
    def restart(self) -> bool:
        """Connect again now (starting a new engine if none runs): a guest needs one."""
        return self.how != "stopped" and bool(self.stranded)

    def lines(self, *, restarted: bool) -> list[str]:
        """What to say: what happened to the engine, then one line per stranded guest."""
        head = {"died": "the migtui engine died (killed, or it crashed)",
                "alive": "the migtui engine dropped this view",
                "stopped": f"the migtui engine was {self.by or 'stopped'}"}[self.how]
        if restarted:
            head += "; a new engine was started at once" if self.how == "died" else "; this view attached again"
        return [head] + [f"{line}: {what_bounds(s, restarted=restarted)}" for s, line in self.stranded]


def engine_loss(runtime: Runtime, pid: int | None, sessions: Sequence[RemoteSession], now: float,
                goodbye: str | None = None) -> EngineLoss:
    """``pid``: the engine's, from its welcome; ``goodbye``: what it said when it stopped on
    purpose (then it is "stopped", however far its exit has got). Without a goodbye: an
    engine that stops removes its pid file last; one that was killed leaves it behind (or a
    new engine has written its own)."""
    if goodbye is not None:
        return EngineLoss("stopped", stranded(sessions, now), goodbye)
    alive = pid is not None and _alive(pid)
    how = "alive" if alive else "died" if runtime.pid_file.exists() else "stopped"
    return EngineLoss(how, stranded(sessions, now))


def stranded(sessions: Sequence[RemoteSession], now: float) -> tuple[tuple[RemoteSession, str], ...]:
    """The guests stopped before switchover, or that will be at their next pause."""
    found = []
    for s in sessions:
        state = s.state
        if state.in_pre_switchover or s.pause.paused:
            clock = s.pause.clock
            starts = [t for t in (state.pre_switchover_since, clock.start if clock else None) if t is not None]
            took = f" (paused {format_duration(max(0.0, now - min(starts)))} so far)" if starts else ""
            found.append((s, f"{s.name} is still stopped before switchover{took}"))
        elif state.migration_status in RUNNING_STATUSES and state.capabilities.enabled("pause-before-switchover"):
            found.append((s, f"{s.name} is migrating with pause-before-switchover on: its pause will stop the guest"))
        elif state.armed and not (state.run_state is not None and state.run_state.status == "postmigrate"):
            found.append((s, f"{s.name} is armed: its next migration will stop the guest before switchover"))
    return tuple(found)


def what_bounds(session: RemoteSession, *, restarted: bool) -> str:
    """Whether anything bounds ``session``'s pause now, by what the old engine said of it."""
    pause = session.pause
    mine = pause.owner == "migtui"
    # A pause the operator's explicit deadline bounds is recorded too (engine/guard.py).
    guarded = not mine and not pause.no_deadline and (pause.paused or session.state.in_pre_switchover)
    if not restarted:
        later = ""
        if mine or guarded:
            why, start = (("migtui armed it", "QEMU's pause start") if mine
                          else ("migtui recorded it", "its recorded start"))
            later = (f" ({why}: the next engine -- `migtui MONITOR...` or `migtui engine` -- takes it up"
                     f" and applies its deadline, counted from {start})")
        return f"nothing bounds it now, no engine runs{later}"
    policy = pause.policy
    limit = f"({policy.max_pause_s:g} s, then {policy.on_max_pause})"
    if mine:
        return f"the new engine takes it up from migtui's record: its deadline {limit} counts from the pause's start"
    if guarded:
        return (f"the new engine takes it up from migtui's record of the pause: its deadline {limit} counts from"
                " the pause's start")
    if not pause.no_deadline:
        return f"the new engine applies its deadline {limit} again, counted from when it sees the pause"
    return f"no deadline ({pause.no_deadline})"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
