"""Secured instances on both backends, for the tests whose state lives in the database.

`secured` is one embedded instance with two worker processes, or two scale-out replicas on
PostgreSQL, SeaweedFS and Redis: in both cases consecutive requests may be answered by
different processes, so anything they must agree on (failure counters, revocations) has to
live in a shared place. Tests reach into the database only to stand in for the passing of
time (an account's expiry moved into the past), never to check what the server did.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, ROOMY, SECURED
from tests.support.server import MoorageServer

# Lockouts that outlast any test (so a locked account stays locked however slow the machine
# is), after few failures (so the tests stay short). Tests that fail logins on purpose send
# them from addresses of their own (X-Forwarded-For from the trusted loopback proxy), so the
# per-address counter of one test never locks another out.
THROTTLED = {
    **SECURED, **ROOMY,
    "MOORAGE_LOGIN_LOCKOUT_FAILURES": "5",
    "MOORAGE_LOGIN_LOCKOUT_ADDRESS_FAILURES": "8",
    "MOORAGE_LOGIN_LOCKOUT_BASE_SECONDS": "3600",
    "MOORAGE_LOGIN_LOCKOUT_MAX_SECONDS": "7200",
    "MOORAGE_TRUSTED_PROXIES": "127.0.0.1/32",
}

_addresses = itertools.count(1)


def new_address() -> str:
    """A client address no other test uses (TEST-NET-2 and the benchmarking range)."""
    n = next(_addresses)
    return f"198.18.{n // 250}.{n % 250 + 1}"


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


@dataclass
class Secured:
    """The processes of one secured instance, and its database for standing in for time."""

    backend: str
    servers: list[MoorageServer]
    database_url: str = ""
    sqlite_path: Path | None = None
    _turn: Iterator[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return self.servers[0].url

    def next(self) -> MoorageServer:
        """The processes in turn (replicas; on embedded, the one front of two workers)."""
        return self.servers[next(self._turn) % len(self.servers)]

    def sql(self, statement: str, **params: Any) -> None:
        """Run one statement with `:name` parameters on the instance's database."""
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path, timeout=30) as conn:
                conn.execute(statement, params)
            return
        from sqlalchemy import create_engine, text

        engine = create_engine(self.database_url.replace("postgresql://",
                                                         "postgresql+psycopg://"))
        try:
            with engine.begin() as conn:
                conn.execute(text(statement), params)
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def secured_scaleout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    from tests.support.scaleout import ScaleOut

    cluster = ScaleOut(tmp_path_factory.mktemp("throttled-scaleout"), env=THROTTLED)
    try:
        cluster.start(replicas=2)
        assert cluster.postgres is not None
        yield Secured("scaleout", cluster.replicas, database_url=cluster.postgres.url())
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def secured_embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    data = tmp_path_factory.mktemp("throttled") / "data"
    server = MoorageServer(data, extra_args=["--workers", "2"], env=THROTTLED).start(timeout=120)
    try:
        yield Secured("embedded", [server], sqlite_path=data / "moorage.db")
    finally:
        server.kill()


@pytest.fixture(scope="module", params=BACKENDS)
def secured(request: pytest.FixtureRequest) -> Secured:
    """The instance of the test's backend, each made once per session (see
    tests/support/secured.py for why not one parametrized session fixture)."""
    return request.getfixturevalue(f"secured_{request.param}")  # type: ignore[no-any-return]
