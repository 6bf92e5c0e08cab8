"""Administration → Import: a form that starts an import of another registry, the list of
imports with their progress, and an import's page (progress that follows itself while it
runs, per-item errors, cancel, the log). Everything goes through /api/v1/imports, whose
refusals (a bad URL, the edition) are shown on the form. Installed from app.py on editions
with the `import` switch.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from moorage.web.console.pages.admin import _failed, _render, add_section
from moorage.web.console.pages.jobs import is_fragment
from moorage.web.console.site import ConsoleSite, Visit

FINISHED = ("succeeded", "failed", "cancelled")


def _percent(job: dict[str, Any]) -> int | None:
    total = job["tags_total"]
    if not total:
        return None
    return min(100, (job["tags_done"] + job["tags_failed"]) * 100 // total)


async def imports_page(visit: Visit, error: str = "", status: int = 200,
                       form: dict[str, str] | None = None) -> Response:
    answer = await visit.get("/api/v1/imports")
    if not answer.ok:  # not an administrator, or an edition without imports
        return visit.refused(answer)
    return _render(visit, "admin_imports.html", status=status, title="Import",
                   imports=[{**j, "percent": _percent(j)} for j in answer.data], error=error,
                   form=form or {})


async def listing(visit: Visit) -> Response:
    return await imports_page(visit)


def _body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"url": form.get("url", "").strip(),
                            "kind": form.get("kind", "distribution"),
                            "into": form.get("into", "").strip(),
                            "insecure": form.get("insecure") == "on"}
    scope = form.get("scope", "").strip()
    names = [n for n in scope.replace(",", " ").split() if n]
    if form.get("scope_kind") == "namespace" and scope:
        body["namespace"] = scope
    elif form.get("scope_kind") == "repositories" and names:
        body["repositories"] = names
    if form.get("username", "").strip():
        body["username"] = form.get("username", "").strip()
        body["password"] = form.get("password", "")
    return body


async def start(visit: Visit) -> Response:
    body = _body(visit.form)
    answer = await visit.api("POST", "/api/v1/imports", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        kept = {k: str(v) for k, v in visit.form.items() if k not in ("password", "csrf_token")}
        return await imports_page(visit, answer.message, answer.status, kept)
    return visit.redirect(f"/admin/imports/{answer.data['id']}",
                          flash=f"Import {answer.data['id']} started.")


async def import_page(visit: Visit) -> Response:
    import_id = visit.params["import_id"]
    found = await visit.get(f"/api/v1/imports/{import_id}")
    fragment = is_fragment(visit)
    if not found.ok:
        return visit.refused(found)
    job = {**found.data, "percent": _percent(found.data)}
    log = await visit.get(f"/api/v1/imports/{import_id}/log")
    context = {"job": job, "log": log.data["log"] if log.ok else "",
               "finished": job["status"] in FINISHED}
    if fragment:
        return visit.render("admin_import_live.html", **context)
    return _render(visit, "admin_import.html", title=f"Import {import_id}", **context)


async def cancel(visit: Visit) -> Response:
    import_id = visit.params["import_id"]
    answer = await visit.api("POST", f"/api/v1/imports/{import_id}/cancel", body={})
    if _failed(answer):
        return visit.refused(answer)
    flash = f"Import {import_id} cancelled." if answer.ok else answer.message
    return visit.redirect(f"/admin/imports/{import_id}", flash=flash)


def install(site: ConsoleSite) -> None:
    add_section("Import", "/admin/imports")
    site.get("/admin/imports", listing)
    site.post("/admin/imports", start)
    site.get("/admin/imports/{import_id:int}", import_page)
    site.post("/admin/imports/{import_id:int}/cancel", cancel)
