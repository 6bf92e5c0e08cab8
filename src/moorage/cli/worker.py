"""`moorage worker`: run background jobs without serving HTTP (scale-out deployments)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from moorage.cli.datafolder import announce, existing_instance


def worker(
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder for metadata and blobs")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML settings file")] = None,
    once: Annotated[bool, typer.Option(help="Run the jobs that are due, then exit")] = False,
) -> None:
    """Run background jobs (GC, retention, webhooks, …) until stopped with Ctrl-C or SIGTERM."""
    import asyncio

    from moorage.app import build_instance
    from moorage.settings import SettingsError, load_settings

    try:
        settings = load_settings(config, overrides={"data_dir": data_dir})
    except SettingsError as exc:
        typer.echo(f"moorage: {exc}", err=True)
        raise typer.Exit(2) from None
    folder = existing_instance(settings)  # never a new instance where there was none
    announce(folder)
    from moorage.ops.logs import configure as configure_logs

    configure_logs(settings.log_level, settings.log_format)
    from moorage.cli.startup import reported_in_one_line

    with reported_in_one_line(settings.database_url):
        instance = build_instance(settings)
    if once:
        ran = instance.worker.drain()
        typer.echo(f"ran {ran} job{'s' if ran != 1 else ''}", err=True)
        return

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        typer.echo(f"Moorage worker {instance.worker.worker_id} running jobs "
                   f"({', '.join(sorted(instance.worker.types))})", err=True)
        await instance.worker.run(stop)

    asyncio.run(main())
