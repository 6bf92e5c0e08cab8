"""What `serve`, `worker` and `migrate` say when a service they need does not answer at start.

A database or bucket that cannot be reached is a fact about the deployment, not a bug: the
operator needs one line that names what failed and where (host:port, database or bucket,
never a password from the URL), not the hundred lines of a driver's traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from moorage.settings import SettingsError


def database_location(url: str) -> str:
    """scheme://user@host:port/database of a database URL, without its password."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def startup_failure(exc: BaseException, database_url: str) -> str | None:
    """The one line to print for a failure to reach what the settings name, or None when
    the exception is something else (a bug, which keeps its traceback)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, SettingsError):  # e.g. the bucket check of store/factory.py
        return str(exc)
    if isinstance(exc, (OperationalError, DBAPIError)) and (
            isinstance(exc, OperationalError) or exc.connection_invalidated):
        where = database_location(database_url) if database_url else "the SQLite database"
        return f"cannot reach the database at {where}: {_first_line(exc)}"
    return None


@contextmanager
def reported_in_one_line(database_url: str) -> Iterator[None]:
    """Around the start of a command: a database or bucket that does not answer ends it with
    exit 1 and the one line of startup_failure on stderr; anything else keeps its traceback."""
    try:
        yield
    except Exception as exc:
        line = startup_failure(exc, database_url)
        if line is None:
            raise
        print(f"moorage: {line}", file=sys.stderr)
        raise SystemExit(1) from None
