"""Human-readable figures shared by the TUI and `migtui status`. Pure helpers.

Every function accepts None ("QEMU did not say") and then returns UNKNOWN, so callers
never have to special-case missing fields.
"""

from __future__ import annotations

import math
from typing import TypeGuard

import humanize

UNKNOWN = "—"


def _known(value: float | int | None) -> TypeGuard[float | int]:
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def format_bytes(n: float | int | None) -> str:
    """Binary units, one decimal: "1.5 KiB", "128.5 MiB", "512 B"."""
    if not _known(n):
        return UNKNOWN
    text = humanize.naturalsize(n, binary=True, format="%.1f")
    # humanize spells out "Bytes"/"Byte"; a dashboard wants the compact unit.
    return text.replace(" Bytes", " B").replace(" Byte", " B")


def format_bytes_short(n: float | int | None) -> str:
    """format_bytes in three figures or so, for a row of several: "52.0 MiB", "411 KiB"."""
    text = format_bytes(n)
    number, space, unit = text.partition(" ")
    if space and "." in number and float(number) >= 100:
        text = f"{float(number):.0f} {unit}"
    return text


def format_rate(bytes_per_s: float | int | None) -> str:
    """A byte rate: "12.0 MiB/s"."""
    if not _known(bytes_per_s):
        return UNKNOWN
    return f"{format_bytes(bytes_per_s)}/s"


def format_duration(seconds: float | int | None) -> str:
    """Every duration migtui shows, in one format (the tenths of a ticking clock too):

    ===================  ==============  =====================================
    under 10 ms          ``2.1 ms``      two significant figures (QEMU's µs)
    under 1 s            ``772 ms``      whole milliseconds
    under 1 min          ``18.9 s``      tenths of a second
    under 1 h            ``1m 01s``      minutes and seconds
    from 1 h             ``1h 02m``      hours and minutes
    ===================  ==============  =====================================

    Each is rounded before its range is chosen, so 999.6 ms is ``1.0 s`` and 59.96 s
    is ``1m 00s``, never ``1000 ms`` or ``60.0 s``.
    """
    if not _known(seconds):
        return UNKNOWN
    negative = seconds < 0
    s = abs(float(seconds))
    ms = s * 1000
    if ms < 9.95:
        if ms == 0 or ms >= 0.995:
            text = f"{ms:.2g} ms"
        elif ms < 0.005:
            text = "<0.01 ms"
        else:
            text = f"{ms:.2f}".rstrip("0") + " ms"  # "0.4 ms", "0.85 ms"
    elif round(ms) < 1000:
        text = f"{round(ms)} ms"
    elif round(s, 1) < 60:
        text = f"{s:.1f} s"
    elif round(s) < 3600:
        minutes, rest = divmod(round(s), 60)
        text = f"{minutes}m {rest:02d}s"
    else:
        hours, rest = divmod(round(s) // 60, 60)
        text = f"{hours}h {rest:02d}m"
    return f"-{text}" if negative else text


def format_ms(ms: float | int | None) -> str:
    """A QEMU millisecond field (downtime, total-time) via format_duration."""
    if not _known(ms):
        return UNKNOWN
    return format_duration(ms / 1000)


def format_percent(fraction: float | int | None, decimals: int = 1) -> str:
    """A 0..1 fraction as "42.0%"; exactly 0 and 1 print without decimals."""
    if not _known(fraction):
        return UNKNOWN
    if fraction in (0, 1):
        return f"{int(fraction * 100)}%"
    step = 10.0**-decimals
    percent = fraction * 100
    # Never claim completion, or nothing done, by rounding.
    if 100 - step / 2 <= percent < 100:
        return f">{100 - step:.{decimals}f}%"
    if 0 < percent < step / 2:
        return f"<{step:.{decimals}f}%"
    return f"{percent:.{decimals}f}%"


_UNIT_SIZES = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50}


def format_left_of_total(remaining: int | None, total: int | None, *, aligned: bool = False) -> str:
    """"3.3 of 128.5 MiB": what is left of a total (a migration's RAM), in the total's unit.

    One unit for both, so it reads the same from the first pass to "0.0 of 128.5 MiB";
    a remainder that rounds to nothing but is not nothing is "<0.1". ``aligned`` pads the
    remainder to the total's width ("  3.3 of 128.5 MiB"), so a ticking figure stays put.
    """
    total_text = format_bytes(total)
    number, _, unit = total_text.partition(" ")
    size = _UNIT_SIZES.get(unit)
    if remaining is None or size is None:
        return f"{format_bytes(remaining)} of {total_text}"
    if size == 1:
        value = str(remaining)
    else:
        value = f"{remaining / size:.1f}"
        if value == "0.0" and remaining > 0:
            value = "<0.1"
    return f"{value.rjust(len(number)) if aligned else value} of {total_text}"


def format_count(n: float | int | None) -> str:
    """A plain count with thousands separators: "24,753"."""
    if not _known(n):
        return UNKNOWN
    return humanize.intcomma(int(n))

