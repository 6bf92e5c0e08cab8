"""Webhooks: the ones the user may manage (every one for an administrator), create, edit,
switch on and off, delete, send a test ping, and the delivery history with each attempt's
answer, live while deliveries are pending, with redelivery.

The history polls (htmx) every second while a delivery is pending, re-rendering the table.
When none is, that stops; a light watch asks every few seconds whether a new delivery has
appeared (a push made from a terminal while the page is open) and is answered 204, which
htmx leaves alone, until one has. The watch ends WATCH_SECONDS after the user last did
something on the page (opened it, sent a test, redelivered), with a button to resume: a
tab left open must not keep its session from ending when idle.
"""

from __future__ import annotations

import time
from typing import Any, get_args
from urllib.parse import urlencode

from starlette.responses import Response

from moorage.web.api.webhooks import EventName, Format
from moorage.web.console.apicall import Answer
from moorage.web.console.site import ConsoleSite, Visit

# What the API's models accept, so that the form offers exactly that.
EVENTS: tuple[str, ...] = get_args(EventName)
FORMATS: tuple[str, ...] = get_args(Format)
EVENT_HINTS = {"push": "a manifest pushed (an image, an index, an artifact)",
               "delete": "a manifest or tag deleted",
               "pull": "a manifest pulled",
               "quota": "a push refused by a quota",
               "signature": "a signature written, or an image's verification changed",
               "signing_key": "a trusted signing key added, revoked or deleted",
               "pull.blocked": "a pull refused by the namespace's pull policy",
               "subscription": "an artifact subscription changed, or one of its runs ended"}
FORMAT_HINTS = {"moorage": "Moorage's own JSON",
                "cloudevents": "CloudEvents 1.0, structured mode",
                "distribution": "the envelope of CNCF Distribution's notifications"}
HISTORY = 50
POLL_PENDING = "every 1s"
POLL_WATCH = "every 3s"
WATCH_SECONDS = 15 * 60


def _hx(visit: Visit) -> bool:
    return bool(visit.request.headers.get("hx-request"))


def _events(visit: Visit) -> list[str]:
    return [e for e in visit.form.get("events[]", "").split(",") if e]


async def _managed_namespaces(visit: Visit) -> list[str]:
    """Namespaces where the user may add a webhook: an administrator's are all of them;
    anyone else's, those where they are owner or maintainer (the API's rule)."""
    found = await visit.get("/api/v1/namespaces")
    if not found.ok:
        return []
    return sorted(n["name"] for n in found.data
                  if visit.principal.is_admin or n.get("role") in ("owner", "maintainer"))


async def webhook_list(visit: Visit, status: int = 200, error: str = "",
                       values: dict[str, Any] | None = None) -> Response:
    namespace = visit.query.get("namespace", "")
    hooks = await visit.get("/api/v1/webhooks", namespace=namespace or None)
    if not hooks.ok:
        return visit.refused(hooks)
    namespaces = await _managed_namespaces(visit)
    return visit.render("webhooks.html", status=status, title="Webhooks", hooks=hooks.data,
                        namespace=namespace, namespaces=namespaces, events=EVENTS,
                        event_hints=EVENT_HINTS, formats=FORMATS, format_hints=FORMAT_HINTS,
                        error=error, values=values or {"events": ["push"], "format": "moorage",
                                                       "namespace": namespace})


async def create(visit: Visit) -> Response:
    form = visit.form
    body = {"namespace": form.get("namespace") or None, "url": form.get("url", ""),
            "events": _events(visit), "format": form.get("format", "moorage"),
            "secret": form.get("secret") or None, "description": form.get("description", ""),
            "enabled": form.get("enabled") == "on"}
    made = await visit.api("POST", "/api/v1/webhooks", body=body)
    if not made.ok:
        kept = {**body, "secret": None}  # a secret is never sent back, even to its author
        return await webhook_list(visit, status=made.status, error=made.message, values=kept)
    hook = made.data
    return visit.redirect(f"/webhooks/{hook['id']}",
                          flash=f"Webhook {hook['id']} created. Send a test to check the "
                                f"receiver.")


def _hook_id(visit: Visit) -> str | None:
    value = visit.params.get("hook_id", "")
    return value if value.isdigit() and len(value) <= 10 else None


def _not_found(visit: Visit) -> Response:
    return visit.render("error.html", status=404, title="Not found",
                        message="There is no such webhook.")


async def _deliveries(visit: Visit, hook_id: str) -> Answer:
    return await visit.get(f"/api/v1/webhooks/{hook_id}/deliveries", limit=HISTORY)


