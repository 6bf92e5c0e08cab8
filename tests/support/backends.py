"""One PostgreSQL cluster, one Redis server and one SeaweedFS per test process, shared by the
scale-out deployments (tests/support/scaleout.py) that do not stop or break them, and by the
tests that need a database or a Redis database of their own.

Starting the three servers and migrating a database for every deployment cost several
seconds of two busy cores each time, over a dozen times a run. Each deployment still gets a
pristine place of its own on the shared servers: a fresh database (a copy of one that
`moorage migrate` brought to head, so it is the schema the command makes), a fresh bucket
and a fresh Redis database number. Nothing a deployment stores is seen by another, and
`ScaleOut(..., own_services=True)` still gives a test servers of its own when it stops or
breaks one of them (a Redis outage).

The servers start on first use and are stopped at the end of the session (tests/conftest.py);
under pytest-xdist each worker process has its own.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from tests.support.postgres import PostgresCluster
from tests.support.redis_server import RedisServer
from tests.support.seaweed import SeaweedS3

TEMPLATE = "moorage_migrated"
# Room for every deployment of a run: each replica's engine may hold 30 connections.
MAX_CONNECTIONS = 1000
REDIS_DATABASES = 4096


class SharedBackends:
    """The servers, each started on first use."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="moorage-shared-"))
        self._postgres: PostgresCluster | None = None
        self._redis: RedisServer | None = None
        self._s3: SeaweedS3 | None = None
        self._migrated = False
        self._numbers = itertools.count(1)

    def postgres(self) -> PostgresCluster:
        if self._postgres is None:
            self._postgres = PostgresCluster(max_connections=MAX_CONNECTIONS).start()
        return self._postgres

    def redis(self) -> RedisServer:
        if self._redis is None:
            self._redis = RedisServer(databases=REDIS_DATABASES).start()
        return self._redis

    def s3(self) -> SeaweedS3:
        if self._s3 is None:
            self._s3 = SeaweedS3.start(self.root / "s3")
        return self._s3

    def _name(self) -> tuple[int, str]:
        n = next(self._numbers)
        return n, f"d{n}_{uuid.uuid4().hex[:8]}"

    def database(self, migrated: bool = False) -> PostgresCluster:
        """A view of the PostgreSQL cluster whose url() names a new database: empty, or
        migrated to head (a copy of a database `moorage migrate` migrated)."""
        postgres = self.postgres()
        if migrated and not self._migrated:
            url = postgres.create_database(TEMPLATE)
            migrate = subprocess.run([sys.executable, "-m", "moorage", "migrate"],
                                     env={**os.environ, "MOORAGE_DATABASE_URL": url},
                                     capture_output=True, text=True, timeout=600, check=False)
            if migrate.returncode != 0:
                raise RuntimeError(f"moorage migrate failed: {migrate.stderr}")
            self._migrated = True
        _, name = self._name()
        postgres.create_database(name, template=TEMPLATE if migrated else None)
        return postgres.view(name)

    def redis_database(self) -> RedisServer:
        """A view of the Redis server whose url names a database number not used before."""
        n, _ = self._name()
        if n >= REDIS_DATABASES:
            raise RuntimeError("more users than Redis databases: raise REDIS_DATABASES")
        return self.redis().view(n)

    def bucket(self) -> SeaweedS3:
        """A view of the SeaweedFS server with a new bucket of its own."""
        _, name = self._name()
        return self.s3().view(name.replace("_", "-"))

    def deployment(self) -> tuple[PostgresCluster, RedisServer, SeaweedS3]:
        """The three for one new scale-out deployment: a migrated database, a Redis database
        and a bucket that nothing else has used."""
        return self.database(migrated=True), self.redis_database(), self.bucket()

    def stop(self) -> None:
        for part in (self._s3, self._redis, self._postgres):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # noqa: BLE001 - keep stopping the others
                    pass
        self._s3 = self._redis = self._postgres = None
        shutil.rmtree(self.root, ignore_errors=True)


_shared: SharedBackends | None = None


def shared() -> SharedBackends:
    """This process's shared servers, started on first use."""
    global _shared
    if _shared is None:
        _shared = SharedBackends()
    return _shared


def stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
