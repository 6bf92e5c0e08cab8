"""Migrations build exactly the schema the code declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.migrate import NotMigrated, check_migrated, current_revision, head_revision, upgrade
from moorage.db.schema import metadata
from tests.support.postgres import PostgresCluster


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    # Expression indexes cannot be reflected everywhere; they are created by hand.
    return [d for d in diffs if "folded" not in repr(d)]


def test_head_revision_is_alembics(tmp_path: Path) -> None:
    """head_revision() reads the files itself (so workers need not load Alembic)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from moorage.db.migrate import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()
    engine = open_engine(sqlite_url(tmp_path))
    upgrade(engine)
    with engine.connect() as conn:
        assert current_revision(engine) == MigrationContext.configure(conn).get_current_revision()


def test_sqlite_migrates_to_the_declared_schema(tmp_path: Path) -> None:
    engine = open_engine(sqlite_url(tmp_path))
    with pytest.raises(NotMigrated, match="moorage migrate"):
        check_migrated(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _differences(engine) == []


def test_postgres_migrates_to_the_declared_schema(postgres: PostgresCluster) -> None:
    engine = open_engine(postgres.create_database("migrations"))
    with pytest.raises(NotMigrated, match="never migrated"):
        check_migrated(engine)
    upgrade(engine)
    check_migrated(engine)
    assert _differences(engine) == []


def test_serve_refuses_an_unmigrated_database_and_names_the_command(
        postgres: PostgresCluster, tmp_path: Path) -> None:
    url = postgres.create_database("unmigrated")
    result = subprocess.run(
        [sys.executable, "-m", "moorage", "serve", "--database-url", url, "--data-dir",
         str(tmp_path), "--listen", "127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "never migrated" in result.stderr and "moorage migrate" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_prints_a_generated_admin_password_once(tmp_path: Path) -> None:
    """The first start creates the admin account (in a short-lived child of `serve`) and
    shows its password; the port is taken, so the server itself then fails to bind."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "MOORAGE_ADMIN_PASSWORD"}
        result = subprocess.run(
            [sys.executable, "-m", "moorage", "serve", "--data-dir", str(tmp_path), "--listen",
             f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120, env=env)
    assert "Created the administrator account: user 'admin', password '" in result.stderr
    password = result.stderr.split("password '", 1)[1].split("'", 1)[0]
    from moorage.access.authentication import Authenticator
    from moorage.db.access import AccessStore

    store = AccessStore(open_engine(sqlite_url(tmp_path)))
    assert Authenticator(store).login("admin", password).is_admin
