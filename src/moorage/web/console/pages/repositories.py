"""Console pages: repositories, their tags, and one manifest at a time.

    /repositories                              the list: search, sort, pages
    /repositories/NAME                         a repository: its tags, a page at a time
    /repositories/NAME/-/manifests/REFERENCE   a manifest by tag or digest: layers, config,
                                               an index's platforms, the referrers tree

`-` is never a component of a repository name (each starts with a letter or digit), so
`/-/` separates the name from what follows, as GitLab's routes do. Lists are cut into pages
by the API (which asks the database for one page), and the search box refreshes the table
alone (htmx) as one types. Every page says how long the server took (`Server-Timing`).
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from moorage.web.console.site import ConsoleSite, Visit

PER_PAGE = 50
REPOSITORY_SORTS = [("name", "Name"), ("-pushed", "Last push, newest first"),
                    ("pushed", "Last push, oldest first"), ("-tags", "Most tags"),
                    ("tags", "Fewest tags"), ("-created", "Newest"), ("created", "Oldest"),
                    ("-name", "Name, Z to A")]
TAG_SORTS = [("-pushed", "Pushed, newest first"), ("pushed", "Pushed, oldest first"),
             ("name", "Name"), ("-name", "Name, Z to A"), ("-pulled", "Pulled, latest first"),
             ("pulled", "Pulled, longest ago first")]
# Manifest media types as people call them (the full type is in the cell's title).
MEDIA_NAMES = {
    "application/vnd.oci.image.manifest.v1+json": "OCI manifest",
    "application/vnd.oci.image.index.v1+json": "OCI index",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker manifest",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
}
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")
MANIFESTS = "/-/manifests/"


def registry_host(visit: Visit) -> str:
    """The host and port the browser used, for pull commands (what it reached us at is
    what a client on the same network reaches the registry at)."""
    host = visit.request.headers.get("host", "")
    if not _HOST.match(host):
        host = visit.request.url.netloc if _HOST.match(visit.request.url.netloc) else "REGISTRY"
    return host


def _page_number(visit: Visit) -> int:
    raw = visit.query.get("page", "1")
    return max(1, min(int(raw), 1_000_000)) if raw.isdigit() else 1


def _choice(value: str, choices: list[tuple[str, str]], default: str) -> str:
    return value if value in {c for c, _ in choices} else default


def _pages(base: str, query: dict[str, str], page: int, shown: int, total: int
           ) -> dict[str, Any]:
    """Links to the previous and next pages, keeping the other parameters."""
    def link(number: int) -> str:
        params = {k: v for k, v in query.items() if v} | {"page": str(number)}
        if number == 1:
            params.pop("page")
        return f"{base}?{urlencode(params)}" if params else base

    first = (page - 1) * PER_PAGE
    return {"prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if first + shown < total else None,
            "first": first + 1 if shown else 0, "last": first + shown, "total": total,
            "page": page, "pages": max(1, -(-total // PER_PAGE))}


def _timed(response: Response, started: float) -> Response:
    response.headers["server-timing"] = f"page;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _total(answer: Any) -> int:
    try:
        return int(answer.headers.get("x-total-count", "0"))
    except ValueError:
        return 0


def _fragment(visit: Visit) -> bool:
    """An htmx request that wants the results alone (not a boosted page load)."""
    return bool(visit.request.headers.get("hx-request")) and \
        not visit.request.headers.get("hx-boosted")


# -- the list -------------------------------------------------------------------------------
async def repositories(visit: Visit) -> Response:
    started = time.perf_counter()
    q = visit.query.get("q", "").strip()[:128]
    sort = _choice(visit.query.get("sort", "name"), REPOSITORY_SORTS, "name")
    page = _page_number(visit)
    answer = await visit.get("/api/v1/repositories", q=q, sort=sort, limit=PER_PAGE,
                             offset=(page - 1) * PER_PAGE)
    if not answer.ok:
        return visit.refused(answer)
    found = answer.data
    pages = _pages("/repositories", {"q": q, "sort": sort if sort != "name" else ""}, page,
                   len(found), _total(answer))
    context = {"repositories": found, "q": q, "sort": sort, "sorts": REPOSITORY_SORTS,
               "pages": pages}
    template = "repositories_table.html" if _fragment(visit) else "repositories.html"
    return _timed(visit.render(template, title="Repositories", **context), started)


# -- one repository, or one of its manifests ------------------------------------------------
async def repository_or_manifest(visit: Visit) -> Response:
    path = visit.params["name"]
    if MANIFESTS in f"{path}/":
        name, _, reference = path.partition(MANIFESTS)
        if reference and "/" not in reference:
            return await manifest(visit, name, reference)
        return visit.render("error.html", status=404, title="Not found",
                            message="There is no such page.")
    return await repository(visit, path)


async def repository(visit: Visit, name: str) -> Response:
    started = time.perf_counter()
    q = visit.query.get("q", "").strip()[:128]
    sort = _choice(visit.query.get("sort", "-pushed"), TAG_SORTS, "-pushed")
    page = _page_number(visit)
    fragment = _fragment(visit)
    repo = None
    if not fragment:
        shown = await _repository(visit, name)
        if not shown.ok:
            return visit.refused(shown)
        repo = shown.data
    answer = await visit.get(f"/api/v1/repositories/{name}/tags", q=q, sort=sort,
                             limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    if not answer.ok:
        return visit.refused(answer)
    tags = answer.data
    base = f"/repositories/{name}"
    pages = _pages(base, {"q": q, "sort": sort if sort != "-pushed" else ""}, page, len(tags),
                   _total(answer))
    host = registry_host(visit)
    pull_tag = next((t["name"] for t in tags if t["name"] == "latest"),
                    tags[0]["name"] if tags else None)
    context = {"name": name, "repo": repo, "tags": tags, "q": q, "sort": sort,
               "sorts": TAG_SORTS, "pages": pages, "host": host, "base": base,
               "pull_tag": pull_tag, "namespace": name.split("/", 1)[0],
               "media_names": MEDIA_NAMES}
    template = "repositories_tags.html" if fragment else "repositories_show.html"
    return _timed(visit.render(template, title=name, **context), started)


# `NAME/tags`, `NAME/tags/TAG` and `NAME/manifests/REFERENCE` are the API's paths for a
# repository's tags and manifests, so a repository named like that is not at its own path.
_SHADOWED = re.compile(r".+/(?:tags(?:/[^/]+)?|manifests/[^/]+(?:/(?:vulnerabilities|sbom|fixes))?"
                       r"|scans)$")


async def _repository(visit: Visit, name: str) -> Any:
    """The API's description of a repository: at its path, or, for the names above, found
    in the listing of its namespace."""
    if not _SHADOWED.fullmatch(name):
        return await visit.get(f"/api/v1/repositories/{name}")
    offset = 0
    while True:
        page = await visit.get("/api/v1/repositories", namespace=name.split("/", 1)[0], q=name,
                               limit=1000, offset=offset)
        if not page.ok:
            return page
        for found in page.data:
            if found["name"] == name:
                page.data = found
                return page
        if len(page.data) < 1000:
            break
        offset += 1000
    page.status, page.data = 404, {"error": {"code": "NOT_FOUND",
                                             "message": f"repository {name} does not exist"}}
    return page


async def manifest(visit: Visit, name: str, reference: str) -> Response:
    started = time.perf_counter()
    answer = await visit.get(f"/api/v1/repositories/{name}/manifests/{reference}")
    if not answer.ok:
        return visit.refused(answer)
    found = answer.data
    by_tag = not reference.startswith("sha256:") and ":" not in reference
    host = registry_host(visit)
    context = {"name": name, "m": found, "reference": reference, "by_tag": by_tag,
               "host": host, "base": f"/repositories/{name}",
               "pull": f"podman pull {host}/{name}@{found['digest']}",
               "pull_tag": f"podman pull {host}/{name}:{reference}" if by_tag else None,
               "referrer_count": _count(found.get("referrers") or [])}
    context["vulns"] = await _vulnerabilities(visit, name, found)
    context["signed"] = await _signatures(visit, name, found)
    title = f"{name}:{reference}" if by_tag else f"{name}@{found['digest'][:19]}"
    return _timed(visit.render("manifest.html", title=title, **context), started)


async def _vulnerabilities(visit: Visit, name: str, found: dict[str, Any]) -> Any:
    """The Vulnerabilities section (pages/scanning.py), or None to leave it out: not an
    image, or no scanning on this edition."""
    from moorage.web.console.pages.scanning import section

    return await section(visit, name, found)


async def _signatures(visit: Visit, name: str, found: dict[str, Any]) -> Any:
    """The Signatures section (pages/signing.py), or None: not an image, or no signing on
    this edition."""
    if not visit.site.env.globals.get("signing"):
        return None
    from moorage.web.console.pages.signing import section

    return await section(visit, name, found)


def _count(nodes: list[dict[str, Any]]) -> int:
    return sum(1 + _count(n.get("referrers") or []) for n in nodes)


def install(site: ConsoleSite) -> None:
    """Adds this area's routes and navigation entry."""
    site.add_nav("Repositories", "/repositories", 30)
    site.get("/repositories", repositories)
    site.get("/repositories/{name:path}", repository_or_manifest)
