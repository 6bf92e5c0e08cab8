"""`moorage sso …`: single sign-on. `group-roles` maps directory groups to namespace roles
(administrators only): members get the role at each sign-in and lose it at the first sign-in
without the group."""

from __future__ import annotations

from typing import Annotated

import typer

from moorage.cli.client import connect
from moorage.cli.output import JsonFlag, print_json, say, table, when

app = typer.Typer(help="Single sign-on: roles from directory groups.", no_args_is_help=True)
group_roles = typer.Typer(help="Roles in namespaces for the members of directory groups "
                               "(LDAP group DNs, OpenID groups-claim values).",
                          no_args_is_help=True)
app.add_typer(group_roles, name="group-roles")


@group_roles.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List the group mappings."""
    with connect() as api:
        found = api.get("/sso/group-roles")
    if json_out:
        print_json(found)
        return
    table(["ID", "GROUP", "NAMESPACE", "ROLE", "CREATED"],
          [(r["id"], r["group"], r["namespace"], r["role"], when(r["created_at"]))
           for r in found], empty="no group roles")


@group_roles.command("add")
def add(
    group: Annotated[str, typer.Argument(help="an LDAP group DN or a groups-claim value")],
    namespace: str,
    role: Annotated[str, typer.Argument(help="owner, maintainer, developer or guest")],
    json_out: JsonFlag = False,
) -> None:
    """Give the members of GROUP the ROLE in NAMESPACE, from their next sign-in on."""
    with connect() as api:
        mapping = api.post("/sso/group-roles", {"group": group, "namespace": namespace,
                                                "role": role})
    if json_out:
        print_json(mapping)
    else:
        say(f"Added group role {mapping['id']}: members of {mapping['group']} are "
            f"{mapping['role']} in {mapping['namespace']}.")


@group_roles.command("remove")
def remove(mapping_id: Annotated[int, typer.Argument(metavar="ID")],
           json_out: JsonFlag = False) -> None:
    """Remove a mapping: members lose the role it gave at their next sign-in."""
    with connect() as api:
        api.delete(f"/sso/group-roles/{mapping_id}")
    if json_out:
        print_json({"deleted": mapping_id})
    else:
        say(f"Removed group role {mapping_id}.")
