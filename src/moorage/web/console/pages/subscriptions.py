"""Administration → Subscriptions: the artifact subscriptions (create, run now, enable or
disable, delete), each one's executions with status, progress and errors, and an
execution's log. Everything goes through /api/v1/subscriptions, whose refusals (a bad
filter, the edition, the quota) are shown on the form. Installed from app.py on editions
with artifact subscriptions.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from moorage.web.console.pages.admin import _failed, _render, add_section
from moorage.web.console.site import ConsoleSite, Visit

BASE = "/api/v1/subscriptions"
PAGE = "/admin/subscriptions"
_TEXT = ("name", "url", "upstream", "repository", "filter", "cron")


async def listing(visit: Visit, error: str = "", status: int = 200,
                  form: dict[str, str] | None = None) -> Response:
    answer = await visit.get(BASE)
    if not answer.ok:  # not an administrator, or the personal edition
        return visit.refused(answer)
    return _render(visit, "admin_subscriptions.html", status=status, title="Subscriptions",
                   subscriptions=answer.data, error=error, form=form or {})


async def index(visit: Visit) -> Response:
    return await listing(visit)


def _from_form(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {key: form.get(key, "").strip() for key in _TEXT}
    body["filter"] = body["filter"] or "*"
    body["filter_kind"] = form.get("filter_kind", "glob")
    body["insecure"] = form.get("insecure") == "on"
    if form.get("username", "").strip():
        body.update(username=form.get("username", "").strip(), password=form.get("password", ""))
    keep = form.get("keep_newest", "").strip()
    if keep:
        body["keep_newest"] = int(keep) if keep.isdigit() and len(keep) < 7 else -1
    return body


async def create(visit: Visit) -> Response:
    body = _from_form(visit.form)
    answer = await visit.api("POST", BASE, body=body)
    if _failed(answer):
        return visit.refused(answer)
    if answer.ok:
        return visit.redirect(PAGE, flash=f"Subscription {answer.data['name']} created.")
    kept = {key: str(value) for key, value in body.items() if key != "password"}
    return await listing(visit, answer.message, answer.status, kept)


async def act(visit: Visit) -> Response:
    """The buttons of a row: run now, enable or disable, delete."""
    name, action = visit.params["name"], visit.params["action"]
    if action == "run":
        answer = await visit.api("POST", f"{BASE}/{name}/run", body={})
        where, said = f"{PAGE}/{name}", "Execution {id} of " + name + " started."
    elif action == "enabled":
        enabled = visit.form.get("enabled") == "true"
        answer = await visit.api("PATCH", f"{BASE}/{name}", body={"enabled": enabled})
        where, said = PAGE, f"Subscription {name} {'enabled' if enabled else 'disabled'}."
    elif action == "delete":
        answer = await visit.api("DELETE", f"{BASE}/{name}")
        where, said = PAGE, f"Subscription {name} deleted."
    else:
        return visit.render("error.html", status=404, title="Not found",
                            message="No such action.")
    if not answer.ok:
        return visit.refused(answer)
    data = answer.data if isinstance(answer.data, dict) else {}
    return visit.redirect(where, flash=said.replace("{id}", str(data.get("id", ""))))


async def detail(visit: Visit) -> Response:
    name = visit.params["name"]
    found = await visit.get(f"{BASE}/{name}")
    runs = await visit.get(f"{BASE}/{name}/executions") if found.ok else found
    if not runs.ok:
        return visit.refused(runs)
    return _render(visit, "admin_subscription.html", title=f"Subscription: {name}",
                   subscription=found.data, executions=runs.data)


async def execution(visit: Visit) -> Response:
    number = visit.params["execution"]
    found = await visit.get(f"{BASE}/executions/{number}")
    if not found.ok:
        return visit.refused(found)
    log = await visit.get(f"{BASE}/executions/{number}/log")
    return _render(visit, "admin_subscription_execution.html",
                   title=f"Subscription execution {number}", execution=found.data,
                   log=log.data["log"] if log.ok else "")


def install(site: ConsoleSite) -> None:
    add_section("Subscriptions", PAGE)
    site.get(PAGE, index)
    site.post(PAGE, create)
    site.get(f"{PAGE}/executions/{{execution:int}}", execution)
    site.get(f"{PAGE}/{{name}}", detail)
    site.post(f"{PAGE}/{{name}}/{{action}}", act)
