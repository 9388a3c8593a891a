"""The two themes, and which one a terminal gets.

Colour means one thing everywhere: red ($error) is failure and abort, yellow ($warning)
asks for attention, green ($success) is done or well, and a normal state has no colour.

* 256 colours and more: ``migtui-dark``, Textual's dark theme with a brighter red and
  blue (its colours map well to 256 colours).
* 16 colours (``TERM=xterm``, ``TERM=linux``, ``TERM=screen``): ``migtui-ansi``, the
  terminal's own ANSI colours. Textual would otherwise map each RGB colour to the nearest
  of a standard palette, and its orange warning and accent both land on bright red: normal
  states, the footer keys and the pause dialog all read as failures.

Separators are ``$foreground 45%``: a grey that keeps 3:1 against the background in 256
colours and under NO_COLOR (Textual's $panel there is colour 17 on 233, 1.04:1); with ANSI
colours the alpha is dropped and they are the terminal's default foreground.
tests/unit/test_contrast.py computes the WCAG ratios of these pairs in every palette.
"""

from __future__ import annotations

import io

from rich.console import Console
from textual import constants
from textual.theme import Theme

DARK = "migtui-dark"
ANSI = "migtui-ansi"
SEPARATOR_ALPHA = 0.45  # app.tcss: the separators are `$foreground 45%`

# Textual's dark theme with a brighter red and blue: its own are 3.4:1 and 4.1:1 on its
# background, and under NO_COLOR its red turns a grey of 2.7:1.
MIGTUI_DARK = Theme(
    name=DARK,
    primary="#3B9AE8",
    secondary="#5FA8D3",
    accent="#FFA62B",
    warning="#FFA62B",
    error="#F0506E",
    success="#4EBF71",
    foreground="#E0E0E0",
    panel="#2B2F36",  # the footer: a grey, where Textual's blue-grey is navy (17) in 256 colours
    dark=True,
)

MIGTUI_ANSI = Theme(
    name=ANSI,
    ansi=True,
    dark=True,
    # Bright red, yellow and magenta: plain red, brown-yellow and blue are under 4.5:1 on
    # black in the Linux console's VGA palette.
    primary="ansi_cyan",
    secondary="ansi_bright_magenta",
    warning="ansi_bright_yellow",
    error="ansi_bright_red",
    success="ansi_green",
    accent="ansi_cyan",
    foreground="ansi_default",
    background="ansi_default",
    surface="ansi_default",
    panel="ansi_default",
    boost="ansi_default",
    variables={
        "footer-key-foreground": "ansi_bright_cyan",
        "ansi-background": "ansi_black",
        "ansi-foreground": "ansi_white",
        "border-blurred": "ansi_black",
        "block-cursor-foreground": "ansi_black",
        "block-cursor-background": "ansi_white",
        "input-cursor-background": "ansi_black",
        "input-cursor-foreground": "ansi_bright_white",
        "input-cursor-text-style": "none",
        "input-selection-background": "ansi_bright_blue",
        "input-selection-foreground": "ansi_black",
        "screen-selection-background": "ansi_bright_blue",
        "screen-selection-foreground": "ansi_black",
    },
)


def colour_system(term: str, colorterm: str = "") -> str | None:
    """"standard" (16 colours), "256", "truecolor" or None, as Rich decides it for the
    console Textual draws on (``TEXTUAL_COLOR_SYSTEM`` wins, as in Textual)."""
    environ = {"TERM": term, "COLORTERM": colorterm}
    console = Console(color_system=constants.COLOR_SYSTEM,  # type: ignore[arg-type]  # Textual passes it so
                      force_terminal=True, file=io.StringIO(), _environ=environ)
    return console.color_system


def theme_for(colours: str | None) -> str:
    """The theme for a terminal of ``colours`` (``colour_system``'s answer)."""
    return ANSI if colours in ("standard", "windows", None) else DARK