def _newest(deliveries: list[dict[str, Any]]) -> str:
    return str(deliveries[0]["id"]) if deliveries else "none"


def _watch_until(visit: Visit) -> float:
    """When the watch of this page ends: carried in its polling URL; a new one from now."""
    try:
        until = float(visit.query.get("until", ""))
    except ValueError:
        return time.time() + WATCH_SECONDS
    return until if until == until else time.time() + WATCH_SECONDS  # NaN: a new watch


def _history(hook: dict[str, Any], deliveries: list[dict[str, Any]], until: float,
             notice: str = "", notice_error: bool = False) -> dict[str, Any]:
    """What the history fragment needs, with how it keeps itself current: every second
    while a delivery is pending; a watch for new ones until `until`; then nothing."""
    pending = sum(d["status"] == "pending" for d in deliveries)
    path = f"/webhooks/{hook['id']}/deliveries"
    stamp = f"{until:.0f}"
    poll = poll_url = None
    if pending:
        poll, poll_url = POLL_PENDING, f"{path}?{urlencode({'until': stamp})}"
    elif time.time() < until:
        poll = POLL_WATCH
        poll_url = f"{path}?{urlencode({'known': _newest(deliveries), 'until': stamp})}"
    return {"hook": hook, "deliveries": deliveries, "pending": pending, "poll": poll,
            "poll_url": poll_url, "resume_url": path, "notice": notice,
            "notice_error": notice_error}


async def _hook_and_deliveries(visit: Visit) -> tuple[str, Answer, Answer] | Response:
    """The webhook a page is about and its deliveries, or the answer to give instead."""
    hook_id = _hook_id(visit)
    if hook_id is None:
        return _not_found(visit)
    hook = await visit.get(f"/api/v1/webhooks/{hook_id}")
    if not hook.ok:
        return visit.refused(hook)
    found = await _deliveries(visit, hook_id)
    if not found.ok:
        return visit.refused(found)
    return hook_id, hook, found


async def detail(visit: Visit, status: int = 200, error: str = "",
                 values: dict[str, Any] | None = None) -> Response:
    found = await _hook_and_deliveries(visit)
    if isinstance(found, Response):
        return found
    hook_id, hook, deliveries = found
    return visit.render("webhooks_detail.html", status=status,
                        title=f"Webhook {hook_id}", events=EVENTS, event_hints=EVENT_HINTS,
                        formats=FORMATS, format_hints=FORMAT_HINTS, error=error,
                        values=values or hook.data,
                        **_history(hook.data, deliveries.data, time.time() + WATCH_SECONDS))


async def history(visit: Visit) -> Response:
    """The history fragment, for htmx; 204 for a watch that has nothing new to show."""
    found = await _hook_and_deliveries(visit)
    if isinstance(found, Response):
        return found
    hook_id, hook, deliveries_answer = found
    deliveries = deliveries_answer.data
    until = _watch_until(visit)
    unchanged = visit.query.get("known") == _newest(deliveries) and \
        not any(d["status"] == "pending" for d in deliveries)
    if unchanged and time.time() < until:
        return Response(status_code=204)  # htmx leaves the table as it is
    if not _hx(visit):
        return visit.redirect(f"/webhooks/{hook_id}")
    return visit.render("webhooks_deliveries.html", **_history(hook.data, deliveries, until))


async def update(visit: Visit) -> Response:
    hook_id = _hook_id(visit)
    if hook_id is None:
        return _not_found(visit)
    form = visit.form
    body: dict[str, Any] = {"url": form.get("url", ""), "events": _events(visit),
                            "format": form.get("format", "moorage"),
                            "description": form.get("description", ""),
                            "enabled": form.get("enabled") == "on"}
    if form.get("remove_secret") == "on":
        body["secret"] = ""
    elif form.get("secret"):
        body["secret"] = form["secret"]
    changed = await visit.api("PATCH", f"/api/v1/webhooks/{hook_id}", body=body)
    if not changed.ok:
        if changed.status in (400, 422):
            return await detail(visit, status=changed.status, error=changed.message,
                                values={**body, "secret": None, "id": hook_id})
        return visit.refused(changed)
    return visit.redirect(f"/webhooks/{hook_id}", flash="Webhook saved.")


