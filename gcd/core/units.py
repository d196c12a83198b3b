"""Durations and sizes as policy files spell them: `30s 15m 1h 7d 2w`, `500MB 20GiB`."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LARGEST_FIRST = sorted(_DURATION_UNITS.items(), key=lambda item: -item[1])
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?B|B)?\s*$")
_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "PB": 10**15,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "PiB": 2**50,
}


def parse_duration(text: str) -> timedelta:
    """`7d` → 7 days. Raises ValueError naming the accepted forms."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"expected a duration such as 30s, 15m, 1h, 7d or 2w, got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


def parse_size(text: str) -> int:
    """`20GiB` → bytes; SI units are powers of 1000, IEC units powers of 1024."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"expected a size such as 500MB or 20GiB, got {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"])


def format_bytes(size_bytes: int) -> str:
    """Human-readable IEC size for tables and logs."""
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(delta: timedelta) -> str:
    """Coarse human age: `3d`, `5h`, `12m`, `40s`."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "future"
    unit, length = next((u, n) for u, n in _LARGEST_FIRST if seconds >= n or n == 1)
    return f"{seconds // length}{unit}"


def spell_duration(delta: timedelta) -> str:
    """Exact, as a policy file would spell it: `7d`, `90m`, `1h`, `45s`."""
    seconds = int(delta.total_seconds())
    unit, length = next(
        (u, n) for u, n in _LARGEST_FIRST if (seconds >= n and seconds % n == 0) or n == 1
    )
    return f"{seconds // length}{unit}"
