"""Which deployments `backup` and `restore` can handle: embedded instances only, for now.

A backup copies the SQLite database and the blob files of one data folder. Settings that put
the metadata in PostgreSQL (`database_url`) or the blobs in S3 (`storage_url`) mean the data
folder is not where the registry lives: backing it up would copy the wrong thing (often an
empty or stale folder) and report success, so both commands refuse before touching anything.
Kept apart from create/restore so that the rule is one pure function the CLI asks first.
"""

from __future__ import annotations

from moorage.backup.format import BackupError

_WHERE = {"database_url": ("PostgreSQL", "its metadata"),
          "storage_url": ("S3", "its blobs")}


def require_embedded(action: str, database_url: str, storage_url: str) -> None:
    """Raise BackupError naming each scale-out setting in use; return for an embedded one."""
    used = [name for name, value in (("database_url", database_url),
                                     ("storage_url", storage_url)) if value]
    if not used:
        return
    parts = " and ".join(f"{_WHERE[name][1]} in {_WHERE[name][0]} ({name})" for name in used)
    raise BackupError(
        f"{action} refused: the settings put {parts}; `moorage {action}` handles embedded "
        f"instances only (SQLite and blobs in the data folder) and wrote nothing. Back up a "
        f"scale-out deployment with its services' own tools: a database dump (pg_dump) "
        f"first, then a copy of the bucket (blobs are content-addressed and never rewritten, "
        f"so a copy made after the dump holds every blob the dump references, unless a GC ran "
        f"in between: pause the GC schedule meanwhile)")


__all__ = ["require_embedded"]
