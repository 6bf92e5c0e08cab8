"""`moorage replication …`: replication rules to and from other registries, their executions
(with a progress bar while one runs) and what differs between source and destination."""

from __future__ import annotations

import time
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import ApiClient, connect, segment
from moorage.cli.output import (CliError, JsonFlag, details, print_json, raw, say, table,
                                usage, when)

app = typer.Typer(help="Replication: copy images, with their signatures and SBOMs, to or from "
                       "another registry (advanced edition).", no_args_is_help=True)
rule_app = typer.Typer(help="Replication rules.", no_args_is_help=True)
app.add_typer(rule_app, name="rule")

FINISHED = ("succeeded", "failed", "stopped")
# how long `--follow` waits for an execution to end (it only bounds a hang)
FOLLOW_SECONDS = 7 * 86400
WaitFlag = Annotated[bool, typer.Option("--follow", "-f",
                                      help="Wait for its end, with a progress bar.")]


class Mode(str, Enum):
    push = "push"
    pull = "pull"


def _rule_path(rule: str) -> str:
    return f"/replication/rules/{segment(rule)}"


def _limit(value: str | None) -> int | None:
    """`50M`, `1G`, `800k`, `12345` → bytes a second; `0`/`none` → no limit."""
    if value is None:
        return None
    text = value.strip().lower().removesuffix("/s").removesuffix("b")
    if text in ("0", "none", "off", ""):
        return 0
    factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    number = text[:-1] if factor > 1 else text
    try:
        return int(float(number) * factor)
    except ValueError:
        raise usage(f"--bandwidth takes bytes a second such as 50M or 800k, not {value!r}") \
            from None


