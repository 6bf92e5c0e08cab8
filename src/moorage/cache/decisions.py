"""Answers kept in a worker until the next commit on the database, by any process.

Some answers are derived from the database alone and cost more to work out than the rest of
the request that needs them: whether an anonymous pull of a public repository is allowed (the
repository's or namespace's visibility, the trusted networks of credential-free pulls; deciding
means a hop to an auth thread), or how many repositories a listing matches (a count over every
match, on every page asked). Such an answer only changes when something is committed, and every
observed commit replaces the shared change signal (db/changes.py: a shared memory map on SQLite,
the commit_signal row that each request reads once on PostgreSQL). So an answer is
filed under the signal's value read *before* it was worked out, and served only while the
signal still holds that value: a commit that ended after the read (a repository made private,
a rule removed, a repository created) has replaced the value, and the next request on any
worker works it out again. Where there is no value to read (no signal, or PostgreSQL outside a
request) nothing is kept.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from moorage.db.changes import ChangeSignal, SharedTableSignal

MAX_DECISIONS = 10_000
V = TypeVar("V")


class KeptUntilCommit(Generic[V]):
    def __init__(self, signal: ChangeSignal | SharedTableSignal | None, limit: int = MAX_DECISIONS) -> None:
        self._signal = signal
        self._limit = limit
        self._kept: dict[Hashable, tuple[bytes, V]] = {}

    def version(self) -> bytes | None:
        """The signal's value now; read it before working the answer out. None: nothing
        may be kept."""
        return self._signal.current() if self._signal is not None else None

    def get(self, key: Hashable) -> V | None:
        """The answer kept for `key`, if nothing has been committed since it was worked out."""
        if self._signal is None:
            return None
        kept = self._kept.get(key)
        if kept is None or kept[0] != self._signal.current():  # None (nothing read) never is
            return None
        return kept[1]

    def put(self, key: Hashable, version: bytes | None, value: V) -> None:
        """Keep an answer worked out after `version` was read (bounded: emptied when full)."""
        if version is None:
            return
        if len(self._kept) >= self._limit:
            self._kept.clear()
        self._kept[key] = (version, value)