async def toggle(visit: Visit) -> Response:
    hook_id = _hook_id(visit)
    if hook_id is None:
        return _not_found(visit)
    enabled = visit.form.get("enabled") == "true"
    changed = await visit.api("PATCH", f"/api/v1/webhooks/{hook_id}",
                              body={"enabled": enabled})
    if not changed.ok:
        return visit.refused(changed)
    return visit.redirect(f"/webhooks/{hook_id}",
                          flash=f"Webhook {hook_id} {'enabled' if enabled else 'disabled'}.")


def _outcome(delivery: dict[str, Any]) -> str:
    """"HTTP 200 in 12 ms" or why there was no answer."""
    attempt = delivery["history"][-1] if delivery["history"] else None
    took = f" in {attempt['duration_ms']} ms" if attempt else ""
    if delivery["response_code"] is not None:
        return f"HTTP {delivery['response_code']}{took}"
    return f"{delivery['error'] or 'no answer'}{took}"


async def send_test(visit: Visit) -> Response:
    hook_id = _hook_id(visit)
    if hook_id is None:
        return _not_found(visit)
    sent = await visit.api("POST", f"/api/v1/webhooks/{hook_id}/test", body={})
    if not _hx(visit):
        if not sent.ok:
            return visit.refused(sent)
        return visit.redirect(f"/webhooks/{hook_id}",
                              flash=f"Test ping {sent.data['status']}: {_outcome(sent.data)}.")
    if not sent.ok:
        return visit.render("webhooks_test.html", error=sent.message, delivery=None)
    hook = await visit.get(f"/api/v1/webhooks/{hook_id}")
    found = await _deliveries(visit, hook_id)
    # The history is swapped in out of band, so that the ping shows there at once.
    history_ctx = _history(hook.data, found.data, time.time() + WATCH_SECONDS) \
        if hook.ok and found.ok else {}
    return visit.render("webhooks_test.html", error="", delivery=sent.data,
                        outcome=_outcome(sent.data), oob=True,
                        show_history=bool(history_ctx), **history_ctx)


async def redeliver(visit: Visit) -> Response:
    hook_id = _hook_id(visit)
    delivery_id = visit.params.get("delivery_id", "")
    if hook_id is None:
        return _not_found(visit)
    sent = await visit.api("POST", f"/api/v1/webhooks/{hook_id}/deliveries/"
                                   f"{delivery_id}/redeliver", body={})
    if sent.ok:
        notice = f"Delivery {delivery_id[:8]} queued again as {sent.data['id'][:8]}."
    else:
        notice = f"Not redelivered: {sent.message}"
    if not _hx(visit):
        if not sent.ok and sent.status != 409:  # a conflict is said on the page
            return visit.refused(sent)
        return visit.redirect(f"/webhooks/{hook_id}", flash=notice)
    hook = await visit.get(f"/api/v1/webhooks/{hook_id}")
    if not hook.ok:
        return visit.refused(hook)
    found = await _deliveries(visit, hook_id)
    if not found.ok:
        return visit.refused(found)
    return visit.render("webhooks_deliveries.html",
                        **_history(hook.data, found.data, time.time() + WATCH_SECONDS,
                                   notice, notice_error=not sent.ok))


async def confirm_delete(visit: Visit) -> Response:
    hook_id = _hook_id(visit)
    if hook_id is None:
        return _not_found(visit)
    hook = await visit.get(f"/api/v1/webhooks/{hook_id}")
    if not hook.ok:
        return visit.refused(hook)
    return visit.render("webhooks_delete.html", title=f"Delete webhook {hook_id}",
                        hook=hook.data)


async def delete(visit: Visit) -> Response:
    hook_id = _hook_id(visit)
    if hook_id is None:
        return _not_found(visit)
    gone = await visit.api("DELETE", f"/api/v1/webhooks/{hook_id}")
    if not gone.ok:
        return visit.refused(gone)
    return visit.redirect("/webhooks", flash=f"Webhook {hook_id} and its delivery history "
                                             f"deleted.")


def install(site: ConsoleSite) -> None:
    """Adds this area's routes and navigation entry."""
    site.add_nav("Webhooks", "/webhooks", 60)
    site.get("/webhooks", webhook_list)
    site.post("/webhooks", create)
    site.get("/webhooks/{hook_id}", detail)
    site.post("/webhooks/{hook_id}", update)
    site.post("/webhooks/{hook_id}/toggle", toggle)
    site.post("/webhooks/{hook_id}/test", send_test)
    site.get("/webhooks/{hook_id}/deliveries", history)
    site.post("/webhooks/{hook_id}/deliveries/{delivery_id}/redeliver", redeliver)
    site.get("/webhooks/{hook_id}/delete", confirm_delete)
    site.post("/webhooks/{hook_id}/delete", delete)