def _read_ca(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(256 << 10)
    except OSError as exc:
        raise usage(f"cannot read --ca-file {path}: {exc.strerror}") from None


def _show(rule: dict[str, Any]) -> None:
    details([("id", rule["id"]), ("name", rule["name"]), ("mode", rule["mode"]),
             ("url", rule["url"]), ("username", rule["username"] or ""),
             ("password", "set" if rule["has_password"] else "none"),
             ("custom CA", bool(rule["ca_pem"])), ("insecure", rule["insecure"]),
             ("repositories", rule["repositories"]), ("tags", rule["tags"]),
             ("destination namespace", rule["destination_namespace"] or "(same)"),
             ("on push events", rule["on_event"]), ("schedule", rule["cron"] or "(none)"),
             ("propagate deletes", rule["propagate_deletes"]),
             ("bandwidth", f"{rule['bandwidth']} B/s" if rule["bandwidth"] else "unlimited"),
             ("enabled", rule["enabled"]), ("updated by", rule["updated_by"]),
             ("updated", when(rule["updated_at"]))])


@rule_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The rule's name.")],
    mode: Annotated[Mode, typer.Option("--mode", help="push: from here to the registry; "
                                                      "pull: from it to here.")],
    url: Annotated[str, typer.Option("--url", help="The other registry, https://host[:port].")],
    username: Annotated[Optional[str], typer.Option("--username", "-u")] = None,
    password: Annotated[Optional[str], typer.Option(
        "--password", envvar="MOORAGE_REPLICATION_PASSWORD",
        help="Stored sealed; never shown again.")] = None,
    ca_file: Annotated[Optional[str], typer.Option(
        "--ca-file", help="PEM certificates to trust for the registry's TLS.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="No TLS verification.")] = False,
    repositories: Annotated[str, typer.Option("--repositories", "-r",
                                              help="Glob of repositories (** any).")] = "**",
    tags: Annotated[str, typer.Option("--tags", "-t", help="Glob of tags.")] = "*",
    destination_namespace: Annotated[str, typer.Option(
        "--destination-namespace", help="Replace the namespace at the destination.")] = "",
    on_event: Annotated[bool, typer.Option("--on-event/--no-event",
                                           help="Push mode: replicate each push.")] = True,
    cron: Annotated[str, typer.Option("--cron", help="A full sync on this schedule.")] = "",
    propagate_deletes: Annotated[bool, typer.Option("--propagate-deletes")] = False,
    bandwidth: Annotated[Optional[str], typer.Option(
        "--bandwidth", help="Bytes a second, e.g. 50M.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Create a replication rule."""
    body = {"name": name, "mode": mode.value, "url": url, "username": username,
            "password": password, "ca_pem": _read_ca(ca_file), "insecure": insecure,
            "repositories": repositories, "tags": tags,
            "destination_namespace": destination_namespace, "on_event": on_event,
            "cron": cron, "propagate_deletes": propagate_deletes,
            "bandwidth": _limit(bandwidth) or None, "enabled": not disabled}
    with connect() as api:
        rule = api.post("/replication/rules", body)
    if json_out:
        print_json(rule)
        return
    say(f"Created replication rule {rule['name']} ({rule['mode']} {rule['url']}).")


@rule_app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List the replication rules."""
    with connect() as api:
        rules = api.get("/replication/rules")
    if json_out:
        print_json(rules)
        return
    table(["NAME", "MODE", "URL", "REPOSITORIES", "TAGS", "TRIGGERS", "ENABLED"],
          [(r["name"], r["mode"], r["url"], r["repositories"], r["tags"],
            ",".join(t for t, on in (("event", r["on_event"] and r["mode"] == "push"),
                                     (r["cron"], bool(r["cron"]))) if on) or "manual",
            r["enabled"]) for r in rules], empty="no replication rules")


@rule_app.command("show")
def show(rule: Annotated[str, typer.Argument(help="Name or id.")],
         json_out: JsonFlag = False) -> None:
    """Show a rule (never its password)."""
    with connect() as api:
        found = api.get(_rule_path(rule))
    if json_out:
        print_json(found)
    else:
        _show(found)


@rule_app.command("update")
def update(
    rule: Annotated[str, typer.Argument(help="Name or id.")],
    name: Annotated[Optional[str], typer.Option("--name", help="A new name.")] = None,
    url: Annotated[Optional[str], typer.Option("--url")] = None,
    username: Annotated[Optional[str], typer.Option("--username", "-u")] = None,
    password: Annotated[Optional[str], typer.Option(
        "--password", envvar="MOORAGE_REPLICATION_PASSWORD")] = None,
    clear_password: Annotated[bool, typer.Option("--clear-password")] = False,
    ca_file: Annotated[Optional[str], typer.Option("--ca-file")] = None,
    insecure: Annotated[Optional[bool], typer.Option("--insecure/--verify-tls")] = None,
    repositories: Annotated[Optional[str], typer.Option("--repositories", "-r")] = None,
    tags: Annotated[Optional[str], typer.Option("--tags", "-t")] = None,
    destination_namespace: Annotated[Optional[str], typer.Option(
        "--destination-namespace")] = None,
    on_event: Annotated[Optional[bool], typer.Option("--on-event/--no-event")] = None,
    cron: Annotated[Optional[str], typer.Option("--cron", help="\"\" removes it.")] = None,
    propagate_deletes: Annotated[Optional[bool], typer.Option(
        "--propagate-deletes/--keep-deletes")] = None,
    bandwidth: Annotated[Optional[str], typer.Option("--bandwidth",
                                                     help="0 removes the limit.")] = None,
    enabled: Annotated[Optional[bool], typer.Option("--enable/--disable")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change a rule; what is not given stays as it is."""
    body: dict[str, Any] = {k: v for k, v in {
        "name": name, "url": url, "username": username, "password": password,
        "ca_pem": _read_ca(ca_file), "insecure": insecure, "repositories": repositories,
        "tags": tags, "destination_namespace": destination_namespace, "on_event": on_event,
        "cron": cron, "propagate_deletes": propagate_deletes, "bandwidth": _limit(bandwidth),
        "enabled": enabled}.items() if v is not None}
    if clear_password:
        body["clear_password"] = True
    if not body:
        raise usage("nothing to change: give at least one option")
    with connect() as api:
        found = api.patch(_rule_path(rule), body)
    if json_out:
        print_json(found)
    else:
        say(f"Updated replication rule {found['name']}.")


@rule_app.command("delete")
def delete(rule: Annotated[str, typer.Argument(help="Name or id.")]) -> None:
    """Delete a rule, with its executions."""
    with connect() as api:
        api.delete(_rule_path(rule))
    say(f"Deleted replication rule {rule}.")


@rule_app.command("run")
def run(rule: Annotated[str, typer.Argument(help="Name or id.")],
        follow: WaitFlag = False, json_out: JsonFlag = False) -> None:
    """Start a full sync now."""
    start_execution("/replication", _rule_path(rule), follow, json_out)


def start_execution(base: str, owner: str, follow: bool, json_out: bool) -> None:
    """Run `owner` now; with `follow`, wait for the end (not succeeded: exit 1)."""
    with connect() as api:
        execution = api.post(f"{owner}/run", {})
        if follow:
            execution = _follow(api, execution, not json_out, base)
    if json_out:
        print_json(execution)
        return
    _summary(execution)
    if follow and execution["status"] != "succeeded":
        raise CliError(f"execution {execution['id']} {execution['status']}: "
                       f"{execution['message']}")


@rule_app.command("report")
def report(rule: Annotated[str, typer.Argument(help="Name or id.")],
           json_out: JsonFlag = False) -> None:
    """What differs between source and destination (missing, different digest, extra);
    copies nothing."""
    with connect() as api:
        found = api.get(f"{_rule_path(rule)}/report")
    if json_out:
        print_json(found)
        return
    counts = found["counts"]
    say(f"{found['rule']} ({found['mode']}): {counts['same']} same, {counts['missing']} "
        f"missing, {counts['different']} different, {counts['extra']} extra")
    table(["REPOSITORY", "DESTINATION", "TAG", "STATE", "SOURCE", "DESTINATION DIGEST"],
          [(d["repository"], d["destination"], d["tag"], d["state"],
            (d["source_digest"] or "")[:19], (d["destination_digest"] or "")[:19])
           for d in found["differences"]], empty="no differences")


# The options of an `executions` command (replication rules' and artifact subscriptions').
FollowFlag = Annotated[bool, typer.Option(
    "--follow", "-f", help="Follow the newest execution until it ends, with a progress bar.")]
LogOption = Annotated[Optional[int], typer.Option("--log", metavar="ID",
                                                  help="Print this execution's log.")]
LimitOption = Annotated[int, typer.Option(min=1, max=500)]


@app.command("executions")
def executions(rule: Annotated[str, typer.Argument(help="Name or id.")],
               follow: FollowFlag = False, log: LogOption = None, limit: LimitOption = 20,
               json_out: JsonFlag = False) -> None:
    """A rule's executions, newest first: status, progress, errors."""
    show_executions("/replication", _rule_path(rule), follow, log, limit, json_out)


def show_executions(base: str, owner: str, follow: bool, log: int | None, limit: int,
                    json_out: bool) -> None:
    """`owner`'s executions (`base`/executions/ID their own folder), or one's log."""
    with connect() as api:
        if log is not None:
            found_log = api.get(f"{base}/executions/{log}/log")
            if json_out:
                print_json(found_log)
            else:
                raw(found_log["log"])
            return
        found = api.get(f"{owner}/executions", limit=limit)
        if follow and found:
            found[0] = _follow(api, found[0], not json_out, base)
    if json_out:
        print_json(found)
        return
    executions_table(found)


def executions_table(found: list[dict[str, Any]]) -> None:
    """Executions as a table (replication rules' and artifact subscriptions' alike)."""
    table(["ID", "TRIGGER", "STATUS", "ARTIFACTS", "BYTES", "CHANGED", "ERRORS", "STARTED",
           "MESSAGE"],
          [(e["id"], e["trigger"], e["status"], f"{e['artifacts_done']}/{e['artifacts_total']}",
            e["bytes"], e["copied"], len(e["errors"]), when(e["started_at"]),
            e["message"][:60]) for e in found], empty="no executions")


def _summary(execution: dict[str, Any]) -> None:
    say(f"Execution {execution['id']}: {execution['status']} "
        f"({execution['artifacts_done']}/{execution['artifacts_total']} artifacts, "
        f"{execution['bytes']} bytes)")
    for error in execution["errors"][:20]:
        say(f"  {error['artifact']}: {error['error']}")


def _follow(api: ApiClient, execution: dict[str, Any], bar: bool,
            base: str = "/replication") -> dict[str, Any]:
    """Poll the execution until it ends; a Rich bar on stderr (artifacts, bytes) meanwhile.
    (`base`: the API folder of its executions; artifact subscriptions have theirs.)"""
    path = f"{base}/executions/{execution['id']}"
    deadline = time.monotonic() + FOLLOW_SECONDS
    if not bar:
        while execution["status"] not in FINISHED and time.monotonic() < deadline:
            time.sleep(1)
            execution = api.get(path)
        return execution
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[sent]}"), console=Console(stderr=True),
                  transient=True) as progress:
        task = progress.add_task(execution["status"], total=None, sent="")
        while True:
            progress.update(task, description=execution["status"],
                            completed=execution["artifacts_done"],
                            total=execution["artifacts_total"] or None,
                            sent=f"{execution['bytes'] / (1 << 20):.1f} MiB")
            if execution["status"] in FINISHED or time.monotonic() > deadline:
                return execution
            time.sleep(1)
            execution = api.get(path)
