"""`query-dirty-rate`: a guest's dirty rate measured without migrating (QEMU 5.2+)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from migtui.model.coerce import as_mapping, opt_int, opt_str

MiB = 1024 * 1024


@dataclass(frozen=True)
class DirtyRateInfo:
    status: str = "unstarted"
    dirty_rate_mib_per_s: int | None = None  # QEMU reports MiB/s, only once measured
    mode: str | None = None  # page-sampling, dirty-ring, dirty-bitmap
    calc_time: int | None = None  # in calc_time_unit
    calc_time_unit: str | None = None  # "second" or "millisecond" (QEMU 8.2+; before: seconds)
    # Tells measurements apart: seconds since boot on QEMU 7.2, since the epoch on 10.0.
    start_time: int | None = None
    sample_pages: int | None = None
    vcpu_rates_mib_per_s: tuple[tuple[int, int], ...] = ()  # (vcpu id, MiB/s), dirty-ring mode
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_qmp(cls, reply: Any) -> DirtyRateInfo:
        d = as_mapping(reply)
        vcpus: list[tuple[int, int]] = []
        for entry in d.get("vcpu-dirty-rate") or ():
            if isinstance(entry, Mapping):
                vid, rate = opt_int(entry.get("id")), opt_int(entry.get("dirty-rate"))
                if vid is not None and rate is not None:
                    vcpus.append((vid, rate))
        return cls(
            status=opt_str(d.get("status")) or "unstarted",
            dirty_rate_mib_per_s=opt_int(d.get("dirty-rate")),
            mode=opt_str(d.get("mode")),
            calc_time=opt_int(d.get("calc-time")),
            calc_time_unit=opt_str(d.get("calc-time-unit")),
            start_time=opt_int(d.get("start-time")),
            sample_pages=opt_int(d.get("sample-pages")),
            vcpu_rates_mib_per_s=tuple(vcpus),
            raw=dict(d),
        )

    @property
    def measured(self) -> bool:
        return self.status == "measured"

    @property
    def bytes_per_s(self) -> float | None:
        """The measured rate in bytes/s; None until a measurement finished."""
        if not self.measured or self.dirty_rate_mib_per_s is None or self.dirty_rate_mib_per_s < 0:
            return None
        return float(self.dirty_rate_mib_per_s * MiB)
