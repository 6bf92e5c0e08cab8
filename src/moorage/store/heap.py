"""glibc's heap settings for a long-lived process, set from one place.

glibc starts by giving buffers of 128 KiB and more their own mappings, returned to the system
when freed, but raises that threshold to the size of each big buffer freed (up to 32 MiB):
later ones then come from the heaps (one per thread, up to 8 per core), which keep them after
they are freed, and a server's resident memory grows by what its busiest moment needed. A
fixed threshold and a bound on arenas keep it at what is in use.

Several parts ask for a threshold (the app for its upload batches, the S3 store for its
parts and read-ahead buffers); glibc keeps only the last value set, so the lowest asked for
is kept here, whatever the order of the asks. Elsewhere than glibc (musl, macOS) nothing is
changed.
"""

from __future__ import annotations

from typing import Any

_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # <malloc.h>
_set: dict[int, int] = {}


def _mallopt() -> Any | None:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return None


def keep_big_buffers_off_the_heap(threshold: int) -> None:
    """Buffers of `threshold` bytes or more get their own mappings from now on (the lowest
    threshold any caller asked for wins)."""
    if _set.get(_M_MMAP_THRESHOLD, threshold + 1) <= threshold:
        return
    mallopt = _mallopt()
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, threshold)
        _set[_M_MMAP_THRESHOLD] = threshold


def bound_arenas(arenas: int) -> None:
    """At most `arenas` malloc arenas for all the process's threads."""
    mallopt = _mallopt()
    if mallopt is not None and _set.get(_M_ARENA_MAX) != arenas:
        mallopt(_M_ARENA_MAX, arenas)
        _set[_M_ARENA_MAX] = arenas
