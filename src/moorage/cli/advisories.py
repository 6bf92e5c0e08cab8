"""`moorage advisories …`: the vulnerability scanner's advisory database.

`import` works on the instance's database directly, like `migrate` and `backup`: an advisory
feed is operator data loaded on a schedule (a cron job or a Kubernetes CronJob next to the
database), often hundreds of megabytes, and it needs no registry credentials, only the
database the settings name (the embedded data folder, or PostgreSQL with --database-url).
`status` and `show` read through the API like every other command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import CliError, JsonFlag, details, print_json, say, table, usage, when

app = typer.Typer(help="Vulnerability advisories (OSV, Alpine secdb): import, status, show.",
                  no_args_is_help=True)


def _import_store(data_dir: Path | None, database_url: str | None, config: Path | None) -> Any:
    from moorage.cli.datafolder import announce, existing_instance
    from moorage.cli.startup import reported_in_one_line
    from moorage.db.metadata import open_engine, sqlite_url
    from moorage.db.migrate import NotMigrated, check_migrated
    from moorage.scan.advisories.store import AdvisoryStore
    from moorage.settings import SettingsError, load_settings

    try:
        settings = load_settings(config, overrides={"data_dir": data_dir,
                                                    "database_url": database_url})
    except SettingsError as exc:
        raise usage(str(exc)) from None
    folder = existing_instance(settings)
    with reported_in_one_line(settings.database_url):
        engine = open_engine(settings.database_url or sqlite_url(folder))
        try:
            check_migrated(engine, "moorage migrate" if settings.database_url
                           else "moorage serve (once) or moorage migrate")
        except NotMigrated as exc:
            raise CliError(str(exc)) from None
    if not settings.database_url:
        announce(folder)
    return AdvisoryStore(engine), settings


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A folder or a zip of OSV JSON/YAML records "
                                              "(e.g. osv.dev's all.zip), or Alpine secdb files")],
    partial: Annotated[bool, typer.Option(
        "--partial", help="Add and update only: do not remove stored advisories of the "
                          "dump's ecosystems that the dump no longer holds")] = False,
    max_record_mib: Annotated[int, typer.Option(min=1, max=256,
                                                help="Largest record accepted")] = 4,
    max_total_mib: Annotated[int, typer.Option(
        min=1, help="Most bytes read from the source in all (zip bombs)")] = 8192,
    max_entries: Annotated[int, typer.Option(min=1, help="Most entries in the source")] = 1_000_000,
    data_dir: Annotated[Optional[Path], typer.Option(help="The instance's data folder")] = None,
    database_url: Annotated[Optional[str], typer.Option(help="postgresql://… [default: the "
                                                             "setting]")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML settings file")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Load advisories into the instance's database; unchanged records cost nothing.

    Records the dump no longer holds are removed for the ecosystems it covers (unless
    --partial, or some entries could not be read); withdrawn records are dropped.
    """
    from moorage.scan.advisories.importer import Limits, SourceError, run_import

    store, settings = _import_store(data_dir, database_url, config)
    limits = Limits(max_record_mib * 1024 * 1024, max_total_mib * 1024 * 1024, max_entries)
    try:
        if json_out:
            summary = run_import(path, store, partial=partial, limits=limits)
        else:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                          console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("import", total=None)
                summary = run_import(path, store, partial=partial, limits=limits,
                                     progress=lambda done, total: bar.update(
                                         task, completed=done, total=total))
    except SourceError as exc:
        raise CliError(f"import stopped: {exc}") from None
    result = summary.as_dict()
    # images holding a package whose advisories changed are matched again by the server's
    # workers, from their stored packages (no layer is read); the jobs go into the queue
    from moorage.scan.service import enqueue_rescans
    result["rescans_queued"] = enqueue_rescans(store.engine, summary.changed_keys,
                                               settings.scan_timeout)
    if json_out:
        print_json(result)
        return
    say(f"Imported {path}")
    details([("added", result["added"]), ("updated", result["updated"]),
             ("unchanged", result["unchanged"]), ("withdrawn", result["withdrawn"]),
             ("removed", result["removed"]),
             ("skipped", result["skipped"]), ("rows written", result["writes"]),
             ("rescans queued", result["rescans_queued"]),
             ("seconds", result["seconds"])])
    if result["stale_kept"]:
        say(f"{result['stale_kept']} advisories the dump no longer holds were kept, because "
            f"some entries could not be read")
    if summary.skipped:
        table(("skipped entry", "reason"),
              [(s["entry"], s["reason"]) for s in summary.skipped[:50]])


@app.command("status")
def status(json_out: JsonFlag = False) -> None:
    """How many advisories per ecosystem, and the last import."""
    with connect() as api:
        state = api.get("/advisories")
    if json_out:
        print_json(state)
        return
    table(("ecosystem", "advisories"), sorted(state["ecosystems"].items()),
          empty="no advisories imported")
    last = state.get("last_import")
    details([("total", state["total"]),
             ("last import", f"{when(last['finished_at'])} from {last['source']}"
              if last else "never")])


@app.command("show")
def show(ident: Annotated[str, typer.Argument(
        metavar="ID", help="An advisory id or alias, e.g. CVE-2019-10906 or PYSEC-2019-217")],
         json_out: JsonFlag = False) -> None:
    """One advisory: severity, affected packages and ranges."""
    with connect() as api:
        advisory = api.get(f"/advisories/{segment(ident)}")
    if json_out:
        print_json(advisory)
        return
    record = advisory["record"]
    severity = advisory["severity"]
    details([("id", advisory["id"]), ("aliases", ", ".join(record.get("aliases") or []) or "-"),
             ("severity", severity["level"] + (f" ({severity['score']})"
                                               if severity["score"] is not None else "")),
             ("summary", advisory["summary"] or "-"), ("modified", advisory["modified"] or "-")])
    rows = []
    for affected in record.get("affected") or []:
        package = affected.get("package") or {}
        for rng in affected.get("ranges") or []:
            events = ", ".join(f"{k} {v}" for e in rng.get("events") or [] for k, v in e.items())
            rows.append((package.get("ecosystem", ""), package.get("name", ""),
                         rng.get("type", ""), events))
        if affected.get("versions") and not affected.get("ranges"):
            rows.append((package.get("ecosystem", ""), package.get("name", ""), "versions",
                         ", ".join(affected["versions"][:20])))
    table(("ecosystem", "package", "range", "events"), rows)
