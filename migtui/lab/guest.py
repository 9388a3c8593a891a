"""The lab guest image: the shipped boot sector with its dirty range patched in.

The patch block sits at PATCH_OFFSET in guest.bin: the magic "MTDR" followed by
three little-endian dwords (start address, end address, PIT ticks per page).
See guest.S for what the guest does with them.
"""

from __future__ import annotations

import struct
from importlib import resources

from migtui.errors import LabError

MiB = 1 << 20
PAGE = 4096
SECTOR = 512
PATCH_OFFSET = 0x1A0
MAGIC = b"MTDR"
PIT_HZ = 1_193_182
# The guest runs 32-bit with flat segments; the pc machine keeps RAM below
# 3 GiB contiguous whatever -m says, so the range must end there.
MAX_END_MIB = 3072


def shipped_image() -> bytes:
    data = resources.files("migtui.lab").joinpath("guest.bin").read_bytes()
    if len(data) != SECTOR or data[PATCH_OFFSET : PATCH_OFFSET + 4] != MAGIC:
        raise LabError("migtui/lab/guest.bin is damaged: rebuild it with python -m migtui.lab.build_guest")
    return data


def ticks_per_page(rate_mib_s: float | None) -> int:
    """PIT ticks between two page writes for a dirty rate in MiB/s (0: unpaced)."""
    if not rate_mib_s:
        return 0
    if rate_mib_s < 0:
        raise LabError(f"--dirty-rate must be 0 (unpaced) or more, not {rate_mib_s:g} MiB/s")
    pages_per_s = rate_mib_s * MiB / PAGE
    return max(1, round(PIT_HZ / pages_per_s))


def guest_image(dirty_mib: int, start_mib: int = 1, *, rate_mib_s: float | None = None,
                memory_mib: int | None = None) -> bytes:
    """The boot sector dirtying [start_mib, start_mib + dirty_mib) MiB.

    ``rate_mib_s`` paces the guest to about that many MiB of pages per second
    (None or 0: as fast as the vCPU goes). ``memory_mib`` checks the range fits.
    """
    if dirty_mib < 1:
        raise LabError(f"--dirty must be at least 1 MiB, not {dirty_mib}")
    if start_mib < 1:
        raise LabError("the dirty range must start at 1 MiB or above (the boot sector and BIOS live below), "
                       f"not {start_mib}")
    end_mib = start_mib + dirty_mib
    limit = min(memory_mib, MAX_END_MIB) if memory_mib is not None else MAX_END_MIB
    if end_mib > limit:
        where = f"--memory {memory_mib} MiB" if memory_mib is not None and memory_mib <= MAX_END_MIB else "3 GiB"
        raise LabError(
            f"dirty range {start_mib}-{end_mib} MiB does not fit in {where}: "
            f"use --dirty {max(limit - start_mib, 0)} or less, or a larger --memory"
        )
    block = MAGIC + struct.pack("<III", start_mib * MiB, end_mib * MiB, ticks_per_page(rate_mib_s))
    data = bytearray(shipped_image())
    data[PATCH_OFFSET : PATCH_OFFSET + len(block)] = block
    return bytes(data)


def read_patch(image: bytes) -> tuple[int, int, int]:
    """(start, end, ticks_per_page) as patched into an image."""
    if image[PATCH_OFFSET : PATCH_OFFSET + 4] != MAGIC:
        raise LabError("not a migtui lab guest image (no MTDR block)")
    return struct.unpack_from("<III", image, PATCH_OFFSET + 4)
