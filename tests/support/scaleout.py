"""A scale-out Moorage: replicas sharing PostgreSQL, SeaweedFS (S3) and Redis, nothing else.

Every part is a real server started on loopback by the fixtures and stopped by PID. Each
replica has its own data folder (for its logs only), so anything they share must go through
the three shared services, as in production.

A deployment gets a database, a bucket and a Redis database of its own on servers that the
test process shares (tests/support/backends.py); `own_services=True` starts servers for it
alone, for a test that stops or breaks one of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.backends import shared
from tests.support.postgres import PostgresCluster
from tests.support.redis_server import RedisServer
from tests.support.seaweed import SeaweedS3
from tests.support.server import MoorageServer


class ScaleOut:
    def __init__(self, root: Path, env: dict[str, str] | None = None,
                 own_services: bool = False) -> None:
        self.root = Path(root)
        self.extra_env = dict(env or {})
        self.own_services = own_services
        self.postgres: PostgresCluster | None = None
        self.redis: RedisServer | None = None
        self.s3: SeaweedS3 | None = None
        self.replicas: list[MoorageServer] = []

    def start(self, replicas: int = 2) -> "ScaleOut":
        if self.own_services:
            self.postgres = PostgresCluster().start()
            self.redis = RedisServer().start()
            self.s3 = SeaweedS3.start(self.root / "s3")
            migrate = subprocess.run([sys.executable, "-m", "moorage", "migrate"],
                                     env={**os.environ, **self.env()}, capture_output=True,
                                     text=True, timeout=600)
            if migrate.returncode != 0:
                raise RuntimeError(f"moorage migrate failed: {migrate.stderr}")
        else:
            # a fresh database (already migrated), Redis database and bucket
            self.postgres, self.redis, self.s3 = shared().deployment()
        for _ in range(replicas):
            self.add_replica()
        return self

    def env(self) -> dict[str, str]:
        assert self.postgres and self.redis and self.s3
        return {"MOORAGE_DATABASE_URL": self.postgres.url(),
                "MOORAGE_STORAGE_URL": self.s3.storage_url("moorage"),
                "MOORAGE_REDIS_URL": self.redis.url, **self.s3.env(), **self.extra_env}

    def add_replica(self) -> MoorageServer:
        replica = MoorageServer(self.root / f"replica{len(self.replicas)}", env=self.env())
        replica.start()
        self.replicas.append(replica)
        return replica

    def stop(self) -> None:
        for replica in self.replicas:
            replica.kill()
        for part in (self.s3, self.redis, self.postgres):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # noqa: BLE001 - keep stopping the others
                    pass
