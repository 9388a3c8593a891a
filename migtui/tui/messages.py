"""Messages between the app and its screens.

The app turns session callbacks into :class:`SessionsChanged` (bursts coalesced into
one message) and posts it to every screen on the stack, so a dialog pushed over the
dashboard (issue 4: the pre-switchover dialog) sees the same updates.
"""

from __future__ import annotations

from collections.abc import Mapping

from textual.message import Message

from ..workflow.session import MonitorSession

# The title of the notice a key gives when its action does not apply now (one at a time).
NOT_AVAILABLE = "Not available"


class SessionsChanged(Message):
    """Some sessions changed; ``changes`` maps session name -> kinds (see workflow.session)."""

    bubble = False  # posted to each screen itself; the app already knows

    def __init__(self, sessions: Mapping[str, MonitorSession], changes: Mapping[str, frozenset[str]]) -> None:
        super().__init__()
        self.sessions = sessions
        self.changes = changes

    def kinds(self, name: str) -> frozenset[str]:
        return self.changes.get(name, frozenset())
