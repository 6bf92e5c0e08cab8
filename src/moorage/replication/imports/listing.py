"""What an import finds at its source: the repositories in its scope, and their tags.

Distribution kind: `/v2/_catalog` through the registry client (paginated with `n` and
`Link`, bounded by the client's page limits). Harbor kind: projects through
`GET /api/v2.0/projects` and each project's repositories through
`GET /api/v2.0/projects/{name}/repositories` (Harbor's own paging: `page` and `page_size`,
with `X-Total-Count` and a `Link: <…>; rel="next"` header), since Harbor's `_catalog` is
often closed to non-administrators. The pulls that follow are the same v2 pulls either way.
Every listing is bounded: pages, bytes a page, and names in all (MAX_PLAN).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx

from moorage.remote import RegistryClient
from moorage.remote.auth import basic_header
from moorage.remote.client import next_link
from moorage.remote.errors import RemoteAuthError, RemoteNotFound, RemoteProtocolError
from moorage.replication.copy import is_fallback_tag
from moorage.replication.imports.model import MAX_PLAN, Import

CATALOG_PAGE = 1000  # `n` asked of a catalog or tag listing
HARBOR_PAGE = 100  # Harbor's largest page_size
MAX_PAGES = 2000  # pages of one Harbor listing


def attached(tag: str) -> bool:
    """A cosign tag (`sha256-<hex>.sig`/.att/.sbom) or a referrers tag index: these travel
    with their subject (the copy engine copies them), so they are not planned on their own."""
    head, _, suffix = tag.rpartition(".")
    if suffix in ("sig", "att", "sbom") and is_fallback_tag(head):
        return True
    return is_fallback_tag(tag)


async def repositories(job: Import, client: RegistryClient) -> list[str]:
    """The source's repositories in the import's scope, sorted."""
    if job.repositories is not None:
        return sorted(job.repositories)  # named: asked for directly, never listed
    if job.kind == "harbor":
        names = await _harbor_repositories(job, client)
    else:
        names = []
        async for name in client.catalog(page_size=CATALOG_PAGE):
            if job.wants(name):
                names.append(name)
            if len(names) >= MAX_PLAN:
                break
    return sorted(set(names))


async def tags(client: RegistryClient, repository: str) -> list[str]:
    found: list[str] = []
    async for tag in client.tags(repository, page_size=CATALOG_PAGE):
        if not attached(tag):
            found.append(tag)
        if len(found) >= MAX_PLAN:
            break
    return sorted(set(found))


async def _harbor_repositories(job: Import, client: RegistryClient) -> list[str]:
    names: list[str] = []
    project = job.namespace.split("/", 1)[0] if job.namespace else None
    projects = [project] if project else [
        str(p.get("name", "")) for p in await _harbor_pages(client, "/api/v2.0/projects",
                                                            "projects")]
    for name in projects:
        if not name:
            continue
        path = f"/api/v2.0/projects/{quote(name, safe='')}/repositories"
        for repo in await _harbor_pages(client, path, f"repositories of project {name}"):
            full = repo.get("name")
            if isinstance(full, str) and job.wants(full):
                names.append(full)
            if len(names) >= MAX_PLAN:
                return names
    return names


async def _harbor_pages(client: RegistryClient, path: str, what: str) -> list[dict]:
    """Every item of a Harbor listing, page after page (Link, else until a short page)."""
    session = client.session
    cfg = session.config
    headers = {"accept": "application/json"}
    if cfg.username is not None and cfg.password is not None:
        headers["authorization"] = basic_header(cfg.username, cfg.password)
    url = session.url(path).copy_merge_params({"page": "1", "page_size": str(HARBOR_PAGE)})
    items: list[dict] = []
    seen: set[str] = set()
    for page in range(1, MAX_PAGES + 1):
        seen.add(str(url))
        # Harbor's API takes Basic credentials itself: no /v2 token flow here
        reply = await session.request("GET", url, scopes=(), what=f"Harbor {what}",
                                      headers=headers, read_limit=cfg.limits.page_bytes,
                                      _auth=False)
        if reply.status in (401, 403):
            raise session.error(RemoteAuthError, "Harbor refused the credentials",
                                f"Harbor {what}", status=reply.status)
        if reply.status == 404:
            raise session.error(RemoteNotFound, "no Harbor API here (is the kind right?)",
                                f"Harbor {what}", status=404)
        if reply.status != 200:
            raise session.fail(reply, f"Harbor {what}")
        try:
            doc = json.loads(reply.body)
        except ValueError:
            doc = None
        if not isinstance(doc, list) or not all(isinstance(i, dict) for i in doc):
            raise session.error(RemoteProtocolError, "the listing is not a JSON list of "
                                "objects", f"Harbor {what}")
        items.extend(doc)
        following = next_link(reply.headers.get_list("link"))
        total = _int(reply.headers.get("x-total-count"))
        if following is not None:
            try:
                url = url.join(following)
            except httpx.InvalidURL:
                raise session.error(RemoteProtocolError, "an invalid Link",
                                    f"Harbor {what}") from None
            if not session.same_origin(url) or str(url) in seen:
                raise session.error(RemoteProtocolError, "a Link that leaves the registry or "
                                    "goes round in circles", f"Harbor {what}")
        elif doc and len(doc) >= HARBOR_PAGE and (total is None or len(items) < total):
            url = url.copy_merge_params({"page": str(page + 1)})
        else:
            return items
    raise session.error(RemoteProtocolError, f"more than {MAX_PAGES} pages",
                        f"Harbor {what}")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None

