"""Administration: Harbor scanner adapters (Trivy's, …) that scans use as engines. Register
one (its metadata is fetched and checked by the API, whose refusal is shown on the form),
ping it, take it out of scans or back, remove it. The secret Moorage calls an adapter with
is sent once and never shown again. Installed from app.py on editions with scanning.
"""

from __future__ import annotations

from starlette.responses import Response

from moorage.web.console.pages.admin import _failed, _render, add_section
from moorage.web.console.site import ConsoleSite, Visit

AUTH_LABELS = {"none": "none", "bearer": "bearer token", "basic": "basic (user:password)",
               "apikey": "API key (X-ScannerAdapter-API-Key)"}


async def scanners_page(visit: Visit, error: str = "", status: int = 200,
                        form: dict[str, str] | None = None) -> Response:
    answer = await visit.get("/api/v1/scanners")
    if not answer.ok:  # not an administrator
        return visit.refused(answer)
    return _render(visit, "admin_scanners.html", status=status, title="Scanner adapters",
                   scanners=answer.data, error=error, form=form or {},
                   auth_labels=AUTH_LABELS)


async def scanners(visit: Visit) -> Response:
    return await scanners_page(visit)


async def add_scanner(visit: Visit) -> Response:
    form = visit.form
    auth = form.get("auth", "none")
    body = {"name": form.get("name", "").strip(), "url": form.get("url", "").strip(),
            "auth": auth}
    if auth != "none":
        body["secret"] = form.get("secret", "")
    answer = await visit.api("POST", "/api/v1/scanners", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:  # the adapter's metadata did not fit, or a field is wrong
        return await scanners_page(visit, answer.message, answer.status,
                                   {"name": body["name"], "url": body["url"], "auth": auth})
    scanner = answer.data["scanner"]
    return visit.redirect("/admin/scanners", flash=f"Scanner adapter {answer.data['name']} "
                                                   f"registered: {scanner['name']} "
                                                   f"{scanner['version']}.")


async def ping_scanner(visit: Visit) -> Response:
    name = visit.params["name"]
    answer = await visit.api("POST", f"/api/v1/scanners/{name}/ping", body={})
    if not answer.ok:
        return visit.refused(answer)
    if answer.data["health"] == "healthy":
        return visit.redirect("/admin/scanners", flash=f"Scanner adapter {name} is healthy.")
    return visit.redirect("/admin/scanners", flash=f"Scanner adapter {name} is unhealthy: "
                                                   f"{answer.data['health_detail']}")


async def set_enabled(visit: Visit) -> Response:
    name = visit.params["name"]
    enabled = visit.form.get("enabled") == "true"
    answer = await visit.api("PATCH", f"/api/v1/scanners/{name}", body={"enabled": enabled})
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect("/admin/scanners", flash=f"Scanner adapter {name} "
                                                   f"{'enabled' if enabled else 'disabled'}.")


async def remove_scanner(visit: Visit) -> Response:
    name = visit.params["name"]
    answer = await visit.api("DELETE", f"/api/v1/scanners/{name}")
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect("/admin/scanners", flash=f"Scanner adapter {name} removed.")


def install(site: ConsoleSite) -> None:
    add_section("Scanners", "/admin/scanners")
    site.get("/admin/scanners", scanners)
    site.post("/admin/scanners", add_scanner)
    site.post("/admin/scanners/{name}/ping", ping_scanner)
    site.post("/admin/scanners/{name}/enabled", set_enabled)
    site.post("/admin/scanners/{name}/remove", remove_scanner)
