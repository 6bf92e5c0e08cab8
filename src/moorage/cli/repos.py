"""`moorage repo …`: list, show, update and delete repositories, and their tags."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import connect, repo_path, segment
from moorage.cli.output import (JsonFlag, confirm, details, print_json, say, table, usage,
                                when)
from moorage.units import human_size

PAGE = 1000  # the API's largest page

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


def _walk(api: Any, path: str, limit: int | None, **query: Any) -> list[dict[str, Any]]:
    """Every item of a paged listing (or the first `limit`), a page of PAGE at a time."""
    found: list[dict[str, Any]] = []
    while limit is None or len(found) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(found))
        page = api.get(path, limit=size, offset=len(found), **query)
        found.extend(page)
        if len(page) < size:
            break
    return found


Search = Annotated[Optional[str], typer.Option("--search", "-q",
                                               help="Only names holding this text.")]
Limit = Annotated[Optional[int], typer.Option("--limit", min=1,
                                              help="At most this many (default: all).")]


@app.command("list")
def list_(
    namespace: Annotated[Optional[str], typer.Option("--namespace", "-n",
                                                     help="Only this namespace.")] = None,
    search: Search = None,
    sort: Annotated[str, typer.Option(
        help="name, pushed, tags or created; a leading - for descending (-pushed: the "
             "latest push first).")] = "name",
    limit: Limit = None,
    json_out: JsonFlag = False,
) -> None:
    """List the repositories you can see."""
    with connect() as api:
        found = _walk(api, "/repositories", limit, namespace=namespace, q=search, sort=sort)
    if json_out:
        print_json(found)
        return
    # INHERITED: yes when it follows its namespace's visibility (one word, for awk).
    table(["NAME", "VISIBILITY", "TAGS", "INHERITED", "DESCRIPTION", "CREATED", "PUSHED"],
          [(r["name"], r["visibility"], r["tag_count"],
            "yes" if r.get("visibility_inherited") else "no", r["description"],
            when(r["created_at"]), when(r.get("last_pushed_at"))) for r in found],
          empty="no repositories")


def _reference(text: str) -> tuple[str, str | None]:
    """NAME, NAME:TAG or NAME@DIGEST → (name, reference or None)."""
    if "@" in text:
        name, _, digest = text.partition("@")
        return name, digest
    if ":" in text:
        name, _, tag = text.rpartition(":")
        return name, tag
    return text, None


def platforms(tag: dict[str, Any]) -> str:
    return ",".join("/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)
                    for p in tag.get("platforms") or []) or "-"


def _tree(nodes: list[dict[str, Any]], depth: int = 0) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for node in nodes:
        rows.append(("  " * depth + node["kind"], node["digest"],
                     node.get("artifact_type") or node["media_type"], node.get("tag") or "-"))
        rows.extend(_tree(node.get("referrers") or [], depth + 1))
    return rows


def show_manifest(m: dict[str, Any]) -> None:
    config = m.get("config") or {}
    details([("repository", m["repository"]), ("digest", m["digest"]),
             ("media type", m["media_type"]), ("kind", m["kind"]),
             ("artifact type", m.get("artifact_type")), ("tags", ", ".join(m["tags"])),
             ("size", human_size(m.get("total_size"))), ("pushed", when(m.get("pushed_at"))),
             ("subject", m.get("subject")),
             ("platform", "/".join(x for x in (config.get("os"), config.get("architecture"),
                                               config.get("variant")) if x) or None),
             ("created", config.get("created")),
             ("entrypoint", " ".join(config["entrypoint"]) if config.get("entrypoint") else None),
             ("cmd", " ".join(config["cmd"]) if config.get("cmd") else None),
             ("working dir", config.get("working_dir")), ("user", config.get("user"))])
    if m.get("layers"):
        say("")
        table(["LAYER", "MEDIA TYPE", "SIZE"],
              [(x["digest"], x["media_type"], human_size(x["size"])) for x in m["layers"]])
    if m.get("children"):
        say("")
        table(["PLATFORM", "DIGEST", "SIZE"],
              [("attestation" if c.get("attestation") else
                "/".join(x for x in ((c.get("platform") or {}).get("os"),
                                     (c.get("platform") or {}).get("architecture"),
                                     (c.get("platform") or {}).get("variant")) if x) or "-",
                c["digest"], human_size(c.get("image_size"))) for c in m["children"]])
    if config.get("env"):
        say("")
        table(["ENV"], [(e,) for e in config["env"]])
    if config.get("labels"):
        say("")
        table(["LABEL", "VALUE"], sorted(config["labels"].items()))
    if m.get("referrers"):
        say("")
        table(["REFERRER", "DIGEST", "TYPE", "TAG"], _tree(m["referrers"]))


@app.command("show")
def show(name: Annotated[str, typer.Argument(
            help="NAME for the repository, NAME:TAG or NAME@DIGEST for one manifest.")],
         json_out: JsonFlag = False) -> None:
    """Show one repository, or one manifest: its layers, config, platforms and referrers."""
    repository, reference = _reference(name)
    with connect() as api:
        if reference is None:
            found = api.get(f"/repositories/{repo_path(repository)}")
        else:
            found = api.get(f"/repositories/{repo_path(repository)}/manifests/"
                            f"{segment(reference)}")
    if json_out:
        print_json(found)
    elif reference is None:
        show_repository(found)
    else:
        show_manifest(found)


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
def tags(
    name: str,
    search: Search = None,
    sort: Annotated[str, typer.Option(
        help="name, pushed or pulled; a leading - for descending (-pushed: the latest "
             "first).")] = "name",
    limit: Limit = None,
    json_out: JsonFlag = False,
) -> None:
    """List a repository's tags: digest, kind, platforms, size, pushed and pulled times,
    LOCKED when an immutability rule protects the tag, the last scan's counts by
    severity (Critical, High, Medium, Low, Unknown), and SIGNED: its stored signature
    verification (verified, not verified, unsigned; - without signing)."""
    with connect() as api:
        found = _walk(api, f"/repositories/{repo_path(name)}/tags", limit, q=search, sort=sort)
    if json_out:
        print_json(found)
        return
    table(["TAG", "DIGEST", "KIND", "PLATFORMS", "SIZE", "PUSHED", "PULLED", "LOCKED",
           "VULNERABILITIES", "SIGNED"],
          [(t["name"], t["digest"], t.get("kind", "-"), platforms(t),
            human_size(t.get("size")), when(t["updated_at"]), when(t.get("pulled_at")),
            "yes" if t.get("immutable") else "no", vulnerabilities(t.get("vulnerabilities")),
            t.get("signature") or "-")
           for t in found], empty="no tags")


def vulnerabilities(summary: dict[str, Any] | None) -> str:
    """`C:1 H:2 M:0 L:3 U:0` for a scanned tag, its status while a scan runs, - if never."""
    from moorage.scan.model import LEVELS  # its dataclasses cost every other command ~5 ms

    if not summary:
        return "-"
    if summary.get("status") in ("queued", "running", "failed"):
        return str(summary["status"])
    return " ".join(f"{level[0].upper()}:{summary.get(level, 0)}"
                    for level in LEVELS)


@app.command("untag")
def untag(name: str, tag: str, json_out: JsonFlag = False) -> None:
    """Remove one tag (the manifest stays, reachable by digest)."""
    with connect() as api:
        api.delete(f"/repositories/{repo_path(name)}/tags/{segment(tag)}")
    if json_out:
        print_json({"deleted": f"{name}:{tag}"})
    else:
        say(f"Removed tag {name}:{tag}.")
