"""`moorage repo …`: list, show, update and delete repositories, and their tags."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import connect, repo_path, segment
from moorage.cli.output import (JsonFlag, confirm, details, print_json, say, table, usage,
                                when)

app = typer.Typer(help="Repositories (created by the first push) and their tags.",
                  no_args_is_help=True)


def visibility(repo: dict[str, Any]) -> str:
    """"private (from namespace)" when it follows its namespace's, else its own."""
    inherited = " (from namespace)" if repo.get("visibility_inherited") else ""
    return f"{repo['visibility']}{inherited}"


def show_repository(repo: dict[str, Any]) -> None:
    details([("name", repo["name"]), ("namespace", repo["namespace"]),
             ("visibility", visibility(repo)), ("description", repo["description"]),
             ("tags", repo["tag_count"]), ("created", when(repo["created_at"]))])


@app.command("list")
def list_(
    namespace: Annotated[Optional[str], typer.Option("--namespace", "-n",
                                                     help="Only this namespace.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """List the repositories you can see."""
    with connect() as api:
        found = api.get("/repositories", namespace=namespace)
    if json_out:
        print_json(found)
        return
    # INHERITED: yes when it follows its namespace's visibility (one word, for awk).
    table(["NAME", "VISIBILITY", "TAGS", "INHERITED", "DESCRIPTION", "CREATED"],
          [(r["name"], r["visibility"], r["tag_count"],
            "yes" if r.get("visibility_inherited") else "no", r["description"],
            when(r["created_at"])) for r in found], empty="no repositories")


@app.command("show")
def show(name: str, json_out: JsonFlag = False) -> None:
    """Show one repository."""
    with connect() as api:
        repo = api.get(f"/repositories/{repo_path(name)}")
    if json_out:
        print_json(repo)
    else:
        show_repository(repo)


@app.command("update")
def update(
    name: str,
    public: Annotated[Optional[bool], typer.Option(
        "--public/--private", help="Give it a visibility of its own.")] = None,
    inherit: Annotated[bool, typer.Option(
        "--inherit-visibility", help="Follow the namespace's visibility again.")] = False,
    description: Annotated[Optional[str], typer.Option(help="Change the description.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change a repository's visibility or description."""
    body: dict[str, Any] = {}
    if public is not None and inherit:
        raise usage("give --public/--private or --inherit-visibility, not both")
    if public is not None:
        body["visibility"] = "public" if public else "private"
    if inherit:
        body["visibility"] = "inherit"
    if description is not None:
        body["description"] = description
    with connect() as api:
        repo = api.patch(f"/repositories/{repo_path(name)}", body)
    if json_out:
        print_json(repo)
    else:
        show_repository(repo)


@app.command("delete")
def delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Delete it even though it holds immutable tags (administrators "
                        "only; recorded as forced in the audit log).")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Delete a repository with its tags (refused while it holds immutable tags)."""
    past = " past its immutable tags" if force else ""
    confirm(f"Delete repository {name} with all its tags{past}?", yes)
    with connect() as api:
        api.delete(f"/repositories/{repo_path(name)}", **({"force": "true"} if force else {}))
    if json_out:
        print_json({"deleted": name, "forced": force})
    else:
        say(f"Deleted repository {name}{' (forced)' if force else ''}.")


@app.command("tags")
def tags(name: str, json_out: JsonFlag = False) -> None:
    """List a repository's tags with their digests."""
    with connect() as api:
        found = api.get(f"/repositories/{repo_path(name)}/tags")
    if json_out:
        print_json(found)
        return
    table(["TAG", "DIGEST", "UPDATED"],
          [(t["name"], t["digest"], when(t["updated_at"])) for t in found], empty="no tags")


@app.command("untag")
def untag(name: str, tag: str, json_out: JsonFlag = False) -> None:
    """Remove one tag (the manifest stays, reachable by digest)."""
    with connect() as api:
        api.delete(f"/repositories/{repo_path(name)}/tags/{segment(tag)}")
    if json_out:
        print_json({"deleted": f"{name}:{tag}"})
    else:
        say(f"Removed tag {name}:{tag}.")
