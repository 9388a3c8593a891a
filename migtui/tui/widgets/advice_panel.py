"""The convergence advisor's word on the selected migration: verdict, why, and the remedies' keys.

``─Convergence: not converging──``, then the reason as the engine worded it (wrapped), then
one key per remedy, least invasive first (``1 max-bandwidth → 66 MiB/s  3 downtime-limit → 5 s
x abort``): each opens a confirmation that shows its expected effect and cost. A remedy
this view may not take now (read-only, not offered) is drawn dim. Where the engine runs a
convergence policy on this monitor (``--converge``, ``--completion-timeout``), one line says
what it does next and one what it did last, with why. Everything here is the engine's
(``convergence``, ``controls`` and ``converge-policy`` messages); this widget only lays it out.
"""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from ...model.advisor import (
    ABORT,
    BANDWIDTH,
    CONVERGING,
    DIRTY_LIMIT,
    DOWNTIME,
    NOT_CONVERGING,
    POSTCOPY,
    SWITCHOVER_BANDWIDTH,
    THROTTLE,
)
from ...view.remote import RemoteSession
from ..kept_lines import KeptLines
from ..lookup import one
from .text_line import TextLine

# The dashboard's key for each remedy (least invasive first) and abort.
KEYS = {BANDWIDTH: "1", SWITCHOVER_BANDWIDTH: "2", DOWNTIME: "3", THROTTLE: "4", DIRTY_LIMIT: "5", POSTCOPY: "6",
        ABORT: "x"}
# Short names for the keys' line (the confirmation says it in full).
SHORT = {BANDWIDTH: "bandwidth", SWITCHOVER_BANDWIDTH: "switchover bw", DOWNTIME: "downtime",
         THROTTLE: "throttle", DIRTY_LIMIT: "dirty limit"}
_TITLE_STYLES = {NOT_CONVERGING: "bold $error", CONVERGING: "$success"}


def title(session: RemoteSession) -> Content:
    advice = session.convergence.advice
    headline = advice.headline or advice.verdict
    return Content.assemble(("Convergence", "bold"), ": ", (headline, _TITLE_STYLES.get(advice.verdict, "$text-muted")))


def reason(session: RemoteSession) -> Content:
    advice = session.convergence.advice
    return Content(advice.reason) if advice.verdict != "unknown" else Content.styled(advice.reason, "$text-muted")


def keys_line(session: RemoteSession) -> Content:
    """``1 max-bandwidth → 66 MiB/s  3 downtime-limit → 5 s  x abort``: the remedies on offer."""
    advice = session.convergence.advice
    parts: list[Content] = []
    for remedy in advice.remedies:
        key = KEYS.get(remedy.action)
        if key is None:
            continue
        usable = session.control(remedy.action).allowed is True
        label = remedy.action if remedy.action in (ABORT, POSTCOPY) else f"{SHORT[remedy.action]} → {remedy.value}"
        parts.append(Content.assemble((key, "bold $accent" if usable else "$text-disabled"), " ",
                                      (label, "" if usable else "$text-disabled")))
    return Content("  ").join(parts)


def policy_line(session: RemoteSession) -> Content:
    """``policy steps 400 ms (pass 4), next 500 ms, then pause`` ("" without one)."""
    policy = session.converge_policy
    if not policy.active:
        return Content("")
    return Content.assemble(("policy", "bold $warning"), " ", policy.line)


def last_act(session: RemoteSession) -> Content:
    """``18:02:11 downtime-limit 300 ms → 400 ms: pass 4 not converging ...``: the policy's last act."""
    acts = session.converge_policy.acts
    if not acts:
        return Content("")
    act = acts[-1]
    return Content.assemble((datetime.fromtimestamp(act.at).strftime("%H:%M:%S"), "$text-muted"), " ", act.text)


class WrappedLine(TextLine):
    """A TextLine that wraps (the reason takes as many rows as it needs). While it shows one
    migration its height only grows: a reason whose figures move it between 3 and 4 rows
    would lay the whole screen out on every poll (~12 ms each, measured in the real view)
    and make the panels below jump; :meth:`release` gives the rows back, as does a new
    width (rows held at 40 columns are too many at 100)."""

    DEFAULT_CSS = """
    WrappedLine { text-wrap: wrap; text-overflow: fold; }
    """

    _held = 0  # rows kept (min-height) since the last release
    _held_width = 0  # the width they were measured at

    def set(self, content: Content | str, *, relayout: bool = True) -> bool:
        return super().set(content, relayout=relayout)

    def _rows_changed(self, old: Content, wrapped: tuple[int, int], new: Content, width: int) -> bool:
        if not width:
            return True
        rows = self._measure(new, width)
        if rows <= self._held:
            return False  # it fits in the rows held: repainted, nothing moves
        self._held, self._held_width = rows, width
        self.styles.min_height = rows
        return True

    def on_resize(self) -> None:
        if self._held and self.content_region.width != self._held_width:
            self.release()

    def release(self) -> None:
        """Take only the rows the text needs again (another migration, or another monitor, shown)."""
        if self._held:
            self._held = 0
            self.styles.min_height = None


class AdvicePanel(KeptLines, Vertical):
    DEFAULT_CSS = """
    AdvicePanel { height: auto; border: none; border-top: solid $foreground 45%; border-title-align: left;
                  border-title-color: $foreground; padding: 0; }
    AdvicePanel > .-empty { display: none; }
    """

    def compose(self) -> ComposeResult:
        yield WrappedLine(id="advice-reason")
        yield WrappedLine(id="advice-keys", classes="-empty")
        yield WrappedLine(id="advice-policy", classes="-empty")
        yield TextLine(id="advice-act", classes="-empty")

    _title: str | None = None
    _showing: tuple[str, str] | None = None  # the monitor and migration status the rows are held for

    def show(self, session: RemoteSession) -> None:
        showing = (session.name, session.state.migration_status)
        if showing != self._showing:
            self._showing = showing
            for wrapped in self.query(WrappedLine):
                wrapped.release()
        shown = title(session)
        if shown.markup != self._title:
            self._title = shown.markup
            self.border_title = shown
        one(self, "#advice-reason", WrappedLine).set(reason(session))
        for selector, content in (("#advice-keys", keys_line(session)), ("#advice-policy", policy_line(session)),
                                  ("#advice-act", last_act(session))):
            line = one(self, selector, TextLine)
            line.set_class(not content.plain, "-empty")
            line.set(content)  # a WrappedLine lays out again when its rows change
