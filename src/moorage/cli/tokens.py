"""`moorage token …`: personal access tokens, for scripts and docker login, and the refresh
tokens clients keep."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, print_json, raw, say, table, usage, when

app = typer.Typer(help="Personal access tokens: passwords for scripts, revocable one by one.",
                  no_args_is_help=True)


@app.command("create")
def create(
    name: str,
    expires_in_days: Annotated[Optional[float], typer.Option(
        help="Lifetime in days [default: 90].")] = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Never expire.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Create a token; it is shown this once."""
    if no_expiry and expires_in_days is not None:
        raise usage("use either --expires-in-days or --no-expiry, not both")
    days = None if no_expiry else (90 if expires_in_days is None else expires_in_days)
    with connect() as api:
        created = api.post("/tokens", {"name": name, "expires_in_days": days})
    if json_out:
        print_json(created)
        return
    expiry = f"expires {when(created['expires_at'])}" if created["expires_at"] else "never expires"
    say(f"Created access token {created['name']} ({created['id']}); it {expiry}.")
    say("The token, shown this once (use it as your password):")
    raw(created["secret"])


@app.command("list")
def list_(
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="The OAuth2 refresh tokens clients (docker, podman) keep, named "
                          "after the client that asked, instead of access tokens.")] = False,
    user: Annotated[Optional[str], typer.Option(
        "--user", help="Another account's tokens (administrators).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """List your tokens (never their secrets)."""
    with connect() as api:
        found = api.get("/tokens", kind="refresh" if refresh else None, username=user)
    if json_out:
        print_json(found)
        return
    table(["ID", "NAME", "STATE", "CREATED", "EXPIRES", "LAST USED"],
          [(t["id"], t["name"],
            "active" if t["active"] else ("revoked" if t["revoked_at"] else "expired"),
            when(t["created_at"]), when(t["expires_at"]), when(t["last_used_at"]))
           for t in found], empty="no tokens")


@app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(metavar="ID")],
           json_out: JsonFlag = False) -> None:
    """Revoke an access or refresh token; it stops working at once."""
    with connect() as api:
        api.delete(f"/tokens/{segment(token_id)}")
    if json_out:
        print_json({"revoked": token_id})
    else:
        say(f"Revoked access token {token_id}.")
