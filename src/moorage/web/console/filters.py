"""Template filters: sizes, times and digests as people read them."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from jinja2 import Environment

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(value: Any) -> str:
    """1536 → "1.5 KiB"; None → "—"."""
    if value is None or value == "":
        return "—"
    n = float(value)
    for unit in _UNITS:
        if abs(n) < 1024 or unit == _UNITS[-1]:
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(value)


def _epoch(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def when(value: Any) -> str:
    """An absolute UTC time, to the minute."""
    at = _epoch(value)
    if at is None:
        return "—"
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def ago(value: Any, now: float | None = None) -> str:
    """"3 minutes ago"; the exact time is in the element's title (see templates)."""
    at = _epoch(value)
    if at is None:
        return "—"
    seconds = max(0, int((now or time.time()) - at))
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def short_digest(value: Any) -> str:
    """sha256:0123456789ab… → "sha256:0123456789ab"."""
    text = str(value or "")
    algorithm, _, hexpart = text.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else text[:19]


def duration(seconds: Any) -> str:
    if seconds is None or seconds == "":
        return "—"
    s = int(seconds)
    for unit, length in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % length == 0:
            return f"{s // length}{unit}"
    return f"{s}s"


def percent(used: Any, limit: Any) -> int:
    """Share of a limit used, 0–100, for the width of a bar."""
    try:
        if not limit:
            return 0
        return max(0, min(100, round(100 * float(used or 0) / float(limit))))
    except (TypeError, ValueError):
        return 0


def install(env: Environment) -> None:
    env.filters.update(size=size, when=when, ago=ago, short_digest=short_digest,
                       duration=duration)
    env.globals.update(percent=percent)
