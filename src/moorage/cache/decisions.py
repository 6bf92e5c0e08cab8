"""Decisions kept in a worker until the next commit on the database, by any process.

An anonymous pull of a public repository is decided from the database alone (the
repository's or namespace's visibility, the trusted networks of credential-free pulls), and
deciding it means a hop to an auth thread, which cost more than the whole rest of the pull.
The answer only changes when something is committed, and every commit on a SQLite database
replaces the shared change signal (db/changes.py). So a decision is filed under the signal's
value read *before* it was made, and served only while the signal still holds that value:
a commit that ended after the read (a repository made private, a rule removed) has replaced
the value, and the next request on any worker decides again. Without a shared signal
(PostgreSQL, where replicas may run on other machines) nothing is kept.

Only grants are kept: a refusal is decided again each time, so what it says (and records)
stays exactly as it was.
"""

from __future__ import annotations

from collections.abc import Hashable

from moorage.db.changes import ChangeSignal

MAX_DECISIONS = 10_000


class GrantCache:
    def __init__(self, signal: ChangeSignal | None, limit: int = MAX_DECISIONS) -> None:
        self._signal = signal
        self._limit = limit
        self._granted: dict[Hashable, bytes] = {}

    def version(self) -> bytes | None:
        """The signal's value now; read it before deciding. None: nothing may be kept."""
        return self._signal.current() if self._signal is not None else None

    def granted(self, key: Hashable) -> bool:
        """True when `key` was granted and nothing has been committed since."""
        if self._signal is None:
            return False
        seen = self._granted.get(key)
        return seen is not None and seen == self._signal.current()

    def grant(self, key: Hashable, version: bytes | None) -> None:
        """Keep a grant decided after `version` was read."""
        if version is None:
            return
        if len(self._granted) >= self._limit:
            self._granted.clear()
        self._granted[key] = version
