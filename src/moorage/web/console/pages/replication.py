"""Administration → Replication: the rules (create, run now, enable or disable, delete),
each rule's executions with status, progress and errors, and an execution's log. Everything
goes through /api/v1/replication, whose refusals (a bad field, the edition, the quota) are
shown on the form. Installed from app.py on editions with replication rules.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from moorage.web.console.pages.admin import _failed, _render, add_section
from moorage.web.console.site import ConsoleSite, Visit

_CHECKBOXES = ("insecure", "on_event", "propagate_deletes")


async def replication_page(visit: Visit, error: str = "", status: int = 200,
                           form: dict[str, str] | None = None) -> Response:
    answer = await visit.get("/api/v1/replication/rules")
    if not answer.ok:  # not an administrator, or an edition without replication
        return visit.refused(answer)
    return _render(visit, "admin_replication.html", status=status, title="Replication",
                   rules=answer.data, error=error, form=form or {})


async def rules(visit: Visit) -> Response:
    return await replication_page(visit)


def _body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": form.get("name", "").strip(), "mode": form.get("mode", "push"),
        "url": form.get("url", "").strip(),
        "repositories": form.get("repositories", "").strip() or "**",
        "tags": form.get("tags", "").strip() or "*",
        "destination_namespace": form.get("destination_namespace", "").strip(),
        "cron": form.get("cron", "").strip()}
    for box in _CHECKBOXES:
        body[box] = form.get(box) == "on"
    if form.get("username", "").strip():
        body["username"] = form.get("username", "").strip()
        body["password"] = form.get("password", "")
    bandwidth = form.get("bandwidth", "").strip()
    if bandwidth:
        body["bandwidth"] = int(bandwidth) if bandwidth.isdigit() else -1
    return body


async def create_rule(visit: Visit) -> Response:
    body = _body(visit.form)
    answer = await visit.api("POST", "/api/v1/replication/rules", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        kept = {k: str(v) for k, v in body.items() if k != "password"}
        return await replication_page(visit, answer.message, answer.status, kept)
    return visit.redirect("/admin/replication",
                          flash=f"Replication rule {answer.data['name']} created.")


async def run_rule(visit: Visit) -> Response:
    name = visit.params["name"]
    answer = await visit.api("POST", f"/api/v1/replication/rules/{name}/run", body={})
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect(f"/admin/replication/{name}",
                          flash=f"Execution {answer.data['id']} of {name} started.")


async def set_enabled(visit: Visit) -> Response:
    name = visit.params["name"]
    enabled = visit.form.get("enabled") == "true"
    answer = await visit.api("PATCH", f"/api/v1/replication/rules/{name}",
                             body={"enabled": enabled})
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect("/admin/replication", flash=f"Replication rule {name} "
                                                      f"{'enabled' if enabled else 'disabled'}.")


async def delete_rule(visit: Visit) -> Response:
    name = visit.params["name"]
    answer = await visit.api("DELETE", f"/api/v1/replication/rules/{name}")
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect("/admin/replication", flash=f"Replication rule {name} deleted.")


async def rule_page(visit: Visit) -> Response:
    name = visit.params["name"]
    rule = await visit.get(f"/api/v1/replication/rules/{name}")
    if not rule.ok:
        return visit.refused(rule)
    found = await visit.get(f"/api/v1/replication/rules/{name}/executions")
    if not found.ok:
        return visit.refused(found)
    return _render(visit, "admin_replication_rule.html", title=f"Replication: {name}",
                   rule=rule.data, executions=found.data)


async def execution_page(visit: Visit) -> Response:
    execution_id = visit.params["execution"]
    found = await visit.get(f"/api/v1/replication/executions/{execution_id}")
    if not found.ok:
        return visit.refused(found)
    log = await visit.get(f"/api/v1/replication/executions/{execution_id}/log")
    return _render(visit, "admin_replication_execution.html",
                   title=f"Replication execution {execution_id}", execution=found.data,
                   log=log.data["log"] if log.ok else "")


def install(site: ConsoleSite) -> None:
    add_section("Replication", "/admin/replication")
    site.get("/admin/replication", rules)
    site.post("/admin/replication", create_rule)
    site.get("/admin/replication/executions/{execution:int}", execution_page)
    site.get("/admin/replication/{name}", rule_page)
    site.post("/admin/replication/{name}/run", run_rule)
    site.post("/admin/replication/{name}/enabled", set_enabled)
    site.post("/admin/replication/{name}/delete", delete_rule)
