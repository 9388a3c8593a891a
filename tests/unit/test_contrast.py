"""Every colour pair the themes draw, as WCAG contrast ratios, in every palette they meet.

A pair is (foreground, background) from the theme's variables, as ``migtui/tui/themes.py``
and app.tcss use them. Palettes: RGB as is; RGB mapped to 256 colours as Rich does it for
a 256-colour terminal; RGB in greys as Textual's NO_COLOR filter does it; the ANSI theme's
16 colours in the Linux console's VGA palette and in xterm's default one (the terminal
draws ANSI colours, so both are checked). Text needs 4.5:1 (WCAG AA), a separator 3:1
(WCAG's non-text contrast); under NO_COLOR coloured text keeps 3:1 (its meaning is also in
a word or a symbol, never in the colour alone).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.color import Color as RichColor
from rich.color import ColorSystem
from textual.color import Color
from textual.theme import BUILTIN_THEMES, Theme

from migtui.tui import themes
from migtui.tui.themes import MIGTUI_ANSI, MIGTUI_DARK, SEPARATOR_ALPHA

RGB = tuple[int, int, int]

# The Linux console's palette (drivers/tty/vt/vt.c default_red/grn/blu) and xterm's.
VGA = [(0, 0, 0), (170, 0, 0), (0, 170, 0), (170, 85, 0), (0, 0, 170), (170, 0, 170), (0, 170, 170),
       (170, 170, 170), (85, 85, 85), (255, 85, 85), (85, 255, 85), (255, 255, 85), (85, 85, 255),
       (255, 85, 255), (85, 255, 255), (255, 255, 255)]
XTERM = [(0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205),
         (229, 229, 229), (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255),
         (255, 0, 255), (0, 255, 255), (255, 255, 255)]

TEXT = ("foreground", "warning", "error", "success", "primary", "accent", "secondary")


def luminance(rgb: RGB) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def ratio(a: RGB, b: RGB) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_ratio_is_wcag() -> None:
    assert ratio((255, 255, 255), (0, 0, 0)) == pytest.approx(21)
    assert ratio((0, 0, 95), (18, 18, 18)) == pytest.approx(1.04, abs=0.01)  # the colour 17 on 233


def variables(theme: Theme) -> dict[str, str]:
    return theme.to_color_system().generate()


def rgb(value: str) -> RGB:
    c = Color.parse(value)
    return c.r, c.g, c.b


def eight_bit(colour: RGB) -> RGB:
    t = RichColor.from_rgb(*colour).downgrade(ColorSystem.EIGHT_BIT).get_truecolor()
    return t.red, t.green, t.blue


def grey(colour: RGB) -> RGB:
    m = Color(*colour).monochrome
    return m.r, m.g, m.b


RGB_PALETTES: dict[str, Callable[[RGB], RGB]] = {"truecolor": lambda c: c, "256": eight_bit, "no-color": grey}


def rgb_pairs(theme: Theme) -> dict[str, tuple[RGB, RGB, float]]:
    """name -> (foreground, background, the ratio it needs) of a theme in RGB."""
    v = variables(theme)
    bg = rgb(v["background"])
    pairs = {name: (rgb(v[name]), bg, 4.5) for name in TEXT}
    fg = Color.parse(v["foreground"])
    sep = Color.parse(v["background"]).blend(fg, SEPARATOR_ALPHA)
    pairs["separator"] = ((sep.r, sep.g, sep.b), bg, 3.0)
    pairs["footer key"] = (rgb(v["footer-key-foreground"]), rgb(v["footer-background"]), 4.5)
    pairs["footer text"] = (rgb(v["foreground"]), rgb(v["footer-background"]), 4.5)
    pairs["dialog border"] = (rgb(v["warning"]), rgb(v["surface"]), 3.0)
    pairs["dialog text"] = (rgb(v["foreground"]), rgb(v["surface"]), 4.5)
    return pairs


@pytest.mark.parametrize("palette", list(RGB_PALETTES))
def test_rgb_theme(palette: str) -> None:
    convert = RGB_PALETTES[palette]
    low = {}
    for name, (fg, bg, needs) in rgb_pairs(MIGTUI_DARK).items():
        if palette == "no-color" and name in TEXT[1:]:
            needs = 3.0
        got = ratio(convert(fg), convert(bg))
        if got < needs:
            low[name] = round(got, 2)
    assert not low, f"{palette}: below the ratio they need: {low}"


def test_textual_panel_was_the_problem() -> None:
    """What the issue measured: Textual's $panel as a separator, 1.04:1 in 256 colours."""
    v = variables(BUILTIN_THEMES["textual-dark"])
    assert ratio(eight_bit(rgb(v["panel"])), eight_bit(rgb(v["background"]))) < 1.1


def ansi(value: str, palette: list[RGB], default: int) -> RGB:
    """An ANSI theme colour in a palette; ``default``: the palette index of the terminal's default."""
    c = Color.parse(value.split()[0])
    assert c.ansi is not None, value
    return palette[default if c.ansi < 0 else c.ansi]


@pytest.mark.parametrize("palette", [VGA, XTERM], ids=["vga", "xterm"])
def test_ansi_theme(palette: list[RGB]) -> None:
    v = variables(MIGTUI_ANSI)
    bg = ansi(v["background"], palette, 0)
    fg_index = 7  # a dark terminal: light grey on black

    def colour(name: str) -> RGB:
        return ansi(v[name], palette, fg_index)

    low = {name: round(ratio(colour(name), bg), 2) for name in (*TEXT, "footer-key-foreground")
           if ratio(colour(name), bg) < 4.5}
    assert not low, f"below 4.5:1 on black: {low}"
    # Red is failure and abort only; attention is another colour again.
    meanings = [v[name] for name in ("warning", "error", "success", "accent")]
    assert len(set(meanings)) == len(meanings), meanings
    assert v["error"] not in (v["footer-key-foreground"], v["primary"], v["secondary"])


def test_the_stylesheet_draws_separators_so() -> None:
    tcss = (Path(themes.__file__).parent / "app.tcss").read_text()
    separators = re.findall(r"border-(?:top|right): solid ([^;]+);", tcss)
    assert separators and set(separators) == {f"$foreground {round(SEPARATOR_ALPHA * 100)}%"}
