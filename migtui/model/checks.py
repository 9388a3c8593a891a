"""A checklist's values: each check's verdict and detail, and the list they make. Pure.

``workflow/checklist.py`` works them out (in the engine); views show them as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    # Informational lines (RAM left, an unmonitored destination) never fail the list.
    info: bool = False


@dataclass(frozen=True)
class Checklist:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def reason(self) -> str:
        """One line naming what failed ("" when the list passed)."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failures)

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)
