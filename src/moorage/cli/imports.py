"""`moorage import SOURCE-URL …` starts a server-side import of another registry (a whole
registry, a namespace, or a list of repositories), and `moorage imports list|show|cancel|log`
manages them. Two commands rather than one group: Typer cannot tell a source URL from a
subcommand name in the same position, so the noun that acts (`import`) starts one and the
plural (`imports`) lists and inspects them, as `moorage replication executions` does."""

from __future__ import annotations

import sys
import time
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import ApiClient, connect
from moorage.cli.output import CliError, JsonFlag, details, print_json, raw, say, table, when, \
    usage
from moorage.cli.replication import _limit, _read_ca

app = typer.Typer(help="Imports of other registries (basic and advanced editions): list, "
                       "show, cancel, log. Start one with `moorage import SOURCE-URL`.",
                  no_args_is_help=True)

FINISHED = ("succeeded", "failed", "cancelled")
FOLLOW_SECONDS = 30 * 86400  # bounds a hang of `--follow` only


class Kind(str, Enum):
    distribution = "distribution"
    harbor = "harbor"


def start(
    source: Annotated[str, typer.Argument(metavar="SOURCE-URL",
                                          help="The source registry, https://host[:port].")],
    namespace: Annotated[Optional[str], typer.Option(
        "--namespace", "-n", help="Only repositories under this path.")] = None,
    repository: Annotated[Optional[list[str]], typer.Option(
        "--repository", "-r", help="Only this repository (repeat for several).")] = None,
    into: Annotated[str, typer.Option("--into", help="Put in front of each name here.")] = "",
    kind: Annotated[Kind, typer.Option("--kind", help="distribution: list through _catalog; "
                                                      "harbor: through Harbor's API.")
                    ] = Kind.distribution,
    user: Annotated[Optional[str], typer.Option("--user", "-u",
                                                help="Username at the source.")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the source's password from stdin (stored sealed; "
                                 "never shown again).")] = False,
    ca: Annotated[Optional[str], typer.Option(
        "--ca", help="PEM certificates to trust for the source's TLS.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="No TLS verification.")] = False,
    bandwidth: Annotated[Optional[str], typer.Option(
        "--bandwidth", help="Bytes a second, e.g. 50M.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Wait for its end, with a progress bar.")
                      ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Import another registry's repositories into this one (the server copies them)."""
    password = None
    if password_stdin:
        if user is None:
            raise usage("--password-stdin needs --user")
        password = sys.stdin.readline(4097).rstrip("\r\n")
    elif user is not None:
        raise usage("--user needs --password-stdin (the password is never an argument)")
    body = {"url": source, "kind": kind.value, "namespace": namespace,
            "repositories": list(repository) if repository else None, "into": into,
            "username": user, "password": password, "ca_pem": _read_ca(ca),
            "insecure": insecure, "bandwidth": _limit(bandwidth) or None}
    with connect() as api:
        job = api.post("/imports", body)
        if follow:
            job = _follow(api, job, not json_out)
    if json_out:
        print_json(job)
    else:
        say(f"Import {job['id']} of {job['url']} {job['status']}." if follow else
            f"Import {job['id']} of {job['url']} started; follow it with "
            f"`moorage imports show {job['id']}`.")
        if follow:
            _summary(job)
    if follow and job["status"] != "succeeded":
        raise CliError(f"import {job['id']} {job['status']}: {job['message']}")


def _summary(job: dict[str, Any]) -> None:
    say(f"  repositories {job['repositories_done']}/{job['repositories_total']}, tags "
        f"{job['tags_done']}/{job['tags_total']}, {job['bytes']} bytes")
    for error in job["errors"]:
        say(f"  {error['item']}: {error['error']}")


@app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List imports, newest first."""
    with connect() as api:
        found = api.get("/imports")
    if json_out:
        print_json(found)
        return
    table(["ID", "STATUS", "SOURCE", "KIND", "REPOSITORIES", "TAGS", "BYTES", "STARTED"],
          [(j["id"], j["status"], j["url"], j["kind"],
            f"{j['repositories_done']}/{j['repositories_total']}",
            f"{j['tags_done']}/{j['tags_total']}", j["bytes"], when(j["started_at"]))
           for j in found], empty="no imports")


@app.command("show")
def show(import_id: Annotated[int, typer.Argument(help="The import's id.")],
         follow: Annotated[bool, typer.Option("--follow", "-f",
                                              help="Follow it until it ends.")] = False,
         json_out: JsonFlag = False) -> None:
    """Show an import's scope and progress (never its password)."""
    with connect() as api:
        job = api.get(f"/imports/{import_id}")
        if follow:
            job = _follow(api, job, not json_out)
    if json_out:
        print_json(job)
        return
    scope = (job["namespace"] and f"namespace {job['namespace']}") or \
        (job["repositories"] and ", ".join(job["repositories"])) or "the whole registry"
    details([("id", job["id"]), ("status", job["status"]), ("source", job["url"]),
             ("kind", job["kind"]), ("scope", scope), ("into", job["into"] or "(same names)"),
             ("username", job["username"] or ""),
             ("repositories", f"{job['repositories_done']}/{job['repositories_total']}"
                              f" ({job['repositories_failed']} failed)"),
             ("tags", f"{job['tags_done']}/{job['tags_total']} ({job['tags_failed']} failed)"),
             ("bytes", job["bytes"]), ("message", job["message"]),
             ("started", when(job["started_at"])), ("ended", when(job["ended_at"]))])
    for error in job["errors"]:
        say(f"  {error['item']}: {error['error']}")


@app.command("cancel")
def cancel(import_id: Annotated[int, typer.Argument(help="The import's id.")],
           json_out: JsonFlag = False) -> None:
    """Cancel an import: it stops before its next item; what is imported stays."""
    with connect() as api:
        job = api.post(f"/imports/{import_id}/cancel", {})
    if json_out:
        print_json(job)
        return
    say(f"Import {job['id']} {job['status']}.")


@app.command("log")
def log(import_id: Annotated[int, typer.Argument(help="The import's id.")]) -> None:
    """Print an import's log."""
    with connect() as api:
        raw(api.get(f"/imports/{import_id}/log")["log"])


def _follow(api: ApiClient, job: dict[str, Any], bar: bool) -> dict[str, Any]:
    """Poll until the import ends; a Rich bar on stderr (tags, repositories, bytes)."""
    path = f"/imports/{job['id']}"
    deadline = time.monotonic() + FOLLOW_SECONDS
    if not bar:
        while job["status"] not in FINISHED and time.monotonic() < deadline:
            time.sleep(1)
            job = api.get(path)
        return job
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("tags, {task.fields[repos]} repositories, {task.fields[sent]}"),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(job["status"], total=None, repos="", sent="")
        while True:
            progress.update(task, description=job["status"], completed=job["tags_done"],
                            total=job["tags_total"] or None,
                            repos=f"{job['repositories_done']}/{job['repositories_total']}",
                            sent=f"{job['bytes'] / (1 << 20):.1f} MiB")
            if job["status"] in FINISHED or time.monotonic() > deadline:
                return job
            time.sleep(1)
            job = api.get(path)
