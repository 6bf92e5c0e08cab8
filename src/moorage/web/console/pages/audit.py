"""The audit log (administrators): entries with filters and paging, an export of the same
selection as JSON lines, the verification of the hash chain, and whether the log is
complete (what its writers reported losing).

Paging follows the API's cursor (`before_id` ← `next`); the way back is the trail of the
cursors that led here, carried in the URL, so that "Newer" needs no state on the server.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response, StreamingResponse

from moorage.web.console.site import ConsoleSite, Visit

FILTERS = ("actor", "action", "repository", "result", "since", "until")
PAGE_SIZES = (10, 25, 50, 100, 200)
DEFAULT_PAGE = 50
MAX_TRAIL = 50
# Suggestions for the action filter; any action (or prefix ending in *) may be typed.
ACTIONS = ("push", "pull", "delete", "login", "quota", "gc", "namespace.*", "member.*",
           "robot.*", "repository.*", "user.*", "token.*", "network_rule.*", "webhook.*",
           "retention.*", "immutability.*", "audit.*")


def _filters(visit: Visit) -> dict[str, str]:
    query = visit.query
    return {k: query[k].strip() for k in FILTERS if query.get(k, "").strip()}


def _limit(visit: Visit) -> int:
    value = visit.query.get("limit", "")
    return int(value) if value.isdigit() and int(value) in PAGE_SIZES else DEFAULT_PAGE


def _cursor(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 < len(value) <= 19 else None


def _trail(visit: Visit) -> list[int]:
    """The cursors of the pages before this one, oldest first; 0 stands for the first."""
    return [int(v) for v in visit.query.get("trail", "").split(",")
            if v.isdigit() and len(v) <= 19][-MAX_TRAIL:]


def _url(path: str, params: dict[str, Any]) -> str:
    given = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(given)}" if given else path


async def audit_log(visit: Visit) -> Response:
    filters = _filters(visit)
    limit = _limit(visit)
    before = _cursor(visit.query.get("before_id", ""))
    trail = _trail(visit) if before is not None else []
    page = await visit.get("/api/v1/audit", **filters, limit=limit, before_id=before)
    error = ""
    if page.status in (400, 422):  # a filter the API cannot read: say so above the form
        error, page.data = page.message, {"entries": [], "next": None}
    elif not page.ok:  # the edition has no audit log, or the user is not an administrator
        return visit.refused(page)
    status = await visit.get("/api/v1/audit/status")
    keep = {**filters, "limit": limit if limit != DEFAULT_PAGE else None}
    older = newer = None
    if page.data["next"] is not None:
        older = _url("/audit", {**keep, "before_id": page.data["next"],
                                "trail": ",".join(str(t) for t in [*trail, before or 0])})
    if before is not None:
        back = trail[-1] if trail else 0
        newer = _url("/audit", {**keep, "before_id": back or None,
                                "trail": ",".join(str(t) for t in trail[:-1]) if back else None})
    return visit.render("audit.html", status=400 if error else 200, title="Audit log",
                        error=error, entries=page.data["entries"],
                        filters=filters, limit=limit, page_sizes=PAGE_SIZES, actions=ACTIONS,
                        older=older, newer=newer, first_page=before is None,
                        audit_status=status.data if status.ok else None,
                        status_error="" if status.ok else status.message,
                        export_url=_url("/audit/export", filters),
                        filter_url=lambda **more: _url("/audit", {**keep, **more}))


async def export(visit: Visit) -> Response:
    """The API's JSON lines export with the page's filters, streamed through as a download
    (the browser holds a session cookie, not the API's credentials)."""
    filters = _filters(visit)
    answer, body = await visit.site.api.stream(visit.request.scope, visit.principal, "GET",
                                               "/api/v1/audit/export", query=filters)
    if body is None:
        return visit.refused(answer)
    name = time.strftime("moorage-audit-%Y%m%d-%H%M%S.jsonl", time.gmtime())
    return StreamingResponse(body, media_type="application/x-ndjson",
                             headers={"content-disposition": f'attachment; filename="{name}"'})


async def verify(visit: Visit) -> Response:
    """Recompute the chain (a while on a large log) and show what the API found."""
    checked = await visit.get("/api/v1/audit/verify")
    if not checked.ok:
        if visit.request.headers.get("hx-request"):
            return visit.render("audit_verify.html", result=None, error=checked.message)
        return visit.refused(checked)
    template = "audit_verify.html" if visit.request.headers.get("hx-request") \
        else "audit_verify_page.html"
    return visit.render(template, title="Audit log verification", result=checked.data,
                        error="")


def install(site: ConsoleSite) -> None:
    """Adds this area's routes and navigation entry."""
    site.add_nav("Audit log", "/audit", 70, admin_only=True)
    site.get("/audit", audit_log)
    site.get("/audit/export", export)
    site.get("/audit/verify", verify)
