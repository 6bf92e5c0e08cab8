"""Schema migrations (Alembic), for both engines.

The embedded instance migrates itself on start, because one command must be enough. A shared
PostgreSQL database is migrated on purpose, once, with `moorage migrate`: replicas refuse to
start on a schema older than their code and say which command to run, rather than racing each
other to alter tables under live traffic.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


class NotMigrated(RuntimeError):
    """The database schema is not at the revision this code expects."""


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    script = ScriptDirectory.from_config(_config(None))  # type: ignore[arg-type]
    head = script.get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = _config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def check_migrated(engine: Engine, command_hint: str = "moorage migrate") -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty (never migrated)" if current is None else f"at revision {current}"
        raise NotMigrated(f"the database schema is {state}, this Moorage needs {head}: "
                          f"run `{command_hint}` first")


def ensure_schema(engine: Engine) -> None:
    """Embedded SQLite migrates itself; a shared database must already be migrated."""
    if engine.dialect.name == "sqlite":
        if current_revision(engine) != head_revision():
            upgrade(engine)
    else:
        check_migrated(engine)


def autogenerate(engine: Engine, message: str) -> None:
    """For developers: write a migration for the difference between the schema and the DB."""
    config = _config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True)
