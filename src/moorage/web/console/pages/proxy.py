"""Administration: proxy cache namespaces (replication/proxy). Bind a namespace to an
upstream registry (the API's refusal is shown on the form), check that the upstream answers,
serve cached content only or pull through again, unbind. The upstream password is sent once
and never shown again. Installed from app.py on editions with proxy caches; the namespace
page shows its binding to administrators.
"""

from __future__ import annotations

from starlette.responses import Response

from moorage.web.console.pages.admin import _failed, _render, add_section
from moorage.web.console.site import ConsoleSite, Visit


async def proxies_page(visit: Visit, error: str = "", status: int = 200,
                       form: dict[str, str] | None = None) -> Response:
    answer = await visit.get("/api/v1/proxy-caches")
    if not answer.ok:  # not an administrator
        return visit.refused(answer)
    return _render(visit, "admin_proxy_caches.html", status=status, title="Proxy caches",
                   proxies=answer.data, error=error, form=form or {})


async def proxies(visit: Visit) -> Response:
    return await proxies_page(visit)


async def create_proxy(visit: Visit) -> Response:
    form = visit.form
    body: dict[str, object] = {"namespace": form.get("namespace", "").strip(),
                               "upstream_url": form.get("upstream_url", "").strip(),
                               "rewrite_library": form.get("rewrite_library") == "on",
                               "insecure": form.get("insecure") == "on"}
    ttl = form.get("ttl_seconds", "").strip()
    if ttl:
        if not ttl.isdigit() or len(ttl) > 9:
            return await proxies_page(visit, "The tag TTL is a whole number of seconds.", 400,
                                      dict(form))
        body["ttl_seconds"] = int(ttl)
    if form.get("username", "").strip():
        body["username"] = form.get("username", "").strip()
        body["password"] = form.get("password", "")
    answer = await visit.api("POST", "/api/v1/proxy-caches", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        kept = {k: v for k, v in form.items() if k != "password"}
        return await proxies_page(visit, answer.message, answer.status, kept)
    return visit.redirect("/admin/proxy-caches",
                          flash=f"{answer.data['namespace']} now pulls through from "
                                f"{answer.data['upstream_url']}.")


async def check_proxy(visit: Visit) -> Response:
    name = visit.params["name"]
    answer = await visit.api("POST", f"/api/v1/proxy-caches/{name}/check", body={})
    if not answer.ok:
        return visit.refused(answer)
    if answer.data["check_ok"]:
        return visit.redirect("/admin/proxy-caches", flash=f"The upstream of {name} answers.")
    return visit.redirect("/admin/proxy-caches", flash=f"The upstream of {name} cannot be "
                                                       f"reached: {answer.data['check_detail']}")


async def set_enabled(visit: Visit) -> Response:
    name = visit.params["name"]
    enabled = visit.form.get("enabled") == "true"
    answer = await visit.api("PATCH", f"/api/v1/proxy-caches/{name}", body={"enabled": enabled})
    if not answer.ok:
        return visit.refused(answer)
    state = "pulls through again" if enabled else "serves cached content only"
    return visit.redirect("/admin/proxy-caches", flash=f"{name} {state}.")


async def remove_proxy(visit: Visit) -> Response:
    name = visit.params["name"]
    answer = await visit.api("DELETE", f"/api/v1/proxy-caches/{name}")
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect("/admin/proxy-caches",
                          flash=f"{name} is no longer a proxy cache; its content stays.")


def install(site: ConsoleSite) -> None:
    add_section("Proxy caches", "/admin/proxy-caches")
    site.get("/admin/proxy-caches", proxies)
    site.post("/admin/proxy-caches", create_proxy)
    site.post("/admin/proxy-caches/{name}/check", check_proxy)
    site.post("/admin/proxy-caches/{name}/enabled", set_enabled)
    site.post("/admin/proxy-caches/{name}/remove", remove_proxy)
