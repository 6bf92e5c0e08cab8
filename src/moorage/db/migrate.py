"""Schema migrations (Alembic), for both engines.

The embedded instance migrates itself on start, because one command must be enough. A shared
PostgreSQL database is migrated on purpose, once, with `moorage migrate`: replicas refuse to
start on a schema older than their code and say which command to run, rather than racing each
other to alter tables under live traffic.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION_RE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(?:'([^']*)'|\"([^\"]*)\"|None)",
                          re.MULTILINE)


class NotMigrated(RuntimeError):
    """The database schema is not at the revision this code expects."""


def _config(engine: Engine) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest revision, read from the migration files without loading Alembic.

    Every worker checks the schema when it starts; Alembic costs ~12 MiB of memory per
    process, so it is only imported to migrate. tests/db checks that this agrees with it.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for kind, single, double in _REVISION_RE.findall(path.read_text()):
            value = single or double
            if value:
                (revisions if kind == "revision" else parents).add(value)
    heads = revisions - parents
    assert len(heads) == 1, f"expected one head revision, found {sorted(heads)}"
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision` in one transaction.

    On SQLite, foreign keys are off while it runs: a migration that alters a column there
    rebuilds the table (copy, drop, rename), and dropping the old `repositories` with
    foreign keys on cascades into every tag, blob link and manifest link of every
    repository. The pragma only takes effect outside a transaction, so it is set (and
    checked) before the migration's begins, the references are checked before it commits,
    and it is set back on the connection before it returns to the pool.
    """
    from alembic import command

    config = _config(engine)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            if conn.exec_driver_sql("PRAGMA foreign_keys").scalar() != 0:
                raise RuntimeError("cannot turn SQLite foreign keys off to migrate safely")
            conn.commit()  # ends SQLAlchemy's implicit transaction; nothing was written
        try:
            with conn.begin():
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"the migration broke {len(broken)} references, "
                                           f"e.g. {broken[0]}; nothing was changed")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


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
    from alembic import command

    config = _config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True)
