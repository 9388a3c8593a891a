"""A node's widgets, found once.

The panels repaint on every poll, and Textual's ``query_one`` walks and matches the
whole subtree each time: a tenth of a watching view's CPU went there. The widgets a
panel composes live as long as it does, so the first answer is kept; one that was
removed since (no parent any more) is looked up again.
"""

from __future__ import annotations

from typing import TypeVar, overload

from textual.dom import DOMNode
from textual.widget import Widget

W = TypeVar("W", bound=Widget)

_CACHE = "_migtui_found"


@overload
def one(node: DOMNode, selector: type[W]) -> W: ...


@overload
def one(node: DOMNode, selector: str, expect: type[W]) -> W: ...


def one(node: DOMNode, selector: str | type[W], expect: type[W] | None = None) -> W:
    """``node.query_one(selector, expect)``, from the node's own cache while that widget is there."""
    found: dict[tuple[str | type[W], type[W] | None], W] = node.__dict__.setdefault(_CACHE, {})
    key = (selector, expect)
    widget = found.get(key)
    if widget is None or widget.parent is None:
        if isinstance(selector, str):
            assert expect is not None
            widget = node.query_one(selector, expect)
        else:
            widget = node.query_one(selector)
        found[key] = widget
    return widget
