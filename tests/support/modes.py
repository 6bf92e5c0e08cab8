"""File modes as another local user would meet them, and Moorage run under a permissive umask.

Most systems start services with umask 022, so a file created without choosing its mode is
0644: readable by every local user. Tests run the real server and the real command under that
umask, and then look for any path whose mode lets group or others in.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.support.server import MoorageServer

PERMISSIVE = ["sh", "-c", 'umask 022 && exec "$@"', "sh"]  # then the command and its args


def open_to_others(root: Path) -> list[str]:
    """Every path at or under `root` (not following links) that group or others may use."""
    found = []
    for path in [root, *sorted(root.rglob("*"))]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue  # a temporary file of a server at work, gone since the listing
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path} {stat.S_IMODE(mode):04o}")
    return found


def open_members(archive: Path) -> list[str]:
    """Members of a tar archive whose recorded mode lets group or others in (what `tar x`
    or a restore would recreate)."""
    with tarfile.open(archive) as tar:
        return [f"{m.name} {m.mode:04o}" for m in tar.getmembers() if m.mode & 0o077]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


class PermissiveServer(MoorageServer):
    """`moorage serve` started under umask 022, on a folder it creates itself (no migrated
    database copied in: the modes of what the server makes are what these tests check)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("template", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def command(self) -> list[str]:
        return [*PERMISSIVE, *super().command()]


def moorage_permissive(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real `moorage` command under umask 022, without the test run's MOORAGE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["NO_COLOR"] = "1"
    return subprocess.run([*PERMISSIVE, sys.executable, "-m", "moorage", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)
