"""A shared "something was committed" signal for one SQLite database and every process on it.

Answers on the pull path (tag → digest, repository visibility, blob links) may be cached in a
worker only while nothing has changed the database since they were read. Every commit through
an engine of this database (any granian worker, `moorage worker`, the CLI) writes a fresh
random value into an 8-byte shared memory map next to the database file *after* the commit,
before the writer acknowledges anything. A reader files each answer under the value it read
*before* its query and serves it only while the signal still holds that value: a commit that
ended after the read has replaced the value, so an answer that may predate it is never served
again. Random values (rather than a counter) cannot repeat, so two writers racing never bring
back a value a reader has cached answers under.

Reading the signal is a memory read: no system call, no lock, and no release of the GIL.
"""

from __future__ import annotations

import mmap
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

_SIZE = 8
_signals: "weakref.WeakKeyDictionary[Engine, ChangeSignal]" = weakref.WeakKeyDictionary()
_unobserved: ContextVar[bool] = ContextVar("moorage_unobserved_commits", default=False)


@contextmanager
def unobserved() -> Iterator[None]:
    """Commits inside this block change nothing a cached pull-path answer depends on.

    For bookkeeping that is written all the time under load (audit entries, job claims):
    if each of their commits bumped the signal, every worker would lose its cache several
    times a second. Only for writes to tables that no cached lookup reads.
    """
    token = _unobserved.set(True)
    try:
        yield
    finally:
        _unobserved.reset(token)


class ChangeSignal:
    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)  # MAP_SHARED: forked workers share it too
        finally:
            os.close(fd)

    def current(self) -> bytes:
        return self._map[:_SIZE]

    def bump(self) -> None:
        self._map[:_SIZE] = os.urandom(_SIZE)


def signal_commits(engine: Engine, signal: ChangeSignal) -> None:
    """Bump `signal` after every commit on `engine` (also a failed one: it may have landed)."""
    dialect = engine.dialect
    commit = dialect.do_commit

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            if not _unobserved.get():
                signal.bump()

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    _signals[engine] = signal


def signal_of(engine: Engine) -> ChangeSignal | None:
    return _signals.get(engine)


__all__ = ["ChangeSignal", "signal_commits", "signal_of", "unobserved"]
