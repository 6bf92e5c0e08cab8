"""Backup and restore of an embedded instance (SQLite + the local disk), while it serves.

`backup()` writes a folder or a tar archive holding a consistent database snapshot, the keys
and every blob that snapshot references, each verified as it is copied; `restore()` checks
all of it again before it becomes a data dir. See create.py for why the copy is consistent
and format.py for the layout. Scale-out instances (PostgreSQL, S3) back up with their own
tools; this package only knows the embedded layout, and scope.py refuses the others.
"""

from moorage.backup.create import backup
from moorage.backup.format import (BackupError, BackupManifest, BlobProblem, Progress,
                                   ProgressEvent)
from moorage.backup.restore import RestoreResult, read_manifest, restore

__all__ = ["backup", "restore", "read_manifest", "BackupError", "BackupManifest",
           "BlobProblem", "Progress", "ProgressEvent", "RestoreResult"]
