"""Shared fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from migtui.lab.lab import Lab


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    """A started real QEMU pair: 64 MiB guests dirtying 4 MiB as fast as they can
    (a plain migration completes in well under a second), with a 16 MiB data
    disk. Both QEMUs stop and the lab's private directory goes at teardown."""
    async with Lab(memory_mib=64, dirty_mib=4, disk_mib=16) as started:
        yield started



def pytest_runtest_setup(item: pytest.Item) -> None:
    """Real-QEMU tests never skip quietly: without QEMU they fail, saying what to install."""
    if item.get_closest_marker("qemu") is None:
        return
    import shutil

    missing = [b for b in ("qemu-system-x86_64", "qemu-img") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: apt-get install -y qemu-system-x86 qemu-utils",
                    pytrace=False)
