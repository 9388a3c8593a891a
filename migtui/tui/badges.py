"""Coloured badges for migration status, run state and connection state.

Colours come from theme variables, so they follow the theme (``themes.py``: ANSI
colours in a 16-colour terminal); red is failure, yellow attention; badges are
reverse video so they still stand out under NO_COLOR.
While a monitor is not connected its migration status is only the last one seen:
that is said in words ("last: active", plain muted text), and the reverse-video
badge goes to the connection state instead, the thing that is true now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content

if TYPE_CHECKING:
    from ..model.vmstate import VmState

# MigrationStatus -> theme colour. Anything else (a newer QEMU) gets the default.
_MIGRATION = {
    "none": "$text-muted",
    "setup": "$primary",
    "active": "$primary",
    "device": "$primary",
    "wait-unplug": "$primary",
    "pre-switchover": "$warning",
    "cancelling": "$warning",
    "postcopy-active": "$secondary",
    "postcopy-paused": "$warning",
    "postcopy-recover-setup": "$secondary",
    "postcopy-recover": "$secondary",
    "colo": "$secondary",
    "completed": "$success",
    "cancelled": "$error",
    "failed": "$error",
}

_CONNECTION = {
    "connecting": "$text-muted",
    "connected": "$success",
    "retrying": "$warning",
    "lost": "$error",
    "closed": "$text-muted",
}


def migration_badge(status: str, *, stale: bool = False) -> Content:
    """`` active `` in reverse video, coloured by how worrying the status is.

    ``stale``: the monitor is not connected, so this is only the last status seen:
    ``last: active`` in muted text, no badge.
    """
    if stale:
        text = "migration status unknown" if status == "none" else f"last: {status}"
        return Content.styled(text, "$text-muted")
    colour = _MIGRATION.get(status, "$foreground")
    if status == "none":
        return Content.styled("no migration", colour)
    return Content.styled(f" {status} ", f"bold reverse {colour}")


def connection_colour(state: str, label: str, default: str = "") -> str:
    # Waiting for a socket nobody listens on yet (QEMU not started) is no failure: attention.
    return "$warning" if label.startswith("waiting") else _CONNECTION.get(state, default)


def connection_text(state: str, label: str) -> Content:
    """The transport's own label ("retrying 3", "waiting for the socket: ..."), coloured by state."""
    return Content.styled(label, connection_colour(state, label, ""))


def connection_badge(state: str, label: str) -> Content:
    """`` waiting `` / `` retrying 3 `` in reverse video: shown instead of a stale status."""
    return Content.styled(f" {label} ", f"bold reverse {connection_colour(state, label, '$foreground')}")


POLLS_FAILING = "poll error"  # connected, but its polls fail (a hung QEMU times out): figures stale


def polls_failing_badge() -> Content:
    """`` poll error `` in reverse video: connected, but nothing shown is current."""
    return Content.styled(f" {POLLS_FAILING} ", "bold reverse $warning")


ENGINE_SILENT = "engine silent"  # the view hears nothing from its engine (stopped, hung): all stale


def engine_silent_badge() -> Content:
    """`` engine silent `` in reverse video: the engine says nothing; nothing shown is current."""
    return Content.styled(f" {ENGINE_SILENT} ", "bold reverse $error")


def last_run_state_text(status: str | None) -> Content:
    """The run state last seen, muted: QEMU does not answer now."""
    return Content.styled(f"last: {status}", "$text-muted") if status else Content("")


# QEMU's run states that are part of a migration going as planned: no colour (colour is
# for what needs a look: yellow attention, red failure).
_NORMAL_RUN_STATES = frozenset({"inmigrate", "finish-migrate", "postmigrate", "prelaunch", "colo"})
_FAILED_RUN_STATES = frozenset({"internal-error", "io-error", "guest-panicked", "shutdown"})


def run_state_text(status: str | None) -> Content:
    if not status:
        return Content("")
    if status == "running":
        return Content.styled(status, "$success")
    if status in _FAILED_RUN_STATES:
        return Content.styled(status, "bold $error")
    if status in _NORMAL_RUN_STATES:
        return Content(status)
    return Content.styled(status, "$warning")  # paused, suspended, watchdog, debug...


def vm_state_parts(state: VmState) -> list[Content]:
    """QEMU's run state and "armed", as the list and the header both show them."""
    parts = []
    if state.run_state is not None:
        parts.append(run_state_text(state.run_state.status))
    if state.armed:
        parts.append(armed_text(True))
    return parts


def armed_text(armed: bool | None) -> Content:
    """Whether the source is armed (``VmState.armed``): the operator gates the switchover."""
    if armed:
        return Content.styled("armed", "bold $accent")
    return Content("")
