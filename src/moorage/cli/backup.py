"""`moorage backup` and `moorage restore`: work on a data dir directly, like `worker`.

They do not go through the API: a backup needs the database file and the blob files of an
embedded instance, and a restore prepares a data dir before any server runs on it. Progress
goes to stderr (a Rich bar of bytes and blobs), the summary or `--json` to stdout, a refusal
to stderr as one line with exit code 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from moorage.cli.output import CliError, JsonFlag, details, print_json, say, usage

if TYPE_CHECKING:
    from moorage.backup import Progress, ProgressEvent

DataDirOption = Annotated[Optional[Path], typer.Option(
    help="The instance's data folder (default: from the settings, else ./moorage-data)")]
ConfigOption = Annotated[Optional[Path], typer.Option(help="TOML settings file")]

_STAGES = {"snapshot": "database snapshot", "keys": "keys", "blobs": "blobs",
           "extract": "unpacking", "done": "done"}


def _data_dir(data_dir: Path | None, config: Path | None, action: str) -> Path:
    """The embedded instance's data folder; refused (nothing written) when the settings say
    the registry lives in PostgreSQL or S3 instead (backup/scope.py)."""
    from moorage.backup import BackupError
    from moorage.backup.scope import require_embedded
    from moorage.settings import SettingsError, load_settings
    try:
        settings = load_settings(config, overrides={"data_dir": data_dir})
    except SettingsError as exc:
        raise usage(str(exc)) from None
    try:
        require_embedded(action, settings.database_url, settings.storage_url)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    return Path(settings.data_dir)


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator["Progress"]:
    """A Rich bar on stderr, by bytes, with the blob count beside it; silent when disabled."""
    if not enabled:
        yield lambda _event: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)

    with Progress(TextColumn("{task.description:<18}"), BarColumn(),
                  TextColumn("{task.fields[blobs]}"), DownloadColumn(binary_units=True), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None, blobs="")

        def update(event: "ProgressEvent") -> None:
            label = _STAGES.get(event.stage, event.stage)
            if event.stage == "blobs":
                bar.update(task, description=label, completed=event.bytes_done,
                           total=event.bytes_total, blobs=f"{event.done}/{event.total} blobs")
            else:
                bar.update(task, description=label)

        yield update


def _n(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _contents(tables: dict[str, int]) -> str:
    return (f"{_n(tables.get('repositories', 0), 'repository', 'repositories')}, "
            f"{_n(tables.get('manifests', 0), 'manifest')}, {_n(tables.get('tags', 0), 'tag')}")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def backup(
    dest: Annotated[Path, typer.Argument(help="New folder, or an archive ending in .tar, "
                                              ".tar.gz or .tgz")],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    json_: JsonFlag = False,
) -> None:
    """Back up an embedded instance (database, keys, blobs) while it keeps serving.

    Refused when the settings point at PostgreSQL or S3 (a scale-out deployment).

    Every push acknowledged before the backup starts is in it, whole. Not included: uploads still in progress (clients restart them after a restore) and the settings file.
    """
    from moorage.backup import BackupError
    from moorage.backup import backup as make_backup

    source = _data_dir(data_dir, config, "backup")
    try:
        with _progress_bar(not json_) as progress:
            manifest = make_backup(source, dest, progress)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    if json_:
        print_json({"path": str(dest.absolute()), **manifest.to_dict()})
    else:
        tables = manifest.database.get("tables", {})
        how = (f"{manifest.linked} hard-linked, {manifest.copied} copied"
               if manifest.linked else f"{manifest.copied} copied")
        say(f"Backup written to {dest}")
        details([
            ("snapshot", manifest.snapshot_at),
            ("database", f"{_size(manifest.database['size'])}: {_contents(tables)}"),
            ("keys", _n(len(manifest.keys), "file")),
            ("blobs", f"{manifest.blob_count} ({_size(manifest.blob_bytes)}; {how}), "
                      f"each verified against its digest"),
            ("not included", f"{manifest.database['uploads_dropped']} uploads in progress, "
                             f"the settings file"),
        ])
    if not manifest.complete:
        first = manifest.problems[0]
        raise CliError(f"backup incomplete: {len(manifest.problems)} blob(s) missing or corrupt "
                       f"in the instance (first: {first.digest} {first.problem}); the rest is "
                       f"in {dest}, the list in its backup.json")


def restore(
    backup: Annotated[Path, typer.Argument(help="A backup folder or archive")],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the contents of a non-empty data folder (deleted once the "
                        "restore is in place). Stop any server using it first.")] = False,
    partial: Annotated[bool, typer.Option(
        "--partial", help="Restore even if some blobs are missing or corrupt (images that "
                          "need them will not pull)")] = False,
    json_: JsonFlag = False,
) -> None:
    """Restore a backup into a data folder, verifying every file before it is put in place.

    Then start the instance on it with `moorage serve --data-dir DIR`.
    """
    from moorage.backup import BackupError
    from moorage.backup import restore as do_restore

    target = _data_dir(data_dir, config, "restore")
    try:
        with _progress_bar(not json_) as progress:
            result = do_restore(backup, target, force=force, partial=partial, progress=progress)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    if json_:
        print_json(result.to_dict())
        return
    tables = result.manifest.database.get("tables", {})
    say(f"Restored {backup} into {target}" + (" (its previous contents were replaced)"
                                              if result.replaced else ""))
    details([
        ("snapshot", result.manifest.snapshot_at),
        ("database", _contents(tables)),
        ("keys", _n(len(result.manifest.keys), "file")),
        ("blobs", f"{result.blob_count} ({_size(result.blob_bytes)}), each verified"),
        ("problems", f"{len(result.problems)} blob(s) missing or corrupt (--partial)"
                     if result.problems else "none"),
    ])
    say(f"Start it with: moorage serve --data-dir {target}")
