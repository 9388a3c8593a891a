"""Lines with a hanging indent: a head ("✓ mirror-data0  ", "y  ") and a body that wraps
under itself, so a long reason stays readable in a narrow dialog.

An item with a third part, a tail ("2 ms"), is a row instead: one line whatever the
width, the tail right-aligned and the body cut with "…" if the two do not fit (a
list of steps stays one line each, its figures in one column)."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

Item = tuple[Content, Content] | tuple[Content, Content, Content]  # (head, body[, tail])
DEFAULT_WIDTH = 76  # until the first layout tells the real width


def hang(items: list[Item], width: int) -> Content:
    lines: list[Content] = []
    tails = max((item[2].cell_length for item in items if len(item) == 3), default=0)
    for item in items:
        if len(item) == 3:
            lines.append(row(*item, width, tail_width=tails))
            continue
        head, body = item[0], item[1]
        indent = head.cell_length
        wrapped = body.wrap(max(8, width - indent)) if body.plain else [Content("")]
        for i, line in enumerate(wrapped):
            lines.append((head if i == 0 else Content(" " * indent)) + line.rstrip())
    return Content("\n").join(lines)


def row(head: Content, body: Content, tail: Content, width: int, *, tail_width: int = 0) -> Content:
    """``head body ... tail`` on one line of ``width`` cells; the body gives way first, and
    leaves room for a column of ``tail_width`` (the widest tail of its list) plus a gap."""
    room = max(1, width - head.cell_length - max(tail.cell_length, tail_width) - 2)
    body = body.truncate(room, ellipsis=True) if body.cell_length > room else body
    gap = max(1, width - head.cell_length - body.cell_length - tail.cell_length)
    return head + body + Content(" " * gap) + tail


def same_items(a: list[Item], b: list[Item]) -> bool:
    """Text *and* style alike: ``Content ==`` compares the text only, and a key whose line
    keeps its words but turns muted (no longer available) must still be redrawn."""
    return len(a) == len(b) and all(
        len(x) == len(y) and all(p.is_same(q) for p, q in zip(x, y, strict=True)) for x, y in zip(a, b, strict=True)
    )


class HangingLines(Widget):
    """Items wrapped to the width the widget has when it is laid out and drawn.

    The height is computed from the items at the width the layout offers
    (``get_content_height``), never from a wrap made at an earlier width: after many
    quick resizes a dialog keeps no blank rows and cuts no line."""

    DEFAULT_CSS = """
    HangingLines { height: auto; text-wrap: nowrap; text-overflow: clip; }
    """

    def __init__(self, items: list[Item] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._items: list[Item] = list(items or [])
        self._wrapped: tuple[int, Content] | None = None  # (width, the items wrapped to it)

    @property
    def items(self) -> list[Item]:
        return self._items

    @property
    def plain(self) -> str:
        """The items as text, a row's tail after one space (whatever the width)."""
        return "\n".join(item[0].plain + " ".join(part.plain for part in item[1:]) for item in self._items)

    @property
    def content(self) -> Content:
        """The items as drawn at the current width."""
        return self._at(self.content_region.width or DEFAULT_WIDTH)

    @property
    def shown(self) -> list[str]:
        """The lines as drawn at the current width."""
        return self.content.plain.split("\n")

    def set_items(self, items: list[Item]) -> None:
        if same_items(items, self._items):
            return
        self._items = list(items)
        self._wrapped = None
        self.refresh(layout=True)

    def _at(self, width: int) -> Content:
        if self._wrapped is None or self._wrapped[0] != width:
            self._wrapped = (width, hang(self._items, width) if self._items else Content(""))
        return self._wrapped[1]

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return container.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self._at(width or DEFAULT_WIDTH).plain.count("\n") + 1

    def render(self) -> Content:
        return self.content
