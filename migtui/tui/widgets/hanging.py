"""Lines with a hanging indent: a head ("✓ mirror-data0  ", "y  ") and a body that wraps
under itself, so a long reason stays readable in a narrow dialog."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

Item = tuple[Content, Content]  # (head, body)
DEFAULT_WIDTH = 76  # until the first layout tells the real width


def hang(items: list[Item], width: int) -> Content:
    lines: list[Content] = []
    for head, body in items:
        indent = head.cell_length
        wrapped = body.wrap(max(8, width - indent)) if body.plain else [Content("")]
        for i, line in enumerate(wrapped):
            lines.append((head if i == 0 else Content(" " * indent)) + line.rstrip())
    return Content("\n").join(lines)


class HangingLines(Static):
    """A Static fed with items; re-wraps when its width changes."""

    def __init__(self, items: list[Item] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._items: list[Item] = list(items or [])
        self._width = 0

    @property
    def items(self) -> list[Item]:
        return self._items

    @property
    def plain(self) -> str:
        return "\n".join((head + body).plain for head, body in self._items)

    def set_items(self, items: list[Item]) -> None:
        if items == self._items:
            return
        self._items = list(items)
        self._show()

    def on_resize(self) -> None:
        if self.content_region.width != self._width:
            self._show()

    def _show(self) -> None:
        self._width = self.content_region.width
        self.update(hang(self._items, self._width or DEFAULT_WIDTH))
