"""The switchover's state machine and what it reports: pure, no I/O.

:class:`Phase` is where the switchover of one source's pause stands, and ``MOVES`` is
every move it may make, in one table (as Textual's ``WorkerState`` is for a worker).
:class:`Action` is what may be started on a pause (by an operator, ``--auto-resume``
or the engine's deadline); :class:`Step` and :class:`SwitchoverResult` are its
progress and its end, as the dialog and the engine's views show them.

The resume goes WAITING/PAUSED -> CHECKING -> FINISHING_MIRRORS -> CONTINUING ->
COMPLETING -> CONTINUED; it stops in STOPPED (the guest still stopped, abort offered)
when a mirror or migrate-continue fails, or the monitor is lost before migrate-continue
went out. The abort goes from any phase before
migrate-continue to ABORTING -> DONE. DONE and CONTINUED end the pause; only
CONTINUED (and the two phases before it) is past the point of no return.

Each action runs once -- once QEMU got one of its commands. An attempt that wrote
nothing that changes the VM (a check that failed or got no answer, a monitor not
connected) goes back to where it started (CHECKING/ABORTING -> the phase before) and
can be tried again; its result is kept as the switchover's ``attempt``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from ..errors import MigtuiError


class Action(enum.StrEnum):
    RESUME = "resume"  # finish the mirrors, migrate-continue, follow to the end
    ABORT = "abort"  # migrate_cancel, force-cancel the mirrors, the source runs again


WATCH = "watch"  # a result's action when none of ours ended the pause (another client did)


class Phase(enum.StrEnum):
    WAITING = "waiting"  # made before the source paused (it reacts to nothing but an action yet)
    PAUSED = "paused"  # paused in pre-switchover, nothing started: the operator decides
    CHECKING = "checking"  # resume: a fresh query-block-jobs and the checklist
    FINISHING_MIRRORS = "finishing-mirrors"  # resume: block-job-cancel sent, waiting for BLOCK_JOB_COMPLETED
    CONTINUING = "continuing"  # resume: migrate-continue sent, waiting for its reply
    COMPLETING = "completing"  # resume: continued; following MIGRATION to the end, then the destination
    STOPPED = "stopped"  # the resume stopped before migrate-continue: the guest stays stopped, abort is offered
    ABORTING = "aborting"  # abort: migrate_cancel, force-cancel the mirrors, wait for the guest to run
    DONE = "done"  # the pause is over without our migrate-continue (aborted, another client, nothing to do)
    CONTINUED = "continued"  # the pause is over after our migrate-continue


MOVES: dict[Phase, frozenset[Phase]] = {
    # DONE: the QEMU behind the monitor changed (a reconnection) before it paused.
    Phase.WAITING: frozenset({Phase.PAUSED, Phase.CHECKING, Phase.ABORTING, Phase.DONE}),
    # DONE: another client (or QEMU) ended the pause while nothing ran here.
    Phase.PAUSED: frozenset({Phase.CHECKING, Phase.ABORTING, Phase.DONE}),
    # CONTINUING straight away when there is no mirror to finish; ABORTING interrupts;
    # back to WAITING/PAUSED: the check changed nothing, the resume can be tried again.
    Phase.CHECKING: frozenset({Phase.FINISHING_MIRRORS, Phase.CONTINUING, Phase.STOPPED, Phase.ABORTING,
                               Phase.DONE, Phase.WAITING, Phase.PAUSED}),
    Phase.FINISHING_MIRRORS: frozenset({Phase.CONTINUING, Phase.STOPPED, Phase.ABORTING, Phase.DONE}),
    # STOPPED: QEMU refused migrate-continue, so it was not continued after all.
    Phase.CONTINUING: frozenset({Phase.COMPLETING, Phase.STOPPED, Phase.CONTINUED}),
    Phase.COMPLETING: frozenset({Phase.CONTINUED}),
    Phase.STOPPED: frozenset({Phase.ABORTING, Phase.DONE}),
    # Back where it started: migrate_cancel never went out, the abort can be tried again.
    Phase.ABORTING: frozenset({Phase.DONE, Phase.WAITING, Phase.PAUSED, Phase.STOPPED}),
    Phase.DONE: frozenset(),
    Phase.CONTINUED: frozenset(),
}

ACTIVE = frozenset({Phase.CHECKING, Phase.FINISHING_MIRRORS, Phase.CONTINUING, Phase.COMPLETING, Phase.ABORTING})
# An abort may still start here (it interrupts a resume that has not sent migrate-continue).
ABORTABLE = frozenset({Phase.WAITING, Phase.PAUSED, Phase.CHECKING, Phase.FINISHING_MIRRORS, Phase.STOPPED})
PAST_CONTINUE = frozenset({Phase.CONTINUING, Phase.COMPLETING, Phase.CONTINUED})
TERMINAL = frozenset({Phase.DONE, Phase.CONTINUED})


class IllegalMove(RuntimeError):
    """A move ``MOVES`` does not allow: a bug in the switchover, never the operator's doing."""


