"""Namespaces: the list, creation, a namespace's page (settings, members, robot accounts) and
its deletion behind a confirmation page where the user types the namespace's name.

Every read and change goes through the management API as the signed-in user. What the page
shows follows the caller's role (a guest sees no management control), but the API decides:
a forged form post is refused there and shown with the API's status and words.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from moorage.units import parse_size
from moorage.web.console.apicall import Answer
from moorage.web.console.site import ConsoleSite, Visit

ROLES = ("owner", "maintainer", "developer", "guest")
ROBOT_ROLES = ("maintainer", "developer", "guest")
VISIBILITIES = ("private", "public")
# Roles that may see a namespace's robot accounts (the API's `manage_rules`), and manage
# members, robots and settings (`manage_members`).
_SEES_ROBOTS = frozenset({"owner", "maintainer"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # what <input type="date"> sends
_BINARY = (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2),
           ("KiB", 1024))


def exact_size(value: int | None) -> str:
    """A byte count as the largest binary unit that writes it exactly ("50GiB"), so that a
    form shows it in words and reads the same number back; "" for no limit."""
    if value is None:
        return ""
    for unit, factor in _BINARY:
        if value and value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)


def read_quota(text: str) -> int | None:
    """A storage quota from a form: "" is no limit; "50GiB", "500MB" or bytes otherwise.
    ValueError with words a person can act on."""
    text = text.strip()
    if not text:
        return None
    try:
        value = parse_size(text)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a size: write bytes, or a number with a unit "
                         f"such as 500MB or 50GiB (empty for no limit)") from None
    if not 0 <= value < 2**63:
        raise ValueError(f"{text!r} is out of range")
    return value


def read_days(text: str) -> float | None:
    """Days until expiry from a form: "" is never."""
    text = text.strip()
    if not text:
        return None
    try:
        days = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of days") from None
    if not 0 < days <= 36500 or days != days:
        raise ValueError("a lifetime is more than 0 and at most 36500 days")
    return days


def _manages(visit: Visit, ns: dict[str, Any]) -> bool:
    return visit.principal.is_admin or ns.get("role") == "owner"


def _sees_robots(visit: Visit, ns: dict[str, Any]) -> bool:
    return visit.principal.is_admin or ns.get("role") in _SEES_ROBOTS


def _failed(answer: Answer) -> bool:
    """A refusal of authority (403) or of something missing (404) is a page of its own; the
    other refusals (invalid, conflict, quota) are shown on the form that asked."""
    return answer.status in (401, 403, 404) or answer.status >= 500


# -- the list and creation ----------------------------------------------------------------
async def list_page(visit: Visit, error: str = "", form: dict[str, str] | None = None,
                    status: int = 200) -> Response:
    answer = await visit.get("/api/v1/namespaces")
    if not answer.ok:
        return visit.refused(answer)
    spaces = sorted(answer.data, key=lambda n: n["name"])
    return visit.render("namespaces.html", status=status, title="Namespaces",
                        namespaces=spaces, error=error, form=form or {},
                        visibilities=VISIBILITIES)


async def index(visit: Visit) -> Response:
    return await list_page(visit)


async def create(visit: Visit) -> Response:
    form = visit.form
    name = form.get("name", "").strip()
    quota: int | None = None
    try:
        if form.get("storage_quota", "").strip():
            quota = read_quota(form["storage_quota"])
    except ValueError as exc:
        return await list_page(visit, str(exc), form, 400)
    body = {"name": name, "visibility": form.get("visibility", "private"),
            "description": form.get("description", ""),
            "credential_free_pull": form.get("credential_free_pull") == "on"}
    answer = await visit.api("POST", "/api/v1/namespaces", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await list_page(visit, answer.message, form, answer.status)
    created = answer.data["name"]
    if quota is not None:
        limited = await visit.api("PATCH", f"/api/v1/namespaces/{created}",
                                  body={"storage_quota": quota})
        if not limited.ok:
            return visit.redirect(f"/namespaces/{created}",
                                  flash=f"Namespace {created} created, but its storage quota "
                                        f"was refused: {limited.message}")
    return visit.redirect(f"/namespaces/{created}", flash=f"Namespace {created} created.")


# -- one namespace ------------------------------------------------------------------------
async def namespace_page(visit: Visit, error: str = "", status: int = 200,
                         section: str = "", form: dict[str, str] | None = None) -> Response:
    name = visit.params["name"]
    answer = await visit.get(f"/api/v1/namespaces/{name}")
    if not answer.ok:
        return visit.refused(answer)
    ns = answer.data
    members = robots = None
    found = await visit.get(f"/api/v1/namespaces/{name}/members")
    if found.ok:
        members = sorted(found.data, key=lambda m: (ROLES.index(m["role"]), m["username"]))
    if _sees_robots(visit, ns):
        found = await visit.get(f"/api/v1/namespaces/{name}/robots")
        if found.ok:
            robots = sorted(found.data, key=lambda r: r["name"])
    # the CVE allowlist: absent when the edition lacks scanning or the caller may not read it
    found = await visit.get(f"/api/v1/namespaces/{name}/cve-allowlist")
    allowlist = found.data if found.ok else None
    found = await visit.get(f"/api/v1/namespaces/{name}/scan-settings")  # scanning only
    scan_settings = found.data if found.ok else None
    # the pull policy (threat blocking): absent without the edition or the owner role
    found = await visit.get(f"/api/v1/namespaces/{name}/pull-policy")
    pull_policy = found.data if found.ok else None
    proxy = None  # its upstream, when it is a proxy cache (administrators see the binding)
    if visit.principal.is_admin:
        found = await visit.get(f"/api/v1/proxy-caches/{name}")
        proxy = found.data if found.ok else None
    return visit.render("namespaces_show.html", status=status, title=f"Namespace {name}",
                        pull_policy=pull_policy, proxy=proxy, ns=ns, members=members, robots=robots,
                        manages=_manages(visit, ns),
                        allowlist=allowlist, scan_settings=scan_settings,
                        sets_scanning=visit.principal.is_admin or
                        ns.get("role") in _SEES_ROBOTS,
                        quota_text=exact_size(ns.get("storage_quota")), roles=ROLES,
                        robot_roles=ROBOT_ROLES, visibilities=VISIBILITIES, error=error,
                        section=section, form=form or {})


async def show(visit: Visit) -> Response:
    return await namespace_page(visit)


async def _answer(visit: Visit, answer: Answer, section: str, done: str) -> Response:
    """After a change: the namespace page with the refusal on the form that asked, or a
    redirect to it with what was done."""
    name = visit.params["name"]
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await namespace_page(visit, answer.message, answer.status, section, visit.form)
    return visit.redirect(f"/namespaces/{name}#{section}", flash=done)


async def edit(visit: Visit) -> Response:
    name = visit.params["name"]
    form = visit.form
    body: dict[str, Any] = {"description": form.get("description", ""),
                            "credential_free_pull": form.get("credential_free_pull") == "on"}
    if "visibility" in form:
        body["visibility"] = form["visibility"]
    if "storage_quota" in form:  # only administrators get the field: the API's rule
        try:
            body["storage_quota"] = read_quota(form["storage_quota"])
        except ValueError as exc:
            return await namespace_page(visit, str(exc), 400, "settings", form)
    answer = await visit.api("PATCH", f"/api/v1/namespaces/{name}", body=body)
    return await _answer(visit, answer, "settings", f"Namespace {name} saved.")


async def confirm_delete(visit: Visit, error: str = "", status: int = 200) -> Response:
    name = visit.params["name"]
    answer = await visit.get(f"/api/v1/namespaces/{name}")
    if not answer.ok:
        return visit.refused(answer)
    return visit.render("namespaces_delete.html", status=status,
                        title=f"Delete namespace {name}", ns=answer.data, error=error)


async def delete(visit: Visit) -> Response:
    name = visit.params["name"]
    if visit.form.get("confirm_name", "").strip() != name:
        return await confirm_delete(visit, f"Type the namespace's name, {name}, to delete it.",
                                    400)
    answer = await visit.api("DELETE", f"/api/v1/namespaces/{name}")
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await confirm_delete(visit, answer.message, answer.status)
    return visit.redirect("/namespaces", flash=f"Namespace {name} deleted.")


# -- members ------------------------------------------------------------------------------
async def add_member(visit: Visit) -> Response:
    name = visit.params["name"]
    username = visit.form.get("username", "").strip()
    if not username or "/" in username or "?" in username or "#" in username:
        return await namespace_page(visit, "Give the username of an existing account.", 400,
                                    "members", visit.form)
    answer = await visit.api("PUT", f"/api/v1/namespaces/{name}/members/{username}",
                             body={"role": visit.form.get("role", "")})
    return await _answer(visit, answer, "members",
                         f"{username} is now {visit.form.get('role')} in {name}.")


async def set_role(visit: Visit) -> Response:
    name, username = visit.params["name"], visit.params["username"]
    answer = await visit.api("PUT", f"/api/v1/namespaces/{name}/members/{username}",
                             body={"role": visit.form.get("role", "")})
    return await _answer(visit, answer, "members",
                         f"{username} is now {visit.form.get('role')} in {name}.")


async def remove_member(visit: Visit) -> Response:
    name, username = visit.params["name"], visit.params["username"]
    answer = await visit.api("DELETE", f"/api/v1/namespaces/{name}/members/{username}")
    return await _answer(visit, answer, "members", f"{username} no longer has a role in {name}.")


# -- robot accounts -----------------------------------------------------------------------
async def create_robot(visit: Visit) -> Response:
    name = visit.params["name"]
    form = visit.form
    try:
        days = read_days(form.get("expires_in_days", ""))
    except ValueError as exc:
        return await namespace_page(visit, str(exc), 400, "robots", form)
    body = {"name": form.get("robot_name", "").strip(), "role": form.get("role", "developer"),
            "description": form.get("description", ""), "expires_in_days": days}
    answer = await visit.api("POST", f"/api/v1/namespaces/{name}/robots", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await namespace_page(visit, answer.message, answer.status, "robots", form)
    # The secret is in this answer only: shown on this page, never stored, never again.
    return visit.render("namespaces_robot.html",
                        title=f"Robot account {answer.data['username']}", ns_name=name,
                        robot=answer.data, registry_host=visit.request.headers.get("host", ""))


async def confirm_delete_robot(visit: Visit) -> Response:
    name, robot = visit.params["name"], visit.params["robot"]
    answer = await visit.get(f"/api/v1/namespaces/{name}/robots")
    if not answer.ok:
        return visit.refused(answer)
    found = next((r for r in answer.data if r["name"] == robot), None)
    if found is None:
        return visit.render("error.html", status=404, title="Not found",
                            message=f"namespace {name} has no robot account {robot}")
    return visit.render("namespaces_robot_delete.html", title=f"Delete robot {robot}",
                        ns_name=name, robot=found)


async def delete_robot(visit: Visit) -> Response:
    name, robot = visit.params["name"], visit.params["robot"]
    answer = await visit.api("DELETE", f"/api/v1/namespaces/{name}/robots/{robot}")
    return await _answer(visit, answer, "robots", f"Robot account {robot} deleted.")


# -- the CVE allowlist --------------------------------------------------------------------
async def accept_advisory(visit: Visit) -> Response:
    name, form = visit.params["name"], visit.form
    expires = form.get("expires", "").strip()
    if expires and not _DATE.fullmatch(expires):
        return await namespace_page(visit, f"{expires[:32]!r} is not a date (YYYY-MM-DD).", 400,
                                    "cve-allowlist", form)
    body = {"id": form.get("id", "").strip(), "reason": form.get("reason", ""),
            "expires_at": f"{expires}T00:00:00Z" if expires else None}
    answer = await visit.api("POST", f"/api/v1/namespaces/{name}/cve-allowlist", body=body)
    return await _answer(visit, answer, "cve-allowlist",
                         f"{body['id']} is accepted in {name}.")


async def remove_advisory(visit: Visit) -> Response:
    name, ident = visit.params["name"], visit.params["ident"]
    answer = await visit.api("DELETE", f"/api/v1/namespaces/{name}/cve-allowlist/"
                                       f"{quote(ident, safe='')}")
    return await _answer(visit, answer, "cve-allowlist",
                         f"{ident} is no longer accepted in {name}.")


def install(site: ConsoleSite) -> None:
    site.add_nav("Namespaces", "/namespaces", 20)
    site.get("/namespaces", index)
    site.post("/namespaces", create)
    site.get("/namespaces/{name}", show)
    site.post("/namespaces/{name}/settings", edit)
    site.get("/namespaces/{name}/delete", confirm_delete)
    site.post("/namespaces/{name}/delete", delete)
    site.post("/namespaces/{name}/members", add_member)
    site.post("/namespaces/{name}/members/{username}/role", set_role)
    site.post("/namespaces/{name}/members/{username}/remove", remove_member)
    site.post("/namespaces/{name}/robots", create_robot)
    site.get("/namespaces/{name}/robots/{robot}/delete", confirm_delete_robot)
    site.post("/namespaces/{name}/robots/{robot}/delete", delete_robot)
    site.post("/namespaces/{name}/cve-allowlist", accept_advisory)
    site.post("/namespaces/{name}/cve-allowlist/{ident}/remove", remove_advisory)
