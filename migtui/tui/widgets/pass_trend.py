"""The pre-copy's trend, pass by pass: ``left at each sync ▇▇▆▅▃ 11 → 8.2 → 6.0 → 4.5 MiB``.

After the bulk copy the RAM bar's percentage says little: a migration that will never
converge sends the same 16 MiB of a 128 MiB guest again and again, and its bar swings
between 88 and 98 % as if almost done. From pass 2 on the migration panel shows this
instead: one column per pass, its height the RAM left at the sync that began it (against
the highest shown), then the last few figures -- as many as the width holds. The engine
decides the figures (its ``convergence`` message); this widget draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.content import Content

from ...model.advisor import CONVERGING, NOT_CONVERGING, PassPoint, mib
from ..repaint import DiffWidget

LABEL = "left at each sync "
BLOCKS = "▁▂▃▄▅▆▇█"
FIGURES = 4  # at most this many figures after the columns
_STYLES = {NOT_CONVERGING: "$error", CONVERGING: "$success"}


def trend_content(points: Sequence[PassPoint], verdict: str, width: int) -> Content:
    """The line for ``points`` (pass 2 on) in ``width`` cells."""
    known = [p for p in points if p.remaining is not None]
    if not known:
        return Content.styled("left at each sync: after the first sync", "$text-muted")
    label = LABEL if width >= 40 else ""
    for count in range(min(FIGURES, len(known)), 0, -1):
        figures = " → ".join(mib(p.remaining) for p in known[-count:]) + " MiB"
        room = width - len(label) - len(figures) - 1
        if room >= 3 or count == 1:
            break
    columns = known[-max(1, room):] if room > 0 else []
    top = max(p.remaining or 0 for p in columns) if columns else 0
    bars = "".join(BLOCKS[min(len(BLOCKS) - 1, round((p.remaining or 0) / top * (len(BLOCKS) - 1)))]
                   if top else BLOCKS[0] for p in columns)
    return Content.assemble((label, "bold"), (bars, _STYLES.get(verdict, "$primary")), " ", figures)


class PassTrend(DiffWidget):
    DEFAULT_CSS = """
    PassTrend { height: 1; width: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._points: tuple[PassPoint, ...] = ()
        self._verdict = ""

    def set(self, points: Sequence[PassPoint], verdict: str) -> bool:
        self._points = tuple(points)
        self._verdict = verdict
        return self.redraw()

    def _draw(self, width: int) -> Content:
        return trend_content(self._points, self._verdict, width)
