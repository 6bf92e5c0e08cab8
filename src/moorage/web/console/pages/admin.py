"""Administration: instance information, user accounts (and where each signs in), roles from
directory groups and network rules; and, for every
user, their own personal access tokens under /account/tokens.

As everywhere in the console, the management API decides: a page for administrators asks
the API as the signed-in user, and a refusal is shown with the API's status and words. The
network rules' lock-out guard is the API's too: its refusal is shown on the form (the API
has no override for it; an allow rule that contains the caller's address must come first).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from moorage.web.console.apicall import Answer
from moorage.web.console.pages.namespaces import read_days
from moorage.web.console.site import ConsoleSite, Visit

RULE_KINDS = ("allow", "trusted")
SECTIONS = [("Instance", "/admin"), ("Users", "/admin/users"),
            ("Group roles", "/admin/group-roles"), ("Network rules", "/admin/network"),
            ("Domains", "/admin/domains")]
ROLE_NAMES = ("owner", "maintainer", "developer", "guest")
SOURCE_LABELS = {"local": "local password", "ldap": "LDAP directory",
                 "oidc": "single sign-on (OpenID Connect)"}


def add_section(label: str, href: str) -> None:
    """A feature's administration page joins the administration navigation (once)."""
    if (label, href) not in SECTIONS:
        SECTIONS.append((label, href))


def _failed(answer: Answer) -> bool:
    """Refusals of authority and of something missing are pages of their own; the others
    (invalid, conflict) are shown on the form that asked."""
    return answer.status in (401, 403, 404) or answer.status >= 500


