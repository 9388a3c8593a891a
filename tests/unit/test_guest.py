"""The lab's boot sector: shipped bytes match guest.S, and patching the range."""

from __future__ import annotations

import struct

import pytest

from migtui.errors import LabError
from migtui.lab import build_guest
from migtui.lab.guest import (
    MAGIC,
    PATCH_OFFSET,
    PIT_HZ,
    MiB,
    guest_image,
    read_patch,
    shipped_image,
)


def test_shipped_image_is_a_boot_sector() -> None:
    data = build_guest.BINARY.read_bytes()
    assert len(data) == 512
    assert data[510:] == b"\x55\xaa"
    assert data[PATCH_OFFSET : PATCH_OFFSET + 4] == MAGIC
    assert read_patch(data) == (1 * MiB, 17 * MiB, 0)


@pytest.mark.skipif(not build_guest.have_tools(), reason="binutils (as, ld, objcopy) not installed")
def test_rebuilding_reproduces_guest_bin() -> None:
    assert build_guest.build(build_guest.SOURCE) == build_guest.BINARY.read_bytes(), (
        "guest.bin is stale: run python -m migtui.lab.build_guest"
    )


def test_patching_changes_only_the_patch_block() -> None:
    shipped = shipped_image()
    image = guest_image(8, start_mib=2)
    assert len(image) == 512 and image[510:] == b"\x55\xaa"
    assert read_patch(image) == (2 * MiB, 10 * MiB, 0)
    block = slice(PATCH_OFFSET + 4, PATCH_OFFSET + 16)
    assert image[: block.start] == shipped[: block.start]
    assert image[block.stop :] == shipped[block.stop :]
    assert struct.unpack_from("<II", image, PATCH_OFFSET + 4) == (2 * MiB, 10 * MiB)


def test_rate_becomes_pit_ticks_per_page() -> None:
    _, _, ticks = read_patch(guest_image(16, rate_mib_s=1.0))
    assert ticks == round(PIT_HZ / 256)  # 256 pages per MiB
    assert read_patch(guest_image(16, rate_mib_s=0))[2] == 0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(dirty_mib=0), "at least 1 MiB"),
        (dict(dirty_mib=4, start_mib=0), "start at 1 MiB"),
        (dict(dirty_mib=64, memory_mib=64), "--memory 64"),
        (dict(dirty_mib=4000), "3 GiB"),
        (dict(dirty_mib=4, rate_mib_s=-1), "--dirty-rate"),
    ],
)
def test_bad_ranges_are_one_line_errors(kwargs: dict, words: str) -> None:
    with pytest.raises(LabError) as info:
        guest_image(**kwargs)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_the_dirty_ring_goes_on_kvms_accel_option_and_is_checked() -> None:
    from pathlib import Path

    from migtui.lab.qemu import check_dirty_ring, qemu_argv

    def accels(**kwargs: object) -> list[str]:
        argv = qemu_argv("qemu", memory_mib=64, boot_path=Path("b"), serial_path=Path("s"), monitors=[],
                         disk_path=None, incoming=False, **kwargs)  # type: ignore[arg-type]
        return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-accel"]

    assert accels() == ["kvm", "tcg"]
    assert accels(dirty_ring=4096) == ["kvm,dirty-ring-size=4096", "tcg"]  # auto: TCG (no ring) if KVM fails
    assert accels(accel="kvm", dirty_ring=1024) == ["kvm,dirty-ring-size=1024"]
    check_dirty_ring(0, "tcg")
    check_dirty_ring(65536, "auto")
    for entries, accel, words in ((4000, "kvm", "power of two"), (512, "kvm", "from 1024"),
                                  (131072, "auto", "to 65536"), (4096, "tcg", "drop --accel tcg")):
        with pytest.raises(LabError, match=words):
            check_dirty_ring(entries, accel)
