"""Migrations build exactly the schema the code declares, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.migrate import NotMigrated, check_migrated, current_revision, head_revision, upgrade
from moorage.db.schema import metadata
from tests.support.postgres import PostgresCluster


@pytest.fixture(scope="module")
def postgres() -> PostgresCluster:
    """The PostgreSQL cluster the test process shares (tests make databases of their own)."""
    from tests.support.backends import shared

    return shared().postgres()


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
    engine = open_engine(postgres.create_database(f"migrations_{uuid.uuid4().hex[:8]}"))
    with pytest.raises(NotMigrated, match="never migrated"):
        check_migrated(engine)
    upgrade(engine)
    check_migrated(engine)
    assert _differences(engine) == []


def test_serve_refuses_an_unmigrated_database_and_names_the_command(
        postgres: PostgresCluster, tmp_path: Path) -> None:
    url = postgres.create_database(f"unmigrated_{uuid.uuid4().hex[:8]}")
    result = subprocess.run(
        [sys.executable, "-m", "moorage", "serve", "--database-url", url, "--data-dir",
         str(tmp_path), "--listen", "127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "never migrated" in result.stderr and "moorage migrate" in result.stderr
    assert "Traceback" not in result.stderr


def _fill_at_0001(engine: Engine) -> None:
    """Repositories of both visibilities in namespaces of both, each with content (tags, blob
    links, manifest links) that hangs off it by foreign key."""
    with engine.begin() as conn:
        for ns_id, (ns, visibility) in enumerate((("pub", "public"), ("priv", "private")), 1):
            conn.execute(text("INSERT INTO namespaces (id, name, visibility, description, "
                              "credential_free_pull, storage_used, created_at) VALUES "
                              "(:id, :n, :v, '', false, 0, 0)"),
                         {"id": ns_id, "n": ns, "v": visibility})
        conn.execute(text("INSERT INTO blobs (digest, size, created_at) VALUES ('sha256:b', 1, 0)"))
        conn.execute(text("INSERT INTO manifests (digest, media_type, size, content, created_at) "
                          "VALUES ('sha256:m', 'x', 1, :c, 0)"), {"c": b"{}"})
        repos = (("pub/a", 1, "public"), ("pub/b", 1, "private"),
                 ("priv/c", 2, "private"), ("priv/d", 2, "public"))
        for repo_id, (name, ns_id, visibility) in enumerate(repos, 1):
            conn.execute(text("INSERT INTO repositories (id, name, namespace_id, visibility, "
                              "description, created_at) VALUES (:id, :n, :ns, :v, '', 0)"),
                         {"id": repo_id, "n": name, "ns": ns_id, "v": visibility})
            conn.execute(text("INSERT INTO tags (repository_id, name, digest, updated_at) "
                              "VALUES (:id, 'v1', 'sha256:m', 0)"), {"id": repo_id})
            conn.execute(text("INSERT INTO repository_blobs (repository_id, digest, created_at, "
                              "touched_at) VALUES (:id, 'sha256:b', 0, 0)"), {"id": repo_id})
            conn.execute(text("INSERT INTO repository_manifests (repository_id, digest, "
                              "pushed_at) VALUES (:id, 'sha256:m', 0)"), {"id": repo_id})


def _check_converted(engine: Engine) -> None:
    """Only a public repository of a public namespace starts inheriting; every other keeps
    its visibility as its own, so that no later change of a namespace exposes more than the
    old code would have. Nothing that hangs off a repository is lost on the way."""
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT name, visibility FROM repositories")).all())
        assert found == {"pub/a": None, "pub/b": "private", "priv/c": "private",
                         "priv/d": "public"}
        for table in ("tags", "repository_blobs", "repository_manifests"):
            count = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            assert count == 4, table
    assert _differences(engine) == []


def test_sqlite_0002_converts_repository_visibility_and_keeps_content(tmp_path: Path) -> None:
    engine = open_engine(sqlite_url(tmp_path))
    upgrade(engine, "0001")
    _fill_at_0001(engine)
    upgrade(engine)
    _check_converted(engine)
    with engine.connect() as conn:  # the migration's connection is back in the pool
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_postgres_0002_converts_repository_visibility_and_keeps_content(
        postgres: PostgresCluster) -> None:
    engine = open_engine(postgres.create_database(f"visibility_{uuid.uuid4().hex[:8]}"))
    upgrade(engine, "0001")
    _fill_at_0001(engine)
    upgrade(engine)
    _check_converted(engine)


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
