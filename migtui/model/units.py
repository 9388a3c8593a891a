"""The values an operator types for a migration parameter, read and checked before anything
is sent, and written back the way they are read.

* a bandwidth (``max-bandwidth``, ``avail-switchover-bandwidth``, bytes/s in QMP):
  ``54 MiB/s``, ``1.5 GiB/s``, ``10 Gbit/s``, ``800 Mbit/s``, ``512 KiB/s``; a bare number
  is MiB/s;
* a downtime (``downtime-limit``, ms in QMP): ``500 ms``, ``5 s``, ``1.5s``; a bare number
  is ms;
* a percentage (``cpu-throttle-initial`` / ``-increment``): ``50``, ``50 %``;
* a vCPU dirty limit (``set-vcpu-dirty-limit`` ``dirty-rate``, whole MB/s per vCPU in QMP):
  ``2``, ``2 MB/s``.

Each reader returns the QMP value or raises :class:`BadValue` with one line naming the
parameter and what it takes. Pure: no I/O.
"""

from __future__ import annotations

import math
import re

from ..errors import MigtuiError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# QEMU's bounds (qapi/migration.json; migration/options.c).
MAX_DOWNTIME_MS = 2_000_000  # downtime-limit: "an integer in the range of 0 to 2000000 milliseconds"
MAX_BYTES_PER_S = (1 << 63) - 1  # a QAPI size; anything a link carries is far below
MAX_DIRTY_LIMIT = 1 << 32  # set-vcpu-dirty-limit's dirty-rate (a uint64 of MB/s); far above any guest
QEMU_DEFAULT_MAX_BANDWIDTH = 128 * MiB  # max-bandwidth unless set (QEMU 7.2 to 10.x)

# Bandwidth units -> bytes/s per unit. Binary byte units, decimal bit units (as links are sold).
_RATE_UNITS = {
    "b/s": 1, "bytes/s": 1, "kib/s": KiB, "mib/s": MiB, "gib/s": GiB,
    "kb/s": 1000, "mb/s": 1000**2, "gb/s": 1000**3,
    "kbit/s": 1000 / 8, "mbit/s": 1000**2 / 8, "gbit/s": 1000**3 / 8,
    "kbps": 1000 / 8, "mbps": 1000**2 / 8, "gbps": 1000**3 / 8,
}
_TIME_UNITS = {"ms": 1, "s": 1000, "sec": 1000}
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z/%]*)\s*$")


class BadValue(MigtuiError):
    """A value that cannot be sent: one line naming the parameter and what it takes."""


def _split(parameter: str, text: str, takes: str) -> tuple[float, str]:
    match = _NUMBER.match(text or "")
    if match is None:
        raise BadValue(f"{parameter}: {text.strip()!r} is not a value: it takes {takes}")
    number = float(match.group(1))
    if not math.isfinite(number):
        raise BadValue(f"{parameter}: {text.strip()!r} is not a value: it takes {takes}")
    return number, match.group(2).lower()


def parse_bandwidth(text: str, parameter: str = "max-bandwidth") -> int:
    """Bytes/s from ``54 MiB/s``, ``10 Gbit/s`` ... (a bare number is MiB/s)."""
    takes = "a rate such as 54 MiB/s or 10 Gbit/s"
    number, unit = _split(parameter, text, takes)
    unit = unit or "mib/s"
    if unit.endswith(("ib", "b", "bit")) and not unit.endswith("/s"):
        unit += "/s"  # "54 MiB" reads as 54 MiB/s
    factor = _RATE_UNITS.get(unit)
    if factor is None:
        raise BadValue(f"{parameter}: unknown unit {unit!r}: it takes {takes}")
    value = round(number * factor)
    if value < 1:
        raise BadValue(f"{parameter}: {text.strip()} is no bandwidth: it takes more than 0 (0 would stop QEMU"
                       " sending)")
    if value > MAX_BYTES_PER_S:
        raise BadValue(f"{parameter}: {text.strip()} is more than QEMU can take")
    return value


