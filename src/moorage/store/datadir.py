"""The data folder belongs to the user Moorage runs as.

Modes. `moorage.db` holds password hashes, webhook secrets and the audit log, and `keys/` the
token signing key and the encryption master keys, so nothing in the data folder is for other
local users: folders are 0700, files 0600. Three layers make that hold whatever umask the
service manager started us with:

1. Every entry point that writes the data folder sets umask 077 first (`private_umask`), so
   files other code creates (SQLite's `-wal` and `-shm`, the lock files, tar extraction)
   come out private too.
2. The files and folders Moorage creates itself get their mode explicitly
   (`private_dirs`, `create_private_file`), so the modes do not depend on layer 1.
3. A data folder left open by an earlier version is tightened when the server starts
   (`tighten`): the folder itself, its top-level entries and `keys/`. The blob tree is not
   walked (it may hold millions of files): behind a 0700 folder nobody else can reach it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OTHERS = 0o077  # group and other bits


def private_umask() -> None:
    """Files and folders this process creates are for its own user only (umask 077)."""
    os.umask(_OTHERS)


def private_dirs(path: Path) -> None:
    """`mkdir -p` that makes every folder it creates 0700 (`Path.mkdir(parents=True)` applies
    its mode to the last one only)."""
    if path.is_dir():
        return
    if not path.parent.is_dir():
        private_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR)


def create_private_file(path: Path, exclusive: bool = False) -> int:
    """Open `path` for writing, created 0600 if it does not exist; the descriptor."""
    flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if exclusive else 0)
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)


def make_private(path: Path) -> bool:
    """Take group and other bits off `path` (never following a link); True if it changed."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode) or not mode & _OTHERS:
        return False
    os.chmod(path, stat.S_IMODE(mode) & ~_OTHERS)
    return True


def make_tree_private(root: Path) -> None:
    """`make_private` on `root` and everything below it (for a tree this process just wrote:
    a restore in staging, a backup folder)."""
    make_private(root)
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            make_private(Path(folder) / name)


def tighten(data_dir: Path) -> list[str]:
    """Create the data folder 0700, or tighten an existing one; the paths it had to change.

    Only the folder, its top-level entries and the key folder are looked at: see the module's
    docstring. A path this user may not chmod is left as it is (and reported by the caller's
    own checks, such as the master key file's warning).
    """
    private_dirs(data_dir)
    candidates = [data_dir, *data_dir.iterdir()]
    keys = data_dir / "keys"
    if keys.is_dir() and not keys.is_symlink():
        candidates += sorted(keys.rglob("*"))
    changed = []
    for path in candidates:
        try:
            if make_private(path):
                changed.append(str(path))
        except PermissionError:
            continue
    return changed
