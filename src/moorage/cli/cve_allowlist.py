"""`moorage cve-allowlist …`: the advisories a namespace accepts, with a reason and an
optional expiry (what a scan then reports as accepted)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, print_json, say, table, usage, when

app = typer.Typer(help="The CVE allowlist of a namespace: advisories accepted, each with a "
                       "reason and an optional expiry.", no_args_is_help=True)


def parse_expiry(text: str) -> str:
    """An ISO 8601 date or moment; without a time zone it is read as UTC (the API takes
    aware moments only)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise usage(f"--expires {text[:64]!r} is not a date (YYYY-MM-DD) or an ISO 8601 "
                    f"moment (2027-01-31T12:00:00+01:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()


def _state(entry: dict) -> str:
    return "expired" if entry["expired"] else "active"


@app.command("list")
def list_(namespace: Annotated[str, typer.Argument(help="The namespace")],
          json_out: JsonFlag = False) -> None:
    """List NAMESPACE's accepted advisories, expired ones included."""
    with connect() as api:
        found = api.get(f"/namespaces/{segment(namespace)}/cve-allowlist")
    if json_out:
        print_json(found)
        return
    table(["ID", "STATE", "EXPIRES", "REASON", "ADDED", "BY"],
          [(e["id"], _state(e), when(e["expires_at"]) if e["expires_at"] else "never",
            e["reason"], when(e["created_at"]), e["created_by"]) for e in found],
          empty=f"no accepted advisories in {namespace}")


@app.command("add")
def add(
    namespace: Annotated[str, typer.Argument(help="The namespace")],
    ident: Annotated[str, typer.Argument(metavar="ID",
                                         help="The advisory id: a CVE, GHSA or PYSEC id")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is accepted (required)")],
    expires: Annotated[str | None, typer.Option(
        "--expires", help="When the entry stops applying: YYYY-MM-DD or an ISO 8601 moment "
                          "(UTC unless a zone is given); default never")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Accept advisory ID in NAMESPACE, or replace its entry (owners and administrators)."""
    body = {"id": ident, "reason": reason,
            "expires_at": None if expires is None else parse_expiry(expires)}
    with connect() as api:
        entry = api.post(f"/namespaces/{segment(namespace)}/cve-allowlist", body)
    if json_out:
        print_json(entry)
        return
    until = f" until {when(entry['expires_at'])}" if entry["expires_at"] else ""
    say(f"Accepted {entry['id']} in {namespace}{until}.")
    if entry["expired"]:
        say("Note: that expiry has passed, so the entry is listed expired and accepts "
            "nothing.")


@app.command("remove")
def remove(namespace: Annotated[str, typer.Argument(help="The namespace")],
           ident: Annotated[str, typer.Argument(metavar="ID", help="The advisory id")],
           json_out: JsonFlag = False) -> None:
    """Stop accepting advisory ID in NAMESPACE."""
    with connect() as api:
        api.delete(f"/namespaces/{segment(namespace)}/cve-allowlist/{segment(ident)}")
    if json_out:
        print_json({"removed": ident, "namespace": namespace})
    else:
        say(f"Removed {ident} from the CVE allowlist of {namespace}.")
