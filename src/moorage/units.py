"""Durations ("30d", "12h") and sizes ("10GiB", "500MB") as people write them."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)?", re.I)
_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, None: 1}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?", re.I)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_duration(text: str | int | float) -> int:
    """Seconds in "90", "45s", "30m", "12h", "7d" or "2w"; ValueError otherwise."""
    if isinstance(text, (int, float)):
        return int(text)
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 45s, 30m, 12h, 7d or 2w")
    unit = match[2].lower() if match[2] else None
    return int(float(match[1]) * _SECONDS[unit])


def parse_size(text: str | int) -> int:
    """Bytes in "1048576", "500MB", "10GiB", "2g"; decimal for kB/MB, binary for KiB/MiB."""
    if isinstance(text, int):
        return text
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size such as 500MB or 10GiB")
    unit = (match[2] or "").lower()
    binary = "i" in unit or (unit and unit[-1] != "b")
    prefix = unit.rstrip("b").rstrip("i")
    if prefix not in _POWERS:
        raise ValueError(f"{text!r} has an unknown unit")
    return int(float(match[1]) * (1024 if binary else 1000) ** _POWERS[prefix])


def human_duration(seconds: float) -> str:
    """The largest unit that writes `seconds` exactly, as `parse_duration` reads it back:
    2592000 is "30d", 5400 is "90m", 90 is "90s" (a rule's "30d" must not come back as
    "2592000s")."""
    whole = int(seconds)
    if whole != seconds or whole <= 0:
        return f"{seconds:g}s"
    for unit in ("w", "d", "h", "m"):
        if whole % _SECONDS[unit] == 0:
            return f"{whole // _SECONDS[unit]}{unit}"
    return f"{whole}s"


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
