"""The scanner in the console: what the manifest page's Vulnerabilities section reads (the
report with its filters, the fix plans, whether the visitor may scan), the downloads it links
to (the report as JSON or CSV, the SBOM as CycloneDX or SPDX), **Scan now** and its progress,
the namespace's scan-on-push switch, and Administration → Advisories.

Everything goes through the API as the visitor (apicall.py), so a reader is refused a scan
exactly where the API refuses it; the buttons are only hidden from those it would refuse.
Installed from app.py on editions with scanning (the section's reads answer 403 elsewhere,
and the manifest page then leaves the section out).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from moorage.scan.model import LEVELS
from moorage.web.console.pages.admin import _render, add_section
from moorage.web.console.pages.jobs import FINISHED, job_context
from moorage.web.console.site import ConsoleSite, Visit

PUSHERS = frozenset({"owner", "maintainer", "developer"})
MANAGERS = frozenset({"owner", "maintainer"})
# download format -> (API path's last part, API query, file suffix)
DOWNLOADS = {"json": ("vulnerabilities", {"format": "json"}, "vulnerabilities.json"),
             "csv": ("vulnerabilities", {"format": "csv"}, "vulnerabilities.csv"),
             "cyclonedx": ("sbom", {"format": "cyclonedx"}, "cdx.json"),
             "spdx": ("sbom", {"format": "spdx"}, "spdx.json")}
MAX_NAME = 256


def manifest_url(name: str, reference: str) -> str:
    return f"/repositories/{name}/-/manifests/{reference}"


def filters_of(visit: Visit) -> dict[str, Any]:
    """The findings filters from the query; a value that is not one of the choices is
    dropped (and said), never passed on."""
    severity = visit.query.get("severity", "")
    fixable = visit.query.get("fixable", "") in ("1", "true", "on")
    bad = severity if severity and severity not in LEVELS else ""
    return {"severity": severity if severity in LEVELS else "", "fixable": fixable,
            "ignored": bad[:40]}


async def role_in(visit: Visit, namespace: str) -> str | None:
    found = await visit.get(f"/api/v1/namespaces/{namespace}")
    return found.data.get("role") if found.ok and isinstance(found.data, dict) else None


async def section(visit: Visit, name: str, found: dict[str, Any]) -> dict[str, Any] | None:
    """The Vulnerabilities section's data, or None to leave it out (not an image, or no
    scanning on this edition, or the report refused)."""
    if found.get("kind") not in ("image", "index"):
        return None
    base = f"/api/v1/repositories/{name}/manifests/{found['digest']}"
    chosen = filters_of(visit)
    query = {"severity": chosen["severity"] or None,
             "fixable": "true" if chosen["fixable"] else None}
    report = await visit.get(f"{base}/vulnerabilities", **query)
    if not report.ok:
        return None
    data = report.data
    fixes = None
    if data["status"] != "not scanned":
        plans = await visit.get(f"{base}/fixes")
        fixes = plans.data["images"] if plans.ok else None
    may_scan = visit.principal.is_admin or \
        await role_in(visit, name.split("/", 1)[0]) in PUSHERS
    job = visit.query.get("scan_job", "")
    downloads = {key: "/scanning/export?" + urlencode({"repository": name, "reference":
                                                       found["digest"], "format": key})
                 for key in DOWNLOADS}
    platforms = [i["platform"] for i in data["images"] if i["platform"]]
    return {"report": data, "fixes": fixes, "filters": chosen, "levels": LEVELS,
            "may_scan": may_scan, "scan_job": int(job) if job.isdigit() and
            len(job) < 18 else None, "downloads": downloads, "platforms": platforms}


# -- downloads ----------------------------------------------------------------------------
async def export(visit: Visit) -> Response:
    """The report (JSON, CSV) or the SBOM (CycloneDX, SPDX) as a download: the browser holds a
    session cookie, not the API's credentials, so the console asks the API and passes the
    answer on."""
    name = visit.query.get("repository", "")[:MAX_NAME]
    reference = visit.query.get("reference", "")[:MAX_NAME]
    kind = visit.query.get("format", "")
    if not name or not reference or kind not in DOWNLOADS:
        return visit.render("error.html", status=400, title="Invalid request",
                            message="Name a repository, a reference and one of the formats "
                                    f"{', '.join(DOWNLOADS)}.")
    last, query, suffix = DOWNLOADS[kind]
    platform = visit.query.get("platform", "")[:100]
    if platform and last == "sbom":
        query = {**query, "platform": platform}
    answer = await visit.get(f"/api/v1/repositories/{name}/manifests/{reference}/{last}",
                             **query)
    if not answer.ok:
        return visit.refused(answer)
    filename = f"{name.replace('/', '_')}-{reference.replace(':', '-')[:23]}"
    if platform and last == "sbom":
        filename += "-" + platform.replace("/", "-")
    media = answer.headers.get("content-type", "application/octet-stream")
    return Response(answer.body, media_type=media, headers={
        "content-disposition": f'attachment; filename="{filename}.{suffix}"'})


# -- Scan now ----------------------------------------------------------------------------
async def scan_now(visit: Visit) -> Response:
    name = visit.form.get("repository", "")[:MAX_NAME]
    reference = visit.form.get("reference", "")[:MAX_NAME]
    if not name or not reference:
        return visit.render("error.html", status=400, title="Invalid request",
                            message="Name the repository and the image to scan.")
    answer = await visit.api("POST", f"/api/v1/repositories/{name}/scans",
                             body={"reference": reference})
    if not answer.ok:
        return visit.refused(answer)
    job = answer.data["job_id"]
    return visit.redirect(f"{manifest_url(name, reference)}?scan_job={job}",
                          flash=f"Scan queued as job {job}.")


async def scan_progress(visit: Visit) -> Response:
    """The scan job's state, refreshed by htmx every second while it runs; once it has
    finished, htmx is sent to the manifest page, which then shows the new report."""
    job_id = visit.params["job"]
    name = visit.query.get("repository", "")[:MAX_NAME]
    reference = visit.query.get("reference", "")[:MAX_NAME]
    if not job_id.isdigit() or len(job_id) > 18 or not name or not reference:
        return visit.render("error.html", status=400, title="Invalid request",
                            message="There is no such scan.")
    answer = await visit.get(f"/api/v1/jobs/{job_id}")
    if not answer.ok:
        return visit.render("scan_progress.html", status=answer.status, job=None,
                            error=answer.message, poll="")
    context = job_context(answer.data)
    poll = f"/scanning/jobs/{job_id}?" + urlencode({"repository": name,
                                                   "reference": reference})
    response = visit.render("scan_progress.html", poll=poll, **context)
    if answer.data["status"] in FINISHED and visit.request.headers.get("hx-request"):
        response.headers["hx-redirect"] = manifest_url(name, reference)
    return response


# -- the namespace's switch ---------------------------------------------------------------
async def scan_settings(namespace: str, visit: Visit) -> dict[str, Any] | None:
    """The namespace page's switch: None when scanning is off or the setting unreadable."""
    found = await visit.get(f"/api/v1/namespaces/{namespace}/scan-settings")
    return found.data if found.ok else None


