"""format.py: the strings the TUI and `migtui status` print."""

from __future__ import annotations

import math

import pytest

from migtui.format import (
    UNKNOWN,
    format_bytes,
    format_bytes_short,
    format_count,
    format_duration,
    format_left_of_total,
    format_ms,
    format_percent,
    format_rate,
)

MiB = 1024 * 1024
ALL = [format_bytes, format_count, format_duration, format_ms, format_percent, format_rate]


@pytest.mark.parametrize("fn", ALL)
@pytest.mark.parametrize("value", [None, math.nan, math.inf, True])
def test_unknown_values(fn, value) -> None:
    assert fn(value) == UNKNOWN


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (134750208, "128.5 MiB"), (64 * MiB, "64.0 MiB"), (3 * 1024**3, "3.0 GiB"),
])
def test_bytes(n, text) -> None:
    assert format_bytes(n) == text


def test_short_bytes_keep_three_figures() -> None:
    assert format_bytes_short(int(209.1 * MiB)) == "209 MiB"
    assert format_bytes_short(int(52.04 * MiB)) == "52.0 MiB"
    assert format_bytes_short(512) == "512 B"


def test_rates() -> None:
    assert format_rate(16 * MiB) == "16.0 MiB/s"
    assert format_rate(0) == "0 B/s"


# The one rule (format_duration's docstring): under 10 ms two significant figures, under
# 1 s whole ms, under 1 min tenths of a second, then 1m 01s, then 1h 02m; rounded first.
@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 ms"), (0.000001, "<0.01 ms"), (0.0004, "0.4 ms"), (0.00085, "0.85 ms"), (0.0021, "2.1 ms"),
    (0.00999, "10 ms"), (0.0194, "19 ms"), (0.9994, "999 ms"), (0.9996, "1.0 s"), (1.772, "1.8 s"),
    (12.34, "12.3 s"), (18.876, "18.9 s"), (59.94, "59.9 s"), (59.96, "1m 00s"), (61, "1m 01s"),
    (125.3, "2m 05s"), (3599.4, "59m 59s"), (3599.6, "1h 00m"), (3725, "1h 02m"), (-0.5, "-500 ms"),
])
def test_duration(seconds, text) -> None:
    assert format_duration(seconds) == text


def test_milliseconds_from_qemu() -> None:
    """A QEMU millisecond field reads as every other duration: 18876 ms is 18.9 s."""
    assert format_ms(19) == "19 ms"
    assert format_ms(1772) == "1.8 s"
    assert format_ms(18876) == "18.9 s"


@pytest.mark.parametrize(("fraction", "text"), [
    (0, "0%"), (1, "100%"), (0.5, "50.0%"), (0.12345, "12.3%"),
    (0.99999, ">99.9%"), (0.000001, "<0.1%"), (1.5, "150.0%"),
])
def test_percent(fraction, text) -> None:
    assert format_percent(fraction) == text


def test_percent_decimals() -> None:
    assert format_percent(0.4567, decimals=0) == "46%"
    assert format_percent(0.999, decimals=0) == ">99%"
    assert format_percent(0.99994, decimals=2) == "99.99%"
    assert format_percent(0.99996, decimals=2) == ">99.99%"


def test_count() -> None:
    assert format_count(24753) == "24,753"
    assert format_count(3.0) == "3"


def test_left_of_total() -> None:
    assert format_left_of_total(int(3.3 * MiB), int(128.5 * MiB)) == "3.3 of 128.5 MiB"
    assert format_left_of_total(1000, 128 * MiB) == "<0.1 of 128.0 MiB"
    assert format_left_of_total(0, 128 * MiB) == "0.0 of 128.0 MiB"
    assert format_left_of_total(None, 128 * MiB) == "— of 128.0 MiB"
    assert format_left_of_total(5, 900) == "5 of 900 B"
