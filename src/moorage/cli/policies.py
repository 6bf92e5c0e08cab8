"""`moorage immutability …` and `moorage retention …`: rules on tags."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import connect
from moorage.cli.jobs import finish, follow
from moorage.cli.output import CliError, JsonFlag, print_json, say, table, when
from moorage.units import human_duration

immutability = typer.Typer(help="Tags that can be neither overwritten nor deleted.",
                           no_args_is_help=True)
retention = typer.Typer(help="Tag cleanup rules: keep the last N, by pattern, by age.",
                        no_args_is_help=True)

Scope = Annotated[str, typer.Argument(metavar="NS[/REPO]",
                                      help="a namespace, or namespace/repository-glob")]


@immutability.command("add")
def immutability_add(
    scope: Scope,
    pattern: Annotated[str, typer.Option("--pattern", help="glob of protected tags, e.g. v*")],
    exclude: Annotated[Optional[str], typer.Option(help="glob of tags left mutable")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Protect matching tags from being overwritten or deleted."""
    with connect() as api:
        rule = api.post("/immutability", {"scope": scope, "tag_pattern": pattern,
                                          "exclude_pattern": exclude})
    if json_out:
        print_json(rule)
    else:
        say(f"Added immutability rule {rule['id']}: {rule['tag_pattern']} in {rule['scope']}.")


@immutability.command("list")
def immutability_list(namespace: Annotated[Optional[str], typer.Option("--namespace", "-n")] = None,
                      json_out: JsonFlag = False) -> None:
    """List immutability rules."""
    with connect() as api:
        found = api.get("/immutability", namespace=namespace)
    if json_out:
        print_json(found)
        return
    table(["ID", "SCOPE", "TAGS", "EXCEPT", "STATE", "CREATED"],
          [(r["id"], r["scope"], r["tag_pattern"], r["exclude_pattern"] or "",
            "enabled" if r["enabled"] else "disabled", when(r["created_at"])) for r in found],
          empty="no immutability rules")


