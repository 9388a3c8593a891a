"""Assemble guest.S into the 512-byte boot sector shipped as guest.bin.

``python -m migtui.lab.build_guest`` rewrites guest.bin next to this file. The
build is deterministic (no timestamps reach the flat binary), so a test can
check that the shipped bytes match the source.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from migtui.errors import LabError

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "guest.S"
BINARY = HERE / "guest.bin"
TOOLS = ("as", "ld", "objcopy")


def have_tools() -> bool:
    return all(shutil.which(tool) for tool in TOOLS)


def build(source_path: Path | str = SOURCE) -> bytes:
    """Assemble and link at 0x7c00; return the raw .text (exactly 512 bytes)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"{', '.join(missing)} not found: install binutils (apt-get install -y binutils)")
    with tempfile.TemporaryDirectory(prefix="migtui-guest-") as tmp:
        obj, elf, out = (Path(tmp) / name for name in ("guest.o", "guest.elf", "guest.bin"))
        steps = [
            ["as", "--32", str(source_path), "-o", str(obj)],
            ["ld", "-m", "elf_i386", "-Ttext", "0x7c00", "-e", "start", str(obj), "-o", str(elf)],
            # Only .text: notes some toolchains add would otherwise land in the image.
            ["objcopy", "-O", "binary", "-j", ".text", str(elf), str(out)],
        ]
        for argv in steps:
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode != 0:
                detail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise LabError(f"{argv[0]} failed building the lab guest: {detail}")
        data = out.read_bytes()
    if len(data) != 512 or data[510:] != b"\x55\xaa":
        raise LabError(f"lab guest is {len(data)} bytes, not a 512-byte boot sector")
    return data


def main() -> int:
    data = build(SOURCE)
    BINARY.write_bytes(data)
    print(f"wrote {BINARY} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