async def set_scan_on_push(visit: Visit) -> Response:
    name = visit.params["name"]
    on = visit.form.get("scan_on_push") == "true"
    answer = await visit.api("PUT", f"/api/v1/namespaces/{name}/scan-settings",
                             body={"scan_on_push": on})
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect(f"/namespaces/{name}#scan-settings",
                          flash=f"Pushes to {name} are {'now' if on else 'no longer'} "
                                "scanned.")


# -- Administration → Advisories ------------------------------------------------------------
async def advisories(visit: Visit) -> Response:
    if not visit.principal.is_admin:
        return visit.render("error.html", status=403, title="Not allowed",
                            message="Administration is open to administrators only.")
    answer = await visit.get("/api/v1/advisories")
    if not answer.ok:
        return visit.refused(answer)
    state = answer.data
    source = (state.get("last_import") or {}).get("source") or "advisory-database.zip"
    return _render(visit, "admin_advisories.html", title="Advisories", state=state,
                   ecosystems=sorted(state["ecosystems"].items(),
                                     key=lambda e: (-e[1], e[0])),
                   command=f"moorage advisories import {source} --data-dir DATA_DIR")


def install(site: ConsoleSite) -> None:
    site.env.globals["scanning"] = True  # the tag listing's column
    add_section("Advisories", "/admin/advisories")
    site.get("/admin/advisories", advisories)
    site.get("/scanning/export", export)
    site.post("/scanning/scan", scan_now)
    site.get("/scanning/jobs/{job}", scan_progress)
    site.post("/namespaces/{name}/scan-settings", set_scan_on_push)