@immutability.command("update")
def immutability_update(
    rule_id: Annotated[int, typer.Argument(metavar="ID")],
    pattern: Annotated[Optional[str], typer.Option("--pattern", help="new glob of protected tags")] = None,
    exclude: Annotated[Optional[str], typer.Option(help="new glob of tags left mutable")] = None,
    no_exclude: Annotated[bool, typer.Option("--no-exclude", help="remove the exception")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Change a rule's patterns in place (same id); it applies at once."""
    body: dict[str, Any] = {}
    if pattern is not None:
        body["tag_pattern"] = pattern
    if exclude is not None or no_exclude:
        body["exclude_pattern"] = None if no_exclude else exclude
    _patch_immutability(rule_id, body, json_out)


@immutability.command("disable")
def immutability_disable(rule_id: Annotated[int, typer.Argument(metavar="ID")],
                         json_out: JsonFlag = False) -> None:
    """Keep the rule but let its tags be overwritten and deleted until it is enabled."""
    _patch_immutability(rule_id, {"enabled": False}, json_out)


@immutability.command("enable")
def immutability_enable(rule_id: Annotated[int, typer.Argument(metavar="ID")],
                        json_out: JsonFlag = False) -> None:
    """Protect the rule's tags again."""
    _patch_immutability(rule_id, {"enabled": True}, json_out)


def _patch_immutability(rule_id: int, body: dict[str, Any], json_out: bool) -> None:
    with connect() as api:
        rule = api.patch(f"/immutability/{rule_id}", body)
    if json_out:
        print_json(rule)
    else:
        except_ = f" except {rule['exclude_pattern']}" if rule["exclude_pattern"] else ""
        state = "" if rule["enabled"] else " (disabled)"
        say(f"Immutability rule {rule['id']}: {rule['tag_pattern']}{except_} in "
            f"{rule['scope']}{state}.")


@immutability.command("delete")
def immutability_delete(rule_id: Annotated[int, typer.Argument(metavar="ID")],
                        json_out: JsonFlag = False) -> None:
    """Delete an immutability rule."""
    with connect() as api:
        api.delete(f"/immutability/{rule_id}")
    print_json({"deleted": rule_id}) if json_out else say(f"Deleted immutability rule {rule_id}.")


@retention.command("add")
def retention_add(
    scope: Scope,
    tags: Annotated[str, typer.Option("--tags", help="glob of the tags the rule considers")] = "*",
    keep_last: Annotated[Optional[int], typer.Option(help="keep the newest N tags")] = None,
    older_than: Annotated[Optional[str], typer.Option(help="only delete tags older than this, e.g. 30d")] = None,
    untagged: Annotated[bool, typer.Option("--untagged", help="also delete untagged manifests")] = False,
    always_keep: Annotated[Optional[str], typer.Option(help="glob of tags never deleted")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="cron expression, e.g. '0 4 * * *'")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Add a cleanup rule. Try `moorage retention run ID --dry-run` before it runs for real."""
    body: dict[str, Any] = {"scope": scope, "tag_pattern": tags, "keep_last": keep_last,
                            "older_than": older_than, "untagged": untagged,
                            "always_keep": always_keep, "schedule": schedule}
    with connect() as api:
        rule = api.post("/retention", body)
    print_json(rule) if json_out else say(f"Added retention rule {rule['id']} for {rule['scope']}.")


@retention.command("list")
def retention_list(namespace: Annotated[Optional[str], typer.Option("--namespace", "-n")] = None,
                   json_out: JsonFlag = False) -> None:
    """List retention rules."""
    with connect() as api:
        found = api.get("/retention", namespace=namespace)
    if json_out:
        print_json(found)
        return
    table(["ID", "SCOPE", "TAGS", "KEEP LAST", "OLDER THAN", "UNTAGGED", "ALWAYS KEEP",
           "SCHEDULE", "STATE"],
          [(r["id"], r["scope"], r["tag_pattern"], r["keep_last"] if r["keep_last"] is not None else "",
            human_duration(r["older_than_seconds"]) if r["older_than_seconds"] else "",
            "yes" if r["untagged"] else "", r["always_keep"] or "", r["schedule"] or "",
            "enabled" if r["enabled"] else "disabled")
           for r in found], empty="no retention rules")


@retention.command("run")
def retention_run(rule_id: Annotated[int, typer.Argument(metavar="ID")],
                  dry_run: Annotated[bool, typer.Option("--dry-run", help="list, delete nothing")] = False,
                  json_out: JsonFlag = False) -> None:
    """Run a rule now and show what it deleted (or, with --dry-run, would delete)."""
    with connect() as api:
        job = follow(api, api.post(f"/retention/{rule_id}/run", {"dry_run": dry_run}),
                     quiet=json_out)
    if not json_out and job["status"] == "succeeded":
        table(["REPOSITORY", "TAG", "DECISION", "WHY"],
              _decisions((job.get("result") or {}).get("repositories", []), dry_run),
              empty="no repository covered by the rule")
    finish(job, json_out)


def _decisions(plans: list[dict[str, Any]], dry_run: bool) -> list[tuple[str, str, str, str]]:
    """One row per tag the rule considered: going (and why), or kept (and why); a row per
    repository for its deleted manifests, and one for a repository where nothing was
    considered at all, so that no covered repository is missing from the table."""
    going = "would delete" if dry_run else "deleted"
    rows: list[tuple[str, str, str, str]] = []
    for plan in plans:
        repo = plan["repository"]
        reasons = plan.get("delete_reasons") or {}
        rows += [(repo, tag, going, reasons.get(tag, "")) for tag in plan["delete_tags"]]
        rows += [(repo, tag, "keep", why) for tag, why in sorted(plan.get("kept", {}).items())]
        rows += [(repo, ref, "kept", why) for ref, why in sorted(plan.get("refused", {}).items())]
        if plan["delete_manifests"]:
            rows.append((repo, f"{len(plan['delete_manifests'])} manifest(s)", going,
                         "untagged, or all their tags go (with their referrers)"))
        if not rows or rows[-1][0] != repo:
            rows.append((repo, "-", "nothing to do", "no tag matches the rule"))
    return rows


_CLEARABLE = {"keep-last": "keep_last", "older-than": "older_than",
              "always-keep": "always_keep", "schedule": "schedule"}


def _show_retention(rule: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(rule)
        return
    say(f"Retention rule {rule['id']} for {rule['scope']} "
        f"({'enabled' if rule['enabled'] else 'disabled'}).")


@retention.command("update")
def retention_update(
    rule_id: Annotated[int, typer.Argument(metavar="ID")],
    tags: Annotated[Optional[str], typer.Option("--tags", help="glob of the tags the rule considers")] = None,
    keep_last: Annotated[Optional[int], typer.Option(help="keep the newest N tags")] = None,
    older_than: Annotated[Optional[str], typer.Option(help="only delete tags older than this, e.g. 30d")] = None,
    untagged: Annotated[Optional[bool], typer.Option("--untagged/--no-untagged",
                                                     help="also delete untagged manifests")] = None,
    always_keep: Annotated[Optional[str], typer.Option(help="glob of tags never deleted")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="cron expression, e.g. '0 4 * * *'")] = None,
    clear: Annotated[Optional[list[str]], typer.Option(
        help="remove a setting: keep-last, older-than, always-keep or schedule (repeatable)")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change a rule in place (same id); options not given stay as they are."""
    body: dict[str, Any] = {}
    for name in clear or []:
        if name not in _CLEARABLE:
            raise CliError(f"--clear takes {', '.join(_CLEARABLE)}, not {name!r}")
        body[_CLEARABLE[name]] = None
    given = {"tag_pattern": tags, "keep_last": keep_last, "older_than": older_than,
             "untagged": untagged, "always_keep": always_keep, "schedule": schedule}
    body.update({k: v for k, v in given.items() if v is not None})
    with connect() as api:
        rule = api.patch(f"/retention/{rule_id}", body)
    _show_retention(rule, json_out)


@retention.command("disable")
def retention_disable(rule_id: Annotated[int, typer.Argument(metavar="ID")],
                      json_out: JsonFlag = False) -> None:
    """Keep the rule but stop its scheduled runs (`retention run` still runs it by hand)."""
    _set_retention_enabled(rule_id, False, json_out)


@retention.command("enable")
def retention_enable(rule_id: Annotated[int, typer.Argument(metavar="ID")],
                     json_out: JsonFlag = False) -> None:
    """Resume a disabled rule's scheduled runs."""
    _set_retention_enabled(rule_id, True, json_out)


def _set_retention_enabled(rule_id: int, enabled: bool, json_out: bool) -> None:
    with connect() as api:
        rule = api.patch(f"/retention/{rule_id}", {"enabled": enabled})
    _show_retention(rule, json_out)


@retention.command("delete")
def retention_delete(rule_id: Annotated[int, typer.Argument(metavar="ID")],
                     json_out: JsonFlag = False) -> None:
    """Delete a retention rule (and its schedule)."""
    with connect() as api:
        api.delete(f"/retention/{rule_id}")
    print_json({"deleted": rule_id}) if json_out else say(f"Deleted retention rule {rule_id}.")
