"""The data folder of the commands that work on an instance directly (`keys`, `worker`).

Such a command, run in the wrong folder, used to make a new instance there (a database, a
signing key, even a master key) and report on that. They now find an existing instance or
refuse, and say which folder they act on, so that a mistyped or missing `--data-dir` shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from moorage.cli.output import CliError, print_error

if TYPE_CHECKING:
    from moorage.settings import Settings


def existing_instance(settings: Settings) -> Path:
    """The instance's data folder, resolved; refused when it holds no instance.

    On SQLite the database file is the instance; with a shared database (`database_url`)
    the folder holds only local parts (locks, a key file) and may be new.
    """
    folder = Path(settings.data_dir).resolve()
    if not settings.database_url and not (folder / "moorage.db").is_file():
        raise CliError(f"no Moorage instance in {folder} (no moorage.db): give the "
                       f"instance's folder with --data-dir")
    return folder


def announce(folder: Path, json_out: bool = False) -> None:
    """Say which data folder a command acts on, on stderr (under --json the answer carries
    it instead, so that stderr stays one JSON line at most)."""
    if not json_out:
        print_error(f"data folder: {folder}")
