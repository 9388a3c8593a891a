"""ASCII for what a console font lacks (``TERM=linux``).

The Linux console's fonts hold ASCII, the box-drawing lines and the block elements of
the PC character set, and little else: ``✓ ▸ ‖ … ╭ ▏ · ÷`` come out as a diamond or
nothing. One filter on everything drawn (Textual's own widgets included: the footer's
``▏``, the dialogs' round corners, "…" where a text is cut) puts one ASCII character in
each cell where such a glyph was, so nothing moves; whatever is neither in the table nor
in the font's set becomes ``?``, never a missing glyph.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

# One cell for one cell: the layout was made with the wide glyphs' widths.
ASCII = {
    "✓": "+", "✗": "x", "▸": ">", "‖": "|", "…": "~", "·": "-", "÷": "/", "–": "-", "—": "-",
    "≥": ">", "≤": "<", "\u00d7": "x", "µ": "u", "▏": "|", "▕": "|", "▔": "-", "▁": "_",
    "╭": "┌", "╮": "┐", "╰": "└", "╯": "┘", "→": ">", "←": "<", "↑": "^", "↓": "v", "•": "*",
    "▲": "^", "▼": "v", "≈": "~", "°": "o",
}

# What a console font has besides ASCII: the PC set's lines and blocks.
FONT = frozenset("─│┌┐└┘├┤┬┴┼═║╔╗╚╝╠╣╦╩╬━┃┏┓┗┛┣┫┳┻╋█▀▄▌▐░▒▓■")

_TABLE = str.maketrans(ASCII)


def console_text(text: str) -> str:
    """``text`` as the console font can draw it, cell for cell."""
    if text.isascii():
        return text
    text = text.translate(_TABLE)
    if all(c.isascii() or c in FONT for c in text):
        return text
    return "".join(c if c.isascii() or c in FONT else "?" * cell_len(c) for c in text)


class ConsoleGlyphs(LineFilter):
    """The Linux console's filter: every segment's text through ``console_text``."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [segment if control or text.isascii() else Segment(console_text(text), style, control)
                for segment in segments
                for text, style, control in (segment,)]
