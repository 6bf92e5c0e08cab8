"""`moorage serve`: start the registry on granian (SQLite and the local disk by default).

Heavy imports (granian, the app) happen inside the command, so that the client commands,
which never need them, start fast.

Before granian starts, the command makes the data folder private (see store/datadir.py).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from moorage.settings import Settings


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
    from moorage.store.datadir import private_umask

    private_umask()
    try:
        settings = load_settings(config, overrides={
            "listen": listen, "data_dir": data_dir, "workers": workers,
            "database_url": database_url, "storage_url": storage_url, "redis_url": redis_url,
            "edition": edition})
    except SettingsError as exc:
        typer.echo(f"moorage: {exc}", err=True)
        raise typer.Exit(2) from None
    data = Path(settings.data_dir).resolve()
    settings = dataclasses.replace(settings, data_dir=data)
    _claim(settings)
    os.environ.update(export_settings(settings))
    _prepare_in_child()
    typer.echo(f"Moorage listening on http://{settings.listen} (data in {data}, "
               f"{settings.workers} worker{'s' if settings.workers > 1 else ''})", err=True)
    server = Granian(
        "moorage.app:create_app", factory=True, interface=Interfaces.ASGI,
        address=settings.host, port=settings.port, workers=settings.workers,
        log_enabled=True, log_access=False, backlog=2048,
        websockets=False,  # the event loop is uvloop when installed (a dependency on Linux)
    )
    server.serve()


def _claim(settings: Settings) -> None:
    """Make the data folder private, tightening one an earlier version left open."""
    from moorage.store.datadir import tighten

    changed = tighten(Path(settings.data_dir))
    if changed:
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        typer.echo(f"moorage: tightened the modes of {len(changed)} path(s) in the data folder "
                   f"that other users could reach (group and other access removed): "
                   f"{', '.join(changed[:4])}{more}", err=True)


def _prepare_in_child() -> None:
    """First-start work (migrations, keys, the admin account) in a short-lived process.

    The granian main process only forks and watches the workers. Done here, the preparation
    would leave the whole application, and argon2's 19 MiB peak for the admin's hash, in that
    process for the server's lifetime: ~70 MiB of the memory budget for nothing.
    """
    code = "from moorage.cli.serve import prepare_from_environment as p; raise SystemExit(p())"
    result = subprocess.run([sys.executable, "-c", code], env=os.environ, check=False)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)


def prepare_from_environment() -> int:
    """The child's side of _prepare_in_child: settings come from the exported environment."""
    from moorage.app import prepare_instance
    from moorage.db.migrate import NotMigrated
    from moorage.settings import load_settings

    try:
        generated = prepare_instance(load_settings(), os.environ.get("MOORAGE_ADMIN_PASSWORD"))
    except NotMigrated as exc:
        print(f"moorage: {exc}", file=sys.stderr)
        return 2
    if generated:
        print(f"Created the administrator account: user 'admin', password '{generated}' "
              f"(shown once; change it with `moorage user passwd admin`)", file=sys.stderr)
    return 0