def parse_downtime(text: str, parameter: str = "downtime-limit") -> int:
    """Milliseconds from ``500 ms`` or ``5 s`` (a bare number is ms)."""
    takes = "a time such as 500 ms or 5 s"
    number, unit = _split(parameter, text, takes)
    factor = _TIME_UNITS.get(unit or "ms")
    if factor is None:
        raise BadValue(f"{parameter}: unknown unit {unit!r}: it takes {takes}")
    value = round(number * factor)
    if not 1 <= value <= MAX_DOWNTIME_MS:
        raise BadValue(f"{parameter}: {text.strip()} is out of range: QEMU takes 1 ms to {MAX_DOWNTIME_MS // 1000} s")
    return value


def parse_percent(text: str, parameter: str, *, low: int = 1, high: int = 99) -> int:
    """A whole percentage from ``50`` or ``50 %``."""
    takes = f"a percentage from {low} to {high}"
    number, unit = _split(parameter, text, takes)
    if unit not in ("", "%"):
        raise BadValue(f"{parameter}: unknown unit {unit!r}: it takes {takes}")
    if number != int(number) or not low <= number <= high:
        raise BadValue(f"{parameter}: {text.strip()} is out of range: it takes {takes}")
    return int(number)


def parse_dirty_limit(text: str, parameter: str = "dirty-rate") -> int:
    """Whole MB/s per vCPU from ``2`` or ``2 MB/s`` (QEMU's unit for the vCPU dirty limit)."""
    takes = "whole MB/s per vCPU, such as 2 MB/s"
    number, unit = _split(parameter, text, takes)
    if unit not in ("", "mb/s"):
        raise BadValue(f"{parameter}: unknown unit {unit!r}: it takes {takes}")
    if number != int(number) or not 1 <= number <= MAX_DIRTY_LIMIT:
        raise BadValue(f"{parameter}: {text.strip()} is out of range: it takes {takes} (1 to {MAX_DIRTY_LIMIT})")
    return int(number)


# ---------------------------------------------------------------------- writing them back


def _number(value: float) -> str:
    """At most 3 significant digits, no trailing zeros: 4, 54, 1.5, 0.25, 128."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def bandwidth_text(bytes_per_s: float) -> str:
    """``4 MiB/s``, ``54 MiB/s``, ``1.5 GiB/s``: what :func:`parse_bandwidth` reads back."""
    if bytes_per_s >= GiB:
        return f"{_number(bytes_per_s / GiB)} GiB/s"
    if bytes_per_s >= MiB:
        return f"{_number(bytes_per_s / MiB)} MiB/s"
    return f"{_number(bytes_per_s / KiB)} KiB/s"


def downtime_text(ms: float) -> str:
    """``300 ms``, ``5 s``, ``4.5 s``: what :func:`parse_downtime` reads back."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{_number(ms / 1000)} s"


def round_up_bandwidth(bytes_per_s: float) -> int:
    """A rate an operator would type, at or above ``bytes_per_s``: whole MiB/s (2 significant
    digits above 100 MiB/s, whole GiB/s tenths above 1 GiB/s)."""
    mib = bytes_per_s / MiB
    if mib <= 100:
        return math.ceil(mib) * MiB
    if mib <= 1024:
        return math.ceil(mib / 10) * 10 * MiB
    return math.ceil(bytes_per_s / GiB * 10) * GiB // 10


def round_up_downtime(ms: float) -> int:
    """A limit an operator would type, at or above ``ms``: 50 ms steps below 1 s, 500 ms
    steps below 10 s, whole seconds above; never above QEMU's maximum."""
    if ms <= 1000:
        step = 50
    elif ms <= 10_000:
        step = 500
    else:
        step = 1000
    return min(MAX_DOWNTIME_MS, max(step, math.ceil(ms / step) * step))
