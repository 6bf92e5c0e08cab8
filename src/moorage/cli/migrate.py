"""`moorage migrate`: bring a database schema to this version (PostgreSQL before replicas
start; the embedded SQLite database migrates itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from moorage.cli.output import JsonFlag, print_json, say


def migrate(
    database_url: Annotated[Optional[str], typer.Option(help="postgresql://… [default: the setting]")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="for the embedded SQLite database")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML settings file")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Apply the schema migrations this version of Moorage needs."""
    from moorage.db.metadata import open_engine, sqlite_url
    from moorage.db.migrate import current_revision, head_revision, upgrade
    from moorage.cli.startup import reported_in_one_line
    from moorage.settings import SettingsError, load_settings

    try:
        settings = load_settings(config, overrides={"database_url": database_url,
                                                    "data_dir": data_dir})
    except SettingsError as exc:
        typer.echo(f"moorage: {exc}", err=True)
        raise typer.Exit(2) from None
    data = Path(settings.data_dir).resolve()
    if not settings.database_url:
        data.mkdir(parents=True, exist_ok=True)
    with reported_in_one_line(settings.database_url):
        engine = open_engine(settings.database_url or sqlite_url(data))
        before = current_revision(engine)
        upgrade(engine)
        after, head = current_revision(engine), head_revision()
    if json_out:
        print_json({"from": before, "to": after, "head": head})
    elif before == after:
        say(f"The schema is up to date (revision {after}).")
    else:
        say(f"Migrated the schema from {before or 'nothing'} to {after}.")
