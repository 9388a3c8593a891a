"""The textual floor: pyproject.toml declares the oldest textual the app works with,
constraints/floor.txt pins the test environment to it, and both cover what the app uses.

With MIGTUI_FLOOR_CHECK=1 (an environment installed with ``-c constraints/floor.txt``)
the installed textual must be the floor itself, so the suite really ran against it."""

from __future__ import annotations

import os
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]

# What the app uses -> the first textual that has it. A new use of a newer feature
# goes here, and the floor follows.
NEEDS = {
    "ANSI themes, App(ansi_color=...) (16-colour terminals, migtui/tui/themes.py)": Version("8.2.5"),
    "screen breakpoints (HORIZONTAL_BREAKPOINTS, migtui/tui/screens/dashboard.py)": Version("3.2.0"),
}


def declared_floor() -> Version:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if Requirement(d).name == "textual"]
    floors = [Version(s.version) for s in req.specifier if s.operator == ">="]
    assert len(floors) == 1, f"textual needs exactly one >= floor in pyproject.toml: {req}"
    return floors[0]


def pinned_floor() -> Version:
    pins = re.findall(r"^textual==(\S+)$", (ROOT / "constraints" / "floor.txt").read_text(), re.M)
    assert len(pins) == 1, "constraints/floor.txt must pin textual once"
    return Version(pins[0])


def test_the_declared_floor_covers_what_the_app_uses() -> None:
    floor = declared_floor()
    too_new = [what for what, since in NEEDS.items() if since > floor]
    assert not too_new, f"textual>={floor} lacks: {too_new}"
    assert pinned_floor() == floor, "constraints/floor.txt and pyproject.toml disagree"


def test_the_installed_textual_has_what_the_app_uses() -> None:
    import inspect

    from textual.app import App
    from textual.screen import Screen

    from migtui.tui.screens.dashboard import DashboardScreen
    from migtui.tui.themes import MIGTUI_ANSI, MIGTUI_DARK

    for theme in (MIGTUI_ANSI, MIGTUI_DARK):  # every variable Textual's own CSS asks for
        assert theme.to_color_system().generate(), f"textual {version('textual')}"
    assert MIGTUI_ANSI.ansi and "ansi_color" in inspect.signature(App).parameters
    assert "HORIZONTAL_BREAKPOINTS" in vars(Screen) and "VERTICAL_BREAKPOINTS" in vars(Screen)
    assert DashboardScreen.HORIZONTAL_BREAKPOINTS and DashboardScreen.VERTICAL_BREAKPOINTS


def test_the_installed_textual_is_the_floor_or_newer() -> None:
    installed, floor = Version(version("textual")), declared_floor()
    assert installed >= floor, f"textual {installed} is older than the declared floor {floor}"
    if os.environ.get("MIGTUI_FLOOR_CHECK") == "1":
        assert installed == floor, f"MIGTUI_FLOOR_CHECK=1: textual {installed} installed, the floor is {floor}"
