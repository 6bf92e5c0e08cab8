"""`moorage namespace …`: create, list, show, update and delete namespaces."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, confirm, details, print_json, say, table, usage, when
from moorage.units import human_size, parse_size

app = typer.Typer(help="Namespaces: the first part of a repository name, with its roles.",
                  no_args_is_help=True)


def show_namespace(ns: dict[str, Any]) -> None:
    details([("name", ns["name"]), ("visibility", ns["visibility"]),
             ("description", ns["description"]),
             ("credential-free pull", ns["credential_free_pull"]),
             ("storage used", human_size(ns.get("storage_used"))),
             ("storage quota", human_size(ns.get("storage_quota")) if ns.get("storage_quota")
              is not None else "none"),
             ("your role", ns.get("role")), ("created", when(ns["created_at"]))])


@app.command("create")
def create(
    name: str,
    public: Annotated[bool, typer.Option("--public", help="Anyone may pull from it.")] = False,
    description: Annotated[str, typer.Option(help="What it holds.")] = "",
    credential_free_pull: Annotated[bool, typer.Option(
        "--credential-free-pull", help="Clients on trusted networks pull without credentials.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Create a namespace; you become its owner."""
    with connect() as api:
        ns = api.post("/namespaces", {"name": name,
                                      "visibility": "public" if public else "private",
                                      "description": description,
                                      "credential_free_pull": credential_free_pull})
    if json_out:
        print_json(ns)
    else:
        say(f"Created {ns['visibility']} namespace {ns['name']}.")


@app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List the namespaces you can see."""
    with connect() as api:
        found = api.get("/namespaces")
    if json_out:
        print_json(found)
        return
    table(["NAME", "VISIBILITY", "ROLE", "CREDENTIAL-FREE", "DESCRIPTION", "CREATED"],
          [(n["name"], n["visibility"], n["role"], n["credential_free_pull"], n["description"],
            when(n["created_at"])) for n in found], empty="no namespaces")


@app.command("show")
def show(name: str, json_out: JsonFlag = False) -> None:
    """Show one namespace."""
    with connect() as api:
        ns = api.get(f"/namespaces/{segment(name)}")
    if json_out:
        print_json(ns)
    else:
        show_namespace(ns)


@app.command("update")
def update(
    name: str,
    public: Annotated[Optional[bool], typer.Option(
        "--public/--private", help="Change the visibility; at once for every repository that "
                                   "has none of its own.")] = None,
    description: Annotated[Optional[str], typer.Option(help="Change the description.")] = None,
    credential_free_pull: Annotated[Optional[bool], typer.Option(
        "--credential-free-pull/--no-credential-free-pull",
        help="Allow or stop credential-free pulls from trusted networks.")] = None,
    storage_quota: Annotated[Optional[str], typer.Option(
        help="Storage limit such as 50GiB, or 'none' (administrators only).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change a namespace's visibility, description, credential-free pull or storage quota."""
    body: dict[str, Any] = {}
    if storage_quota is not None:
        try:
            body["storage_quota"] = (None if storage_quota.lower() == "none"
                                     else parse_size(storage_quota))
        except ValueError as exc:
            raise usage(str(exc)) from None
    if public is not None:
        body["visibility"] = "public" if public else "private"
    if description is not None:
        body["description"] = description
    if credential_free_pull is not None:
        body["credential_free_pull"] = credential_free_pull
    with connect() as api:
        ns = api.patch(f"/namespaces/{segment(name)}", body)
    if json_out:
        print_json(ns)
    else:
        show_namespace(ns)


@app.command("delete")
def delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Delete a namespace with all its repositories, robots and rules."""
    confirm(f"Delete namespace {name} with all its repositories?", yes)
    with connect() as api:
        api.delete(f"/namespaces/{segment(name)}")
    if json_out:
        print_json({"deleted": name})
    else:
        say(f"Deleted namespace {name}.")
