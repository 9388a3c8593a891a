"""`query-migrate-capabilities` as a read-only mapping name -> enabled."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from migtui.model.coerce import opt_bool, opt_str


class Capabilities(Mapping[str, bool]):
    """What this QEMU lists (`supports`) and what is switched on (`enabled`)."""

    __slots__ = ("_caps",)

    def __init__(self, caps: Mapping[str, bool] | None = None) -> None:
        self._caps: dict[str, bool] = dict(caps or {})

    @classmethod
    def from_qmp(cls, reply: Any) -> Capabilities:
        caps: dict[str, bool] = {}
        if isinstance(reply, list):
            for entry in reply:
                if isinstance(entry, Mapping):
                    name, state = opt_str(entry.get("capability")), opt_bool(entry.get("state"))
                    if name and state is not None:
                        caps[name] = state
        return cls(caps)

    def supports(self, name: str) -> bool:
        return name in self._caps

    def enabled(self, name: str) -> bool:
        return self._caps.get(name, False)

    def __getitem__(self, name: str) -> bool:
        return self._caps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._caps)

    def __len__(self) -> int:
        return len(self._caps)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._caps == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # unhashable, as a dict is (typeshed's own spelling)

    def __repr__(self) -> str:
        on = sorted(name for name, state in self._caps.items() if state)
        return f"Capabilities(on={on}, known={len(self._caps)})"