def _render(visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
    return visit.render(template, status=status, sections=SECTIONS, **context)


# -- instance -----------------------------------------------------------------------------
async def instance(visit: Visit) -> Response:
    if not visit.principal.is_admin:  # the section is theirs; each of its calls is, too
        return visit.render("error.html", status=403, title="Not allowed",
                            message="Administration is open to administrators only.")
    answer = await visit.get("/api/v1/info")
    if not answer.ok:
        return visit.refused(answer)
    info = answer.data
    features = sorted(info.get("features", {}).items(), key=lambda f: (not f[1], f[0]))
    maintenance = await visit.get("/api/v1/maintenance")
    return _render(visit, "admin.html", title="Administration", info=info, features=features,
                   maintenance=maintenance.data if maintenance.ok else None)


async def set_read_only(visit: Visit) -> Response:
    """Turn read-only mode on (with the operator's message) or off."""
    on = visit.form.get("read_only") == "on"
    answer = await visit.api("PUT", "/api/v1/maintenance",
                             body={"read_only": on, "message": visit.form.get("message", "")})
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect("/admin", "Read-only mode is on: pulls only." if on
                          else "Read-only mode is off: pushes and changes are accepted.")


# -- users --------------------------------------------------------------------------------

async def users_page(visit: Visit, error: str = "", status: int = 200,
                     form: dict[str, str] | None = None) -> Response:
    answer = await visit.get("/api/v1/users")
    if not answer.ok:
        return visit.refused(answer)
    users = sorted(answer.data, key=lambda u: u["username"])
    return _render(visit, "admin_users.html", status=status, title="Users", users=users,
                   error=error, form=form or {})


async def users(visit: Visit) -> Response:
    return await users_page(visit)


async def create_user(visit: Visit) -> Response:
    form = visit.form
    username = form.get("username", "").strip()
    body = {"username": username, "password": form.get("password", ""),
            "is_admin": form.get("is_admin") == "on"}
    answer = await visit.api("POST", "/api/v1/users", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await users_page(visit, answer.message, answer.status,
                                {k: v for k, v in form.items() if k != "password"})
    return visit.redirect(f"/admin/users/{username}", flash=f"User {username} created.")


async def user_page(visit: Visit, error: str = "", status: int = 200) -> Response:
    username = visit.params["username"]
    answer = await visit.get(f"/api/v1/users/{username}")
    if not answer.ok:
        return visit.refused(answer)
    info = await visit.get("/api/v1/info")
    sources = info.data.get("sign_in", ["local"]) if info.ok else ["local"]
    return _render(visit, "admin_user.html", status=status, title=f"User {username}",
                   account=answer.data, error=error, sources=sources,
                   source_labels=SOURCE_LABELS, itself=username == visit.principal.username)


async def user(visit: Visit) -> Response:
    return await user_page(visit)


async def _change_user(visit: Visit, body: dict[str, Any], done: str) -> Response:
    username = visit.params["username"]
    answer = await visit.api("PATCH", f"/api/v1/users/{username}", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await user_page(visit, answer.message, answer.status)
    return visit.redirect(f"/admin/users/{username}", flash=done)


async def set_admin(visit: Visit) -> Response:
    make = visit.form.get("is_admin") == "true"
    username = visit.params["username"]
    return await _change_user(visit, {"is_admin": make},
                              f"{username} is {'now' if make else 'no longer'} an "
                              f"administrator.")


async def set_disabled(visit: Visit) -> Response:
    disable = visit.form.get("disabled") == "true"
    username = visit.params["username"]
    return await _change_user(visit, {"disabled": disable},
                              f"{username} is {'disabled' if disable else 'enabled'}.")


async def reset_password(visit: Visit) -> Response:
    password = visit.form.get("password", "")
    if password != visit.form.get("password_again", ""):
        return await user_page(visit, "The two passwords differ.", 400)
    return await _change_user(visit, {"password": password},
                              f"The password of {visit.params['username']} is changed; its "
                              f"sessions and refresh tokens ended with the old one.")


async def set_source(visit: Visit) -> Response:
    """Switch where the account signs in; to a local password, with the new password."""
    source = visit.form.get("source", "")
    body: dict[str, Any] = {"source": source}
    if source == "local":
        password = visit.form.get("password", "")
        if password != visit.form.get("password_again", ""):
            return await user_page(visit, "The two passwords differ.", 400)
        if password:  # none given: the API says that one is needed
            body["password"] = password
    username = visit.params["username"]
    return await _change_user(visit, body, f"{username} now signs in with "
                                           f"{SOURCE_LABELS.get(source, source)}.")


async def confirm_delete_user(visit: Visit, error: str = "", status: int = 200) -> Response:
    username = visit.params["username"]
    answer = await visit.get(f"/api/v1/users/{username}")
    if not answer.ok:
        return visit.refused(answer)
    return _render(visit, "admin_user_delete.html", status=status,
                   title=f"Delete user {username}", account=answer.data, error=error)


async def delete_user(visit: Visit) -> Response:
    username = visit.params["username"]
    answer = await visit.api("DELETE", f"/api/v1/users/{username}")
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await confirm_delete_user(visit, answer.message, answer.status)
    return visit.redirect("/admin/users", flash=f"User {username} deleted.")


# -- roles from directory groups -----------------------------------------------------------
async def group_roles_page(visit: Visit, error: str = "", status: int = 200,
                           form: dict[str, str] | None = None) -> Response:
    answer = await visit.get("/api/v1/sso/group-roles")
    if not answer.ok:
        return visit.refused(answer)
    info = await visit.get("/api/v1/info")
    sources = info.data.get("sign_in", ["local"]) if info.ok else ["local"]
    return _render(visit, "admin_group_roles.html", status=status, title="Group roles",
                   mappings=answer.data, roles=ROLE_NAMES, error=error, form=form or {},
                   directories=[SOURCE_LABELS[s] for s in sources if s != "local"])


async def group_roles(visit: Visit) -> Response:
    return await group_roles_page(visit)


async def add_group_role(visit: Visit) -> Response:
    form = visit.form
    body = {"group": form.get("group", "").strip(), "namespace": form.get("namespace", "").strip(),
            "role": form.get("role", "")}
    answer = await visit.api("POST", "/api/v1/sso/group-roles", body=body)
    if answer.status in (401, 403) or answer.status >= 500:
        return visit.refused(answer)
    if not answer.ok:  # invalid, a namespace that does not exist, a second role: on the form
        return await group_roles_page(visit, answer.message, answer.status, form)
    return visit.redirect("/admin/group-roles",
                          flash=f"Members of {answer.data['group']} are now "
                                f"{answer.data['role']} in {answer.data['namespace']} from "
                                f"their next sign-in.")


async def delete_group_role(visit: Visit) -> Response:
    mapping = visit.params["mapping"]
    if not mapping.isdigit() or len(mapping) > 9:
        return visit.render("error.html", status=404, title="Not found",
                            message=f"group role {mapping[:20]} does not exist")
    answer = await visit.api("DELETE", f"/api/v1/sso/group-roles/{mapping}")
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await group_roles_page(visit, answer.message, answer.status)
    return visit.redirect("/admin/group-roles", flash="Group role removed; its members lose "
                                                      "the role at their next sign-in.")


# -- network rules ------------------------------------------------------------------------
async def network_page(visit: Visit, error: str = "", status: int = 200,
                       form: dict[str, str] | None = None, lockout: bool = False) -> Response:
    answer = await visit.get("/api/v1/network-rules")
    if not answer.ok:
        return visit.refused(answer)
    rules = sorted(answer.data, key=lambda r: (r["namespace"] or "", r["kind"], r["cidr"]))
    return _render(visit, "admin_network.html", status=status, title="Network rules",
                   rules=rules, kinds=RULE_KINDS, error=error, form=form or {},
                   lockout=lockout)


async def network(visit: Visit) -> Response:
    return await network_page(visit)


def _locks_out(answer: Answer) -> bool:
    return "lock you out" in answer.message


async def add_rule(visit: Visit) -> Response:
    form = visit.form
    body = {"cidr": form.get("cidr", "").strip(), "kind": form.get("kind", "allow"),
            "namespace": form.get("namespace", "").strip() or None,
            "description": form.get("description", "")}
    answer = await visit.api("POST", "/api/v1/network-rules", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await network_page(visit, answer.message, answer.status, form, _locks_out(answer))
    return visit.redirect("/admin/network", flash=f"Rule {body['kind']} {answer.data['cidr']} "
                                                  f"added.")


async def delete_rule(visit: Visit) -> Response:
    rule = visit.params["rule"]
    if not rule.isdigit() or len(rule) > 10:
        return visit.render("error.html", status=404, title="Not found",
                            message=f"network rule {rule[:20]} does not exist")
    answer = await visit.api("DELETE", f"/api/v1/network-rules/{rule}")
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await network_page(visit, answer.message, answer.status, None, _locks_out(answer))
    return visit.redirect("/admin/network", flash="Rule deleted.")


# -- the signed-in user's personal access tokens ------------------------------------------
async def tokens_page(visit: Visit, error: str = "", status: int = 200,
                      form: dict[str, str] | None = None) -> Response:
    answer = await visit.get("/api/v1/tokens")
    if not answer.ok:
        return visit.refused(answer)
    newest = sorted(answer.data, key=lambda t: t["created_at"], reverse=True)
    tokens = sorted(newest, key=lambda t: not t["active"])  # the active ones first
    me = await visit.get("/api/v1/user")  # an SSO account is told what its clients use
    source = me.data.get("source", "local") if me.ok and isinstance(me.data, dict) else "local"
    return visit.render("admin_tokens.html", status=status, title="Access tokens",
                        tokens=tokens, error=error, form=form or {}, source=source,
                        registry_host=visit.request.headers.get("host", "")[:300])


async def account(visit: Visit) -> Response:
    return visit.redirect("/account/tokens")


async def tokens(visit: Visit) -> Response:
    return await tokens_page(visit)


async def create_token(visit: Visit) -> Response:
    form = visit.form
    try:
        days = read_days(form.get("expires_in_days", ""))
    except ValueError as exc:
        return await tokens_page(visit, str(exc), 400, form)
    answer = await visit.api("POST", "/api/v1/tokens",
                             body={"name": form.get("name", "").strip(), "expires_in_days": days})
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await tokens_page(visit, answer.message, answer.status, form)
    # The token is in this answer only: shown on this page, never again.
    return visit.render("admin_token.html", title=f"Access token {answer.data['name']}",
                        token=answer.data)


async def revoke_token(visit: Visit) -> Response:
    token = visit.params["token"]
    answer = await visit.api("DELETE", f"/api/v1/tokens/{token}")
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await tokens_page(visit, answer.message, answer.status)
    return visit.redirect("/account/tokens", flash="Token revoked.")


# -- custom domains -----------------------------------------------------------------------
async def domains_page(visit: Visit, error: str = "", status: int = 200,
                       form: dict[str, str] | None = None) -> Response:
    answer = await visit.get("/api/v1/domains")
    if not answer.ok:  # not an administrator, or an edition without custom domains
        return visit.refused(answer)
    return _render(visit, "admin_domains.html", status=status, title="Custom domains",
                   domains=answer.data, error=error, form=form or {})


async def domains(visit: Visit) -> Response:
    return await domains_page(visit)


async def add_domain(visit: Visit) -> Response:
    """Add or renew a domain from pasted PEM; a refused pair is shown on the form with the
    API's reason, the host kept and the key never sent back."""
    form = visit.form
    body = {"host": form.get("host", "").strip(), "certificate": form.get("certificate", ""),
            "key": form.get("key", "")}
    answer = await visit.api("POST", "/api/v1/domains", body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await domains_page(visit, answer.message, answer.status,
                                  {"host": body["host"]})
    verb = "added" if answer.status == 201 else "renewed"
    return visit.redirect("/admin/domains", flash=f"Domain {answer.data['host']} {verb}: "
                                                  f"served within seconds.")


async def remove_domain(visit: Visit) -> Response:
    host = visit.params["host"]
    answer = await visit.api("DELETE", f"/api/v1/domains/{host}")
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:
        return await domains_page(visit, answer.message, answer.status)
    return visit.redirect("/admin/domains", flash=f"Domain {host} removed.")


def install(site: ConsoleSite) -> None:
    site.add_nav("Administration", "/admin", 90, admin_only=True)
    site.add_nav("Account", "/account/tokens", 95)
    site.get("/admin", instance)
    site.post("/admin/maintenance", set_read_only)
    site.get("/admin/users", users)
    site.post("/admin/users", create_user)
    site.get("/admin/users/{username}", user)
    site.post("/admin/users/{username}/admin", set_admin)
    site.post("/admin/users/{username}/disabled", set_disabled)
    site.post("/admin/users/{username}/password", reset_password)
    site.post("/admin/users/{username}/source", set_source)
    site.get("/admin/users/{username}/delete", confirm_delete_user)
    site.post("/admin/users/{username}/delete", delete_user)
    site.get("/admin/group-roles", group_roles)
    site.post("/admin/group-roles", add_group_role)
    site.post("/admin/group-roles/{mapping}/delete", delete_group_role)
    site.get("/admin/network", network)
    site.post("/admin/network", add_rule)
    site.post("/admin/network/{rule}/delete", delete_rule)
    site.get("/admin/domains", domains)
    site.post("/admin/domains", add_domain)
    site.post("/admin/domains/{host}/remove", remove_domain)
    site.get("/account", account)
    site.get("/account/tokens", tokens)
    site.post("/account/tokens", create_token)
    site.post("/account/tokens/{token}/revoke", revoke_token)
