"""The selected monitor's identity line: name, connection, run state, armed, QEMU.

A second line appears only for trouble: the connection error or the last failed poll,
wrapped so it can be read in full.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from ...format import format_duration
from ...protocol.messages import Pause
from ...transport import ConnState
from ...view.remote import RemoteSession
from .. import badges
from ..kept_lines import KeptLines
from ..lookup import one
from .text_line import TextLine

SEP = Content.styled(" · ", "$text-muted")


def identity_text(session: RemoteSession) -> Content:
    state = session.state
    status = session.status
    state_word = status.word()
    connected = status.state is ConnState.CONNECTED
    parts = [Content.styled(session.name, "bold")]
    if session.engine_silent:  # nothing below is current: the engine's last word
        parts.append(badges.engine_silent_badge())
        parts.append(Content.styled(f"last: {state_word}", "$text-muted"))
        if state.run_state is not None:
            parts.append(badges.last_run_state_text(state.run_state.status))
        return SEP.join(parts)
    # Not connected: the one thing that is true now, so it stands out.
    parts.append(badges.connection_text(status.state.value, state_word) if connected
                 else badges.connection_badge(status.state.value, state_word))
    if not connected and status.retry_s is not None:  # how soon it will know: the engine tries again
        parts.append(Content.styled(f"tries every {format_duration(status.retry_s)}", "$text-muted"))
    if connected and session.poll_error:  # a hung QEMU: the last figures, marked as such
        parts.append(badges.polls_failing_badge())
        if state.run_state is not None:
            parts.append(badges.last_run_state_text(state.run_state.status))
    elif connected:
        parts += badges.vm_state_parts(state)
    parts += policy_parts(session.pause)
    if session.read_only:
        parts.append(Content.styled("read-only", "$text-muted"))
    if session.qemu_version:
        parts.append(Content.styled(f"QEMU {session.qemu_version}", "$text-muted"))
    if session.address_display is not None:
        parts.append(Content.styled(session.address_display, "$text-muted"))
    return SEP.join(parts)


def policy_parts(pause: Pause) -> list[Content]:
    """The engine's policy for this monitor, shown in every view: auto-resume, and who
    drives its pauses when it is not migtui (libvirt: the engine only watches)."""
    parts = []
    if pause.owner == "libvirt":
        parts.append(Content.styled("libvirt drives it", "bold $warning"))
    elif pause.auto:
        parts.append(Content.styled("auto-resume", "bold $accent"))
    return parts


def trouble_text(session: RemoteSession) -> Content:
    """The engine's silence, the connection error or the last failed poll, in full; empty
    when all is well."""
    silence = session.engine_silence
    if silence is not None:
        return Content.styled(silence, "$error")
    status = session.status
    if status.state is not ConnState.CONNECTED and status.error is not None:
        return Content.styled(str(status.error), badges.connection_colour(status.state.value, status.word(), "$error"))
    if session.poll_error:
        return Content.styled(session.poll_error, "$warning")
    return Content("")


class MonitorHeader(KeptLines, Vertical):
    """One line that never wraps (the identity), and one that does (the trouble)."""

    DEFAULT_CSS = """
    MonitorHeader { height: auto; }
    MonitorHeader > #header-trouble { text-wrap: wrap; text-overflow: fold; }
    MonitorHeader > #header-trouble.-empty { display: none; }
    """

    def compose(self) -> ComposeResult:
        yield TextLine(id="header-identity")
        yield TextLine(id="header-trouble", classes="-empty")

    @property
    def shown(self) -> Content:
        return Content("\n").join(
            line.shown for line in self.query(TextLine) if line.shown.plain
        )

    def show(self, session: RemoteSession) -> None:
        # relayout: at 120x40 the line wraps (the full address), and its height may change
        one(self, "#header-identity", TextLine).set(identity_text(session), relayout=True)
        trouble = trouble_text(session)
        line = one(self, "#header-trouble", TextLine)
        line.set_class(not trouble.plain, "-empty")
        line.set(trouble, relayout=True)
