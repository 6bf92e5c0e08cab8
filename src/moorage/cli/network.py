"""`moorage network …`: CIDR allowlists and trusted networks."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from moorage.cli.client import connect
from moorage.cli.output import JsonFlag, print_json, say, table, when

app = typer.Typer(help="Network rules: allowlists (who may connect) and trusted networks "
                       "(who may pull credential-free).", no_args_is_help=True)


@app.command("add")
def add(
    cidr: str,
    namespace: Annotated[Optional[str], typer.Option(
        "--namespace", "-n", help="Limit this allow rule to one namespace.")] = None,
    trusted: Annotated[bool, typer.Option(
        "--trusted", help="A trusted network (credential-free pull), not an allow rule.")] = False,
    description: Annotated[str, typer.Option(help="Why the rule exists.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Add an allow rule (or, with --trusted, a trusted network)."""
    body = {"cidr": cidr, "kind": "trusted" if trusted else "allow", "namespace": namespace,
            "description": description}
    with connect() as api:
        rule = api.post("/network-rules", body)
    if json_out:
        print_json(rule)
        return
    scope = f"namespace {rule['namespace']}" if rule["namespace"] else "the instance"
    say(f"Added rule {rule['id']}: {rule['kind']} {rule['cidr']} for {scope}.")


@app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List the network rules you may see."""
    with connect() as api:
        found = api.get("/network-rules")
    if json_out:
        print_json(found)
        return
    table(["ID", "KIND", "CIDR", "NAMESPACE", "DESCRIPTION", "CREATED"],
          [(r["id"], r["kind"], r["cidr"], r["namespace"] or "(instance)", r["description"],
            when(r["created_at"])) for r in found], empty="no network rules")


@app.command("delete")
def delete(rule_id: Annotated[int, typer.Argument(metavar="ID")],
           json_out: JsonFlag = False) -> None:
    """Delete a network rule."""
    with connect() as api:
        api.delete(f"/network-rules/{rule_id}")
    if json_out:
        print_json({"deleted": rule_id})
    else:
        say(f"Deleted network rule {rule_id}.")
