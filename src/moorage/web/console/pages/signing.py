"""Image signing in the console: the Signing keys page of the instance (Administration) and
of each namespace (list, add a public key, have the server generate and hold a key, revoke,
delete; the keyless identities trusted there: add, remove), and the manifest page's
Signatures section (the stored verification, every verdict,
and **Sign with server key**).

Everything goes through the API as the visitor (apicall.py), so a visitor is refused exactly
where the API refuses: the forms are only hidden from those it would refuse. A private key
is never pasted here: the CLI imports one (`moorage signing key import`), so that its
password goes no further than the API call. Installed from app.py on editions with signing.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from moorage.web.console.pages.admin import _failed, _render, add_section
from moorage.web.console.site import ConsoleSite, Visit

MAX_NAME = 256
PUSHERS = frozenset({"owner", "maintainer", "developer"})


def _scope_paths(namespace: str | None, kind: str = "keys") -> tuple[str, str]:
    """(the API's base for the scope's keys or identities, the console page of the scope)."""
    if namespace is None:
        return f"/api/v1/signing/{kind}", "/admin/signing"
    return (f"/api/v1/namespaces/{namespace}/signing/{kind}",
            f"/namespaces/{namespace}/signing")


async def _page(visit: Visit, namespace: str | None, error: str = "", status: int = 200,
                form: dict[str, str] | None = None, identity_error: str = "") -> Response:
    api, here = _scope_paths(namespace)
    answer = await visit.get(api)
    if not answer.ok:
        return visit.refused(answer)
    identities = await visit.get(_scope_paths(namespace, "identities")[0])
    if not identities.ok:
        return visit.refused(identities)
    if namespace is None:
        manages = visit.principal.is_admin
    else:
        found = await visit.get(f"/api/v1/namespaces/{namespace}")
        role = found.data.get("role") if found.ok and isinstance(found.data, dict) else None
        manages = visit.principal.is_admin or role == "owner"
    title = "Signing keys" if namespace is None else f"Signing keys of {namespace}"
    context: dict[str, Any] = dict(title=title, keys=answer.data, namespace=namespace,
                                   identities=identities.data, identity_error=identity_error,
                                   here=here, manages=manages, error=error, form=form or {})
    if namespace is None:
        return _render(visit, "signing_keys.html", status=status, **context)
    return visit.render("signing_keys.html", status=status, sections=[], **context)


async def instance_keys(visit: Visit) -> Response:
    if not visit.principal.is_admin:
        return visit.render("error.html", status=403, title="Not allowed",
                            message="Administration is open to administrators only.")
    return await _page(visit, None)


async def namespace_keys(visit: Visit) -> Response:
    return await _page(visit, visit.params["name"][:MAX_NAME])


def _namespace_of(visit: Visit) -> str | None:
    name = visit.params.get("name")
    return name[:MAX_NAME] if name else None


async def add_key(visit: Visit) -> Response:
    namespace = _namespace_of(visit)
    api, here = _scope_paths(namespace)
    form = visit.form
    name = form.get("name", "").strip()
    body: dict[str, Any] = {"name": name}
    if form.get("kind") == "generate":
        body["generate"] = True
    else:
        body["public_key"] = form.get("public_key", "")
    answer = await visit.api("POST", api, body=body)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:  # a malformed key, a name taken: said on the form
        return await _page(visit, namespace, answer.message, answer.status,
                           {"name": name, "public_key": form.get("public_key", "")})
    held = " (held by the server)" if answer.data["server_held"] else ""
    return visit.redirect(here, flash=f"Key {name}{held} is trusted: "
                                      f"{answer.data['fingerprint']}.")


async def revoke_key(visit: Visit) -> Response:
    namespace = _namespace_of(visit)
    api, here = _scope_paths(namespace)
    key = visit.params["key"]
    answer = await visit.api("POST", f"{api}/{key}/revoke", body={})
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect(here, flash=f"Key {key} revoked: the images it signed are being "
                                      "verified again.")


async def delete_key(visit: Visit) -> Response:
    namespace = _namespace_of(visit)
    api, here = _scope_paths(namespace)
    key = visit.params["key"]
    answer = await visit.api("DELETE", f"{api}/{key}")
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect(here, flash=f"Key {key} deleted.")


async def add_identity(visit: Visit) -> Response:
    namespace = _namespace_of(visit)
    api, here = _scope_paths(namespace, "identities")
    form = {"subject": visit.form.get("subject", "").strip(),
            "issuer": visit.form.get("issuer", "").strip()}
    answer = await visit.api("POST", api, body=form)
    if _failed(answer):
        return visit.refused(answer)
    if not answer.ok:  # an empty or malformed subject or issuer: said on the form
        return await _page(visit, namespace, status=answer.status, form=form,
                           identity_error=answer.message)
    return visit.redirect(here, flash=f"Keyless signatures of {form['subject']} "
                                      f"({form['issuer']}) are trusted.")


async def remove_identity(visit: Visit) -> Response:
    namespace = _namespace_of(visit)
    api, here = _scope_paths(namespace, "identities")
    identity = visit.params["identity"]
    if not identity.isdigit() or len(identity) > 18:
        return visit.render("error.html", status=404, title="Not found",
                            message="There is no such identity.")
    answer = await visit.api("DELETE", f"{api}/{identity}")
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect(here, flash="Identity removed: the images it signed are being "
                                      "verified again.")


# -- the manifest page's section --------------------------------------------------------
async def section(visit: Visit, name: str, found: dict[str, Any]) -> dict[str, Any] | None:
    """The Signatures section's data, or None to leave it out (not an image, no signing on
    this edition, or the verification refused)."""
    if found.get("kind") not in ("image", "index"):
        return None
    answer = await visit.get(f"/api/v1/repositories/{name}/manifests/{found['digest']}"
                             "/signatures")
    if not answer.ok:
        return None
    namespace = name.split("/", 1)[0]
    role = None
    ns = await visit.get(f"/api/v1/namespaces/{namespace}")
    if ns.ok and isinstance(ns.data, dict):
        role = ns.data.get("role")
    keys: list[dict[str, str]] = []
    if visit.principal.is_admin or role in PUSHERS:
        scopes = [(namespace, f"/api/v1/namespaces/{namespace}/signing/keys")]
        if visit.principal.is_admin:
            scopes.append(("instance", "/api/v1/signing/keys"))
        for scope, path in scopes:
            listed = await visit.get(path)
            if listed.ok:
                keys += [{"scope": scope, "name": k["name"]} for k in listed.data
                         if k["server_held"] and not k["revoked"]]
    return {"result": answer.data, "server_keys": keys}


async def sign_now(visit: Visit) -> Response:
    form = visit.form
    name = form.get("repository", "")[:MAX_NAME]
    digest = form.get("digest", "")[:MAX_NAME]
    scope, _, key = form.get("key", "").partition("/")
    back = f"/repositories/{name}/-/manifests/{form.get('reference', digest)[:MAX_NAME]}"
    if not name or not digest or not key:
        return visit.render("error.html", status=400, title="Invalid request",
                            message="Name the repository, the image and a key.")
    answer = await visit.api("POST", f"/api/v1/repositories/{name}/signatures",
                             body={"reference": digest, "key": key, "key_scope": scope,
                                   "format": "both"})
    if not answer.ok:
        return visit.refused(answer)
    result = answer.data["verification"]
    state = ("verified by " + ", ".join(result["signers"])) if result["verified"] \
        else "not verified"
    return visit.redirect(back + "#signatures", flash=f"Signed with {key}: {state}.")


def install(site: ConsoleSite) -> None:
    site.env.globals["signing"] = True  # the tag listing's column, the namespace's link
    add_section("Signing keys", "/admin/signing")
    site.get("/admin/signing", instance_keys)
    site.post("/admin/signing/keys", add_key)
    site.post("/admin/signing/keys/{key}/revoke", revoke_key)
    site.post("/admin/signing/keys/{key}/delete", delete_key)
    site.get("/namespaces/{name}/signing", namespace_keys)
    site.post("/namespaces/{name}/signing/keys", add_key)
    site.post("/namespaces/{name}/signing/keys/{key}/revoke", revoke_key)
    site.post("/namespaces/{name}/signing/keys/{key}/delete", delete_key)
    site.post("/admin/signing/identities", add_identity)
    site.post("/admin/signing/identities/{identity:int}/delete", remove_identity)
    site.post("/namespaces/{name}/signing/identities", add_identity)
    site.post("/namespaces/{name}/signing/identities/{identity:int}/delete", remove_identity)
    site.post("/signing/sign", sign_now)
