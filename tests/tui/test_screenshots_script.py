"""scripts/screenshots.py, which re-makes the README's screenshots, still runs.

It is run as the README says, on two of its six pictures (one from each of its labs:
the lost destination and the pre-switchover dialog), into a temporary directory; the
pictures must show what they are about: the screen's text is read back from the SVG
(monitor names, statuses, the dialog), and the PNG is the SVG at twice its size.
"""

from __future__ import annotations

import re
import shutil
import signal
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "screenshots.py"
SVG = "{http://www.w3.org/2000/svg}"
CELL_WIDTH = 12.2  # textual's SVG: one terminal cell

# A last resort only (the global 120 s is reachable on a loaded machine): the script
# waits on conditions and gives up by itself when one can no longer come.
pytestmark = [pytest.mark.qemu(one_build=True), pytest.mark.timeout(900)]


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate()
    except BaseException:  # the test was interrupted: the script stops its lab and engine on SIGINT
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def svg_screen(path: Path) -> list[str]:
    """The terminal's lines as the SVG draws them (each text run at its cell)."""
    rows: dict[int, dict[int, str]] = {}
    for text in ET.parse(path).getroot().iter(f"{SVG}text"):
        line = re.search(r"-line-(\d+)\)", text.get("clip-path", ""))
        if line is None:
            continue  # the window title
        cells = rows.setdefault(int(line.group(1)), {})
        column = round(float(text.get("x", "0")) / CELL_WIDTH)
        for i, char in enumerate((text.text or "").replace("\n", "").replace("\xa0", " ")):
            cells[column + i] = char
    return ["".join(cells.get(c, " ") for c in range(max(cells, default=-1) + 1)).rstrip()
            for cells in (rows.get(i, {}) for i in range(max(rows) + 1))]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def svg_size(path: Path) -> tuple[float, float]:
    _, _, width, height = (float(v) for v in ET.parse(path).getroot().get("viewBox", "").split())
    return width, height


def left_and_right(screen: list[str]) -> tuple[list[str], list[str]]:
    """The monitor list and the selected monitor's panels (split at the list's border)."""
    halves = [line.split("│", 1) if "│" in line else [line, ""] for line in screen]
    return [h[0].strip() for h in halves], [h[1].strip() for h in halves]


def test_the_screenshot_script_makes_pictures_of_real_migrations(tmp_path: Path, qemu_build: Any) -> None:
    if shutil.which("rsvg-convert") is None:
        pytest.fail("rsvg-convert is missing (the script's PNGs): apt-get install -y librsvg2-bin"
                    " (scripts/bootstrap does)", pytrace=False)
    done = run_script("--only", "lost,pre-switchover", "--out", str(tmp_path), "--qemu", qemu_build.path)
    assert done.returncode == 0, done.stdout + done.stderr
    version = qemu_build.version
    assert f"lab stuck up (QEMU {version}," in done.stdout, done.stdout  # the QEMU under test, both labs
    assert f"lab storage up (QEMU {version}," in done.stdout, done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lost.png", "lost.svg", "pre-switchover.png", "pre-switchover.svg"]

    for name, (columns, lines) in {"lost": (100, 30), "pre-switchover": (100, 30)}.items():
        svg, png = tmp_path / f"{name}.svg", tmp_path / f"{name}.png"
        screen = svg_screen(svg)
        assert len(screen) == lines and max(map(len, screen)) <= columns, "\n".join(screen)
        width, height = svg_size(svg)
        assert png_size(png) == (round(2 * width), round(2 * height))  # --zoom 2

    # The destination QEMU was killed mid-migration: its monitor waits for the socket,
    # its last status is marked as such, the source's migration failed.
    screen = svg_screen(tmp_path / "lost.svg")
    shown = "\n".join(screen)
    monitors, panels = left_and_right(screen)
    assert re.fullmatch(r"src\s+failed", monitors[0]), shown
    assert re.fullmatch(r"▸dst\s+waiting", monitors[2]) and monitors[3] == "last: active", shown
    assert re.match(r"dst · +waiting +· tries every 100 ms · QEMU " + re.escape(version), panels[0]), shown
    assert "nothing is listening on" in shown and "last: active" in panels, shown
    assert any(re.search(r"MIGRATION status=active$", p) for p in panels), shown  # its events kept

    # QEMU paused before switchover: the banner pointing to the dialog, the dialog with its clock and a green
    # checklist, the monitors behind it.
    screen = svg_screen(tmp_path / "pre-switchover.svg")
    shown = "\n".join(screen)
    monitors, _ = left_and_right(screen)
    assert re.fullmatch(r"▸src\s+pre-switchover", monitors[0]), shown
    assert re.fullmatch(r"dst\s+active", monitors[2]), shown
    assert "‖ src STOPPED · see the dialog" in shown, shown  # one clock: the dialog's
    assert re.search(r"╭─ src: paused before switchover ─+╮", shown), shown
    assert re.search(r"│ Guest stopped \d+(\.\d s| ms) · all of it counts as downtime", shown), shown
    assert "Checklist  all green" in shown and "✓ mirror mirror-data0" in shown, shown
    assert "deadline" in shown, shown  # the engine's word on the pause: a view of the engine
    assert "y  Resume switchover" in shown, shown
