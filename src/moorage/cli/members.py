"""`moorage member …`: who holds which role in a namespace."""

from __future__ import annotations

from enum import Enum

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, print_json, say, table

app = typer.Typer(help="Roles in a namespace: owner, maintainer, developer, guest.",
                  no_args_is_help=True)


class Role(str, Enum):
    owner = "owner"
    maintainer = "maintainer"
    developer = "developer"
    guest = "guest"


@app.command("set")
def set_(namespace: str, username: str, role: Role, json_out: JsonFlag = False) -> None:
    """Give an account a role in a namespace (or change it)."""
    with connect() as api:
        member = api.put(f"/namespaces/{segment(namespace)}/members/{segment(username)}",
                         {"role": role.value})
    if json_out:
        print_json(member)
    else:
        say(f"{member['username']} is {member['role']} in namespace {namespace}.")


@app.command("list")
def list_(namespace: str, json_out: JsonFlag = False) -> None:
    """List the accounts with a role in a namespace."""
    with connect() as api:
        found = api.get(f"/namespaces/{segment(namespace)}/members")
    if json_out:
        print_json(found)
        return
    table(["USERNAME", "KIND", "ROLE"], [(m["username"], m["kind"], m["role"]) for m in found],
          empty="no members")


@app.command("remove")
def remove(namespace: str, username: str, json_out: JsonFlag = False) -> None:
    """Take an account's role in a namespace away."""
    with connect() as api:
        api.delete(f"/namespaces/{segment(namespace)}/members/{segment(username)}")
    if json_out:
        print_json({"removed": username, "namespace": namespace})
    else:
        say(f"{username} no longer has a role in namespace {namespace}.")