def check_move(name: str, current: Phase, wanted: Phase) -> None:
    if wanted not in MOVES[current]:
        raise IllegalMove(f"{name}: switchover {current.value} -> {wanted.value} is not a move")


class Stop(Exception):
    """Ends an action early with its result (a failed check, an interruption)."""

    def __init__(self, result: SwitchoverResult) -> None:
        super().__init__(result.reason)
        self.result = result


# ---------------------------------------------------------------------- the sentences

def error_line(err: BaseException) -> str:
    """One line for a failed command (a MigtuiError already is one)."""
    return str(err) if isinstance(err, MigtuiError) else f"{err.__class__.__name__}: {err}"


def too_late(name: str) -> str:
    return f"{name}: too late to abort: migrate-continue was sent"


def under_way(name: str, action: str) -> str:
    return f"{name}: {action} is under way: it runs once"


def not_paused(name: str, status: str) -> str:
    return f"{name} is not paused in pre-switchover (status {status})"


def libvirt_drives(name: str) -> str:
    """Why the engine refuses a resume or abort of a pause libvirt drives unless the request
    forces it (a view offers that after a confirmation that names libvirt)."""
    return f"{name}: libvirt drives this migration: acting now may break it; confirm again to force it"


def can_be_tried_again(name: str, what: str, action: str) -> str:
    """An attempt that wrote nothing that changes the VM: ``what`` happened, nothing else."""
    return f"{name}: {what}: nothing was changed; {action} can be tried again"


def log_line(result: SwitchoverResult) -> str:
    """The log's record of how an action ended: its reason (it starts with the source's
    name), then the outcome by name: "... the source guest runs again (outcome of the
    abort: aborted)"."""
    if result.action == WATCH:
        return f"{result.reason} (outcome: {result.outcome.value})"
    return f"{result.reason} (outcome of the {result.action}: {result.outcome.value})"


# ---------------------------------------------------------------------- progress and result

class StepState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Step:
    key: str
    label: str
    state: StepState = StepState.PENDING
    started: float | None = None  # wall clock, comparable with QEMU's event timestamps
    finished: float | None = None
    detail: str = ""

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


class Outcome(enum.StrEnum):
    COMPLETED = "completed"  # source completed: the destination has taken over
    POSTCOPY = "postcopy-active"  # the destination runs, pages still follow
    FAILED = "failed"  # QEMU's migration failed after migrate-continue
    STOPPED = "stopped"  # not continued (a mirror failed, a check failed): abort is offered
    ABORTED = "aborted"  # migration cancelled, the source guest runs again
    OTHER_CLIENT = "other-client"  # another QMP client continued or cancelled it
    NOT_PAUSED = "not-paused"  # nothing to do in this migration status
    ERROR = "error"  # a QMP command failed or the monitor went away


@dataclass(frozen=True)
class SwitchoverResult:
    action: str  # Action.RESUME, Action.ABORT or WATCH
    outcome: Outcome
    reason: str  # one line
    downtime_ms: int | None = None  # query-migrate `downtime` after completion
    pause_ms: float | None = None  # QEMU timestamps: MIGRATION pre-switchover -> device
    abort_offered: bool = False
    source_running: bool | None = None
    destination_running: bool | None = None
    retry: bool = False  # the attempt changed nothing: the same action can be tried again

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.COMPLETED, Outcome.POSTCOPY, Outcome.ABORTED)

    @property
    def final(self) -> bool:
        """Nothing more can be done in this pause (otherwise abort is still possible)."""
        return self.outcome is not Outcome.STOPPED and not self.abort_offered and not self.retry


class PhaseFacts:
    """What follows from a switchover's phase alone, for the engine's switchover and a
    view's mirror of it alike."""

    phase: Phase

    @property
    def running(self) -> bool:
        return self.phase in ACTIVE

    @property
    def finished(self) -> bool:
        """Nothing more can happen here (a STOPPED resume still offers abort)."""
        return self.phase in TERMINAL

    @property
    def can_abort(self) -> bool:
        return self.phase in ABORTABLE


class SwitchoverView(Protocol):
    """What the availability rules and the dialog read of a switchover: the engine's own
    (:class:`~migtui.workflow.switchover.Switchover`) or a view's mirror of it."""

    name: str
    phase: Phase
    result: SwitchoverResult | None
    attempt: SwitchoverResult | None  # the last action that changed nothing (it may be tried again)

    @property
    def action(self) -> str | None: ...  # read only: the engine's is an Action, a view's a str

    @property
    def running(self) -> bool: ...

    @property
    def can_abort(self) -> bool: ...

    @property
    def finished(self) -> bool: ...
