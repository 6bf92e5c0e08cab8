"""`moorage subscription …`: artifact subscriptions, which follow an upstream repository's
tags (a glob, a regex or a SemVer range) into a local repository; their executions, with a
progress bar while one runs."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import CliError, JsonFlag, details, print_json, say, table, when
from moorage.cli.replication import (FollowFlag, LimitOption, LogOption, WaitFlag, _read_ca,
                                     show_executions, start_execution)

app = typer.Typer(help="Artifact subscriptions: follow another registry's repository into "
                       "this one, by tag filter, on a schedule (basic edition and up).",
                  no_args_is_help=True)
BASE = "/subscriptions"
NameOrId = Annotated[str, typer.Argument(help="The subscription's name or id.")]


class Kind(str, Enum):
    glob = "glob"
    regex = "regex"
    semver = "semver"


def _path(subscription: str) -> str:
    return f"{BASE}/{segment(subscription)}"


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The subscription's name.")],
    url: Annotated[str, typer.Option("--url", help="The upstream registry, https://host.")],
    upstream: Annotated[str, typer.Option("--upstream", help="The repository there.")],
    repository: Annotated[str, typer.Option("--repository", "-r",
                                            help="The local repository, namespace/name.")],
    kind: Annotated[Kind, typer.Option("--kind", help="How --filter reads.")] = Kind.glob,
    tag_filter: Annotated[str, typer.Option(
        "--filter", "-t", help="A glob (1.*), a regex (v?1\\.\\d+\\.\\d+) or a SemVer range "
                               "(>=1.2 <2, ^1.4, ~2.0).")] = "*",
    username: Annotated[Optional[str], typer.Option("--username", "-u")] = None,
    password: Annotated[Optional[str], typer.Option(
        "--password", envvar="MOORAGE_SUBSCRIPTION_PASSWORD",
        help="Stored sealed; never shown again.")] = None,
    ca_file: Annotated[Optional[str], typer.Option(
        "--ca-file", help="PEM certificates to trust for the upstream's TLS.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="No TLS verification.")] = False,
    cron: Annotated[str, typer.Option("--cron", help="Run on this schedule.")] = "",
    keep: Annotated[Optional[int], typer.Option(
        "--keep", min=1, max=10_000, help="Keep only the newest N matching tags.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Create a subscription."""
    body = {"name": name, "url": url, "upstream": upstream, "repository": repository,
            "filter_kind": kind.value, "filter": tag_filter, "username": username,
            "password": password, "ca_pem": _read_ca(ca_file), "insecure": insecure,
            "cron": cron, "keep_newest": keep, "enabled": not disabled}
    with connect() as api:
        found = api.post(BASE, body)
    if json_out:
        print_json(found)
        return
    say(f"Created subscription {found['name']}: {found['url']}/{found['upstream']} -> "
        f"{found['repository']} ({found['filter_kind']} {found['filter']}).")


@app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List the subscriptions."""
    with connect() as api:
        found = api.get(BASE)
    if json_out:
        print_json(found)
        return
    table(["NAME", "UPSTREAM", "REPOSITORY", "FILTER", "SCHEDULE", "KEEP", "ENABLED"],
          [(s["name"], f"{s['url']}/{s['upstream']}", s["repository"],
            f"{s['filter_kind']} {s['filter']}", s["cron"] or "manual",
            s["keep_newest"] or "all", s["enabled"]) for s in found],
          empty="no subscriptions")


@app.command("show")
def show(subscription: NameOrId, json_out: JsonFlag = False) -> None:
    """Show a subscription (never its password)."""
    with connect() as api:
        s = api.get(_path(subscription))
    if json_out:
        print_json(s)
        return
    details([("id", s["id"]), ("name", s["name"]), ("url", s["url"]),
             ("upstream", s["upstream"]), ("repository", s["repository"]),
             ("filter", f"{s['filter_kind']} {s['filter']}"),
             ("username", s["username"] or ""),
             ("password", "set" if s["has_password"] else "none"),
             ("custom CA", bool(s["ca_pem"])), ("insecure", s["insecure"]),
             ("schedule", s["cron"] or "(by hand)"), ("keep newest", s["keep_newest"] or "all"),
             ("enabled", s["enabled"]), ("updated by", s["updated_by"]),
             ("updated", when(s["updated_at"]))])


@app.command("update")
def update(
    subscription: NameOrId,
    name: Annotated[Optional[str], typer.Option("--name", help="A new name.")] = None,
    url: Annotated[Optional[str], typer.Option("--url")] = None,
    upstream: Annotated[Optional[str], typer.Option("--upstream")] = None,
    repository: Annotated[Optional[str], typer.Option("--repository", "-r")] = None,
    kind: Annotated[Optional[Kind], typer.Option("--kind")] = None,
    tag_filter: Annotated[Optional[str], typer.Option("--filter", "-t")] = None,
    username: Annotated[Optional[str], typer.Option("--username", "-u")] = None,
    password: Annotated[Optional[str], typer.Option(
        "--password", envvar="MOORAGE_SUBSCRIPTION_PASSWORD")] = None,
    clear_password: Annotated[bool, typer.Option("--clear-password")] = False,
    ca_file: Annotated[Optional[str], typer.Option("--ca-file")] = None,
    insecure: Annotated[Optional[bool], typer.Option("--insecure/--verify-tls")] = None,
    cron: Annotated[Optional[str], typer.Option("--cron", help="\"\" removes it.")] = None,
    keep: Annotated[Optional[int], typer.Option("--keep", min=0, max=10_000,
                                                help="0 keeps all.")] = None,
    enabled: Annotated[Optional[bool], typer.Option("--enable/--disable")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change a subscription; what is not given stays as it is."""
    body: dict[str, Any] = {k: v for k, v in {
        "name": name, "url": url, "upstream": upstream, "repository": repository,
        "filter_kind": kind.value if kind else None, "filter": tag_filter,
        "username": username, "password": password, "ca_pem": _read_ca(ca_file),
        "insecure": insecure, "cron": cron, "keep_newest": keep,
        "enabled": enabled}.items() if v is not None}
    if clear_password:
        body["clear_password"] = True
    if not body:
        raise CliError("nothing to change: give at least one option", 2)
    with connect() as api:
        found = api.patch(_path(subscription), body)
    if json_out:
        print_json(found)
    else:
        say(f"Updated subscription {found['name']}.")


@app.command("delete")
def delete(subscription: NameOrId) -> None:
    """Delete a subscription and its executions (the tags it brought in stay)."""
    with connect() as api:
        api.delete(_path(subscription))
    say(f"Deleted subscription {subscription}.")


@app.command("run")
def run(subscription: NameOrId, follow: WaitFlag = False, json_out: JsonFlag = False) -> None:
    """Run a subscription now."""
    start_execution(BASE, _path(subscription), follow, json_out)


@app.command("executions")
def executions(subscription: NameOrId, follow: FollowFlag = False, log: LogOption = None,
               limit: LimitOption = 20, json_out: JsonFlag = False) -> None:
    """A subscription's executions, newest first: status, progress, errors."""
    show_executions(BASE, _path(subscription), follow, log, limit, json_out)
