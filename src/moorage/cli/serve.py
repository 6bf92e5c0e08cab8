"""`moorage serve`: start the registry on granian (SQLite and the local disk by default).

Heavy imports (granian, the app) happen inside the command, so that the client commands,
which never need them, start fast.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Optional

import typer


def serve(
    listen: Annotated[Optional[str], typer.Option(help="HOST:PORT to listen on [default: 127.0.0.1:5000]")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder for metadata and blobs [default: ./moorage-data]")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML settings file")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes [default: 1]")] = None,
    database_url: Annotated[Optional[str], typer.Option(help="postgresql://… for scale-out [default: SQLite in the data dir]")] = None,
    storage_url: Annotated[Optional[str], typer.Option(help="s3://BUCKET/PREFIX?endpoint=…&region=… [default: the data dir]")] = None,
    redis_url: Annotated[Optional[str], typer.Option(help="redis://HOST:PORT/DB, shared by replicas")] = None,
    edition: Annotated[Optional[str], typer.Option(help="personal, basic or advanced [default: advanced]")] = None,
) -> None:
    """Serve the registry (SQLite and the local disk by default)."""
    from granian import Granian
    from granian.constants import Interfaces

    from moorage.settings import SettingsError, export_settings, load_settings

    try:
        settings = load_settings(config, overrides={
            "listen": listen, "data_dir": data_dir, "workers": workers,
            "database_url": database_url, "storage_url": storage_url, "redis_url": redis_url,
            "edition": edition})
    except SettingsError as exc:
        typer.echo(f"moorage: {exc}", err=True)
        raise typer.Exit(2) from None
    from moorage.app import prepare_instance

    data = Path(settings.data_dir).resolve()
    settings = dataclasses.replace(settings, data_dir=data)
    from moorage.db.migrate import NotMigrated

    try:
        generated = prepare_instance(settings, os.environ.get("MOORAGE_ADMIN_PASSWORD"))
    except NotMigrated as exc:
        typer.echo(f"moorage: {exc}", err=True)
        raise typer.Exit(2) from None
    if generated:
        typer.echo(f"Created the administrator account: user 'admin', password '{generated}' "
                   f"(shown once; change it with `moorage user passwd admin`)", err=True)
    os.environ.update(export_settings(settings))
    typer.echo(f"Moorage listening on http://{settings.listen} (data in {data}, "
               f"{settings.workers} worker{'s' if settings.workers > 1 else ''})", err=True)
    server = Granian(
        "moorage.app:create_app", factory=True, interface=Interfaces.ASGI,
        address=settings.host, port=settings.port, workers=settings.workers,
        log_enabled=True, log_access=False, backlog=2048,
        websockets=False,  # the event loop is uvloop when installed (a dependency on Linux)
    )
    server.serve()

