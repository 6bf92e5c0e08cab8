"""`moorage robot …`: robot accounts of a namespace, for CI and machines."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, print_json, raw, say, table, when

app = typer.Typer(help="Robot accounts: credentials for machines, bound to one namespace.",
                  no_args_is_help=True)


class RobotRole(str, Enum):
    maintainer = "maintainer"
    developer = "developer"
    guest = "guest"


@app.command("create")
def create(
    namespace: str,
    name: str,
    role: Annotated[RobotRole, typer.Option(help="What it may do in the namespace.")] = RobotRole.developer,
    expires_in_days: Annotated[Optional[float], typer.Option(
        help="Expire after this many days [default: never].")] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Create a robot; its secret is shown this once."""
    with connect() as api:
        robot = api.post(f"/namespaces/{segment(namespace)}/robots",
                         {"name": name, "role": role.value, "description": description,
                          "expires_in_days": expires_in_days})
    if json_out:
        print_json(robot)
        return
    say(f"Created robot {robot['username']} with role {robot['role']} in namespace "
        f"{robot['namespace']}" + (f", expiring {when(robot['expires_at'])}."
                                   if robot["expires_at"] else "."))
    say("Its secret, shown this once (log in with the username above and this as password):")
    raw(robot["secret"])


@app.command("list")
def list_(namespace: str, json_out: JsonFlag = False) -> None:
    """List a namespace's robots (never their secrets)."""
    with connect() as api:
        found = api.get(f"/namespaces/{segment(namespace)}/robots")
    if json_out:
        print_json(found)
        return
    table(["NAME", "USERNAME", "ROLE", "EXPIRES", "DESCRIPTION", "CREATED"],
          [(r["name"], r["username"], r["role"], when(r["expires_at"]), r["description"],
            when(r["created_at"])) for r in found], empty="no robots")


@app.command("delete")
def delete(namespace: str, name: str, json_out: JsonFlag = False) -> None:
    """Delete a robot; its secret stops working at once."""
    with connect() as api:
        api.delete(f"/namespaces/{segment(namespace)}/robots/{segment(name)}")
    if json_out:
        print_json({"deleted": name, "namespace": namespace})
    else:
        say(f"Deleted robot {name} of namespace {namespace}.")
