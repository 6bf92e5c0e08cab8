"""Rules: tag immutability rules and retention (tag cleanup) rules of the namespaces the user
can see; adding, editing in place, disabling, enabling and deleting them; and a retention
rule's preview: a dry run whose result lists, per repository, each tag that would go and why,
and why each other tag stays, live while the job runs, with an "Apply" button that runs the
rule for real.

Everything goes through the management API as the signed-in user: the API lists only the
rules of namespaces the user may see, and refuses a change to a namespace whose rules the
user may not manage (a forged form post included). The page shows the controls only where
the user's role allows them (the same role table as the API's).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from moorage.access.roles import ROLE_ACTIONS
from moorage.web.console.apicall import Answer
from moorage.web.console.site import ConsoleSite, Visit

KINDS = ("immutability", "retention")
FINISHED = ("succeeded", "failed")
# Refusals shown on the form that asked (what the user typed was wrong); the others
# (not allowed, not found) are pages of their own.
_FORM_REFUSALS = (400, 409, 422)


# -- what the pages compute -------------------------------------------------------------------
def split_scope(scope: str) -> tuple[str, str]:
    """"team/apps/*" → ("team", "apps/*"); the API writes a namespace-wide rule "team/**"."""
    namespace, _, pattern = scope.partition("/")
    return namespace, pattern or "**"


def scope_of(namespace: str, repositories: str) -> str:
    """The API's scope from the form's two fields: the namespace alone covers all of it."""
    repositories = repositories.strip().strip("/")
    return namespace if repositories in ("", "**") else f"{namespace}/{repositories}"


def manageable(visit: Visit, namespaces: list[dict[str, Any]]) -> list[str]:
    """The namespaces whose rules the user may manage: all for an administrator, else those
    where their role carries `manage_rules` (the API checks again on every change)."""
    return sorted(ns["name"] for ns in namespaces
                  if visit.principal.is_admin
                  or "manage_rules" in ROLE_ACTIONS.get(ns.get("role") or "", frozenset()))


def retention_summary(rule: dict[str, Any]) -> list[str]:
    """A retention rule's settings as short phrases ("keep the newest 3", "older than 30d")."""
    from moorage.units import human_duration

    parts = []
    if rule.get("keep_last") is not None:
        parts.append(f"keep the newest {rule['keep_last']}")
    if rule.get("older_than_seconds"):
        parts.append(f"delete only what is older than {human_duration(rule['older_than_seconds'])}")
    if rule.get("always_keep"):
        parts.append(f"always keep {rule['always_keep']}")
    if rule.get("untagged"):
        parts.append("untagged manifests go too")
    return parts or ["delete every matching tag"]


def retention_decisions(result: dict[str, Any]) -> dict[str, Any]:
    """A retention job's result as rows: per repository, each tag the rule considered, going
    (and why) or staying (and why); the count of manifests going with them; what a real run
    was refused (an immutability rule added since it planned)."""
    dry_run = bool(result.get("dry_run"))
    repositories = []
    for plan in result.get("repositories") or []:
        reasons = plan.get("delete_reasons") or {}
        rows = [{"tag": tag, "going": True, "why": reasons.get(tag, "")}
                for tag in plan.get("delete_tags") or []]
        rows += [{"tag": tag, "going": False, "why": why}
                 for tag, why in sorted((plan.get("kept") or {}).items())]
        rows += [{"tag": ref, "going": False, "why": why}
                 for ref, why in sorted((plan.get("refused") or {}).items())]
        repositories.append({"repository": plan.get("repository", ""), "rows": rows,
                             "manifests": len(plan.get("delete_manifests") or [])})
    return {"dry_run": dry_run, "repositories": repositories,
            "tags": result.get("deleted_tags", 0), "manifests": result.get("deleted_manifests", 0),
            "skipped": result.get("skipped")}


def _int_or_text(text: str) -> int | str | None:
    """A number field: empty is none; a whole number is sent as one; anything else is sent
    as typed, for the API to refuse in its own words."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _text_or_none(text: str) -> str | None:
    text = text.strip()
    return text or None


def immutability_body(form: dict[str, str], creating: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"tag_pattern": form.get("tag_pattern", "").strip(),
                            "exclude_pattern": _text_or_none(form.get("exclude_pattern", ""))}
    if creating:
        body["scope"] = scope_of(form.get("namespace", ""), form.get("repositories", ""))
    return body


def retention_body(form: dict[str, str], creating: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tag_pattern": form.get("tag_pattern", "").strip() or "*",
        "keep_last": _int_or_text(form.get("keep_last", "")),
        "older_than": _int_or_text(form.get("older_than", "")),
        "untagged": form.get("untagged") == "on",
        "always_keep": _text_or_none(form.get("always_keep", "")),
        "schedule": _text_or_none(form.get("schedule", "")),
    }
    if creating:
        body["scope"] = scope_of(form.get("namespace", ""), form.get("repositories", ""))
    return body


def _form_values(rule: dict[str, Any], kind: str) -> dict[str, Any]:
    """A rule as its edit form's fields."""
    from moorage.units import human_duration

    namespace, repositories = split_scope(rule["scope"])
    values: dict[str, Any] = {"namespace": namespace, "repositories": repositories,
                              "tag_pattern": rule["tag_pattern"]}
    if kind == "immutability":
        values["exclude_pattern"] = rule.get("exclude_pattern") or ""
    else:
        values.update(
            keep_last="" if rule.get("keep_last") is None else str(rule["keep_last"]),
            older_than=human_duration(rule["older_than_seconds"])
            if rule.get("older_than_seconds") else "",
            untagged=bool(rule.get("untagged")), always_keep=rule.get("always_keep") or "",
            schedule=rule.get("schedule") or "")
    return values


# -- reading ----------------------------------------------------------------------------------
async def _namespaces(visit: Visit) -> list[dict[str, Any]]:
    answer = await visit.get("/api/v1/namespaces")
    return answer.data if answer.ok else []


async def _find(visit: Visit, kind: str, rule_id: str) -> tuple[dict[str, Any] | None, Answer]:
    """A rule the user can see, by id (the API lists those; it has no single-rule read)."""
    answer = await visit.get(f"/api/v1/{kind}")
    if not answer.ok or not rule_id.isdigit():
        return None, answer
    rule = next((r for r in answer.data if r["id"] == int(rule_id)), None)
    return rule, answer


def _missing(visit: Visit, kind: str, rule_id: str) -> Response:
    return visit.render("error.html", status=404, title="Not found",
                        message=f"There is no {kind} rule {rule_id[:20]} that you can see.")


def _kind(visit: Visit) -> str | None:
    kind = visit.params.get("kind", "")
    return kind if kind in KINDS else None


async def _may_manage(visit: Visit, rule: dict[str, Any]) -> bool:
    namespace, _ = split_scope(rule["scope"])
    return namespace in manageable(visit, await _namespaces(visit))


def _not_yours(visit: Visit, rule: dict[str, Any]) -> Response:
    namespace, _ = split_scope(rule["scope"])
    return visit.render("error.html", status=403, title="Not allowed",
                        message=f"Managing the rules of namespace {namespace} needs the "
                                f"maintainer role there.")


# -- pages ------------------------------------------------------------------------------------
async def rules_page(visit: Visit, status: int = 200, errors: dict[str, str] | None = None,
                     values: dict[str, dict[str, Any]] | None = None) -> Response:
    chosen = visit.query.get("namespace", "").strip()
    namespaces = await _namespaces(visit)
    immutability = await visit.get("/api/v1/immutability", namespace=chosen)
    retention = await visit.get("/api/v1/retention", namespace=chosen)
    mine = set(manageable(visit, namespaces))

    def rows(answer: Answer) -> list[dict[str, Any]]:
        if not answer.ok:
            return []
        found = []
        for rule in answer.data:
            namespace, repositories = split_scope(rule["scope"])
            found.append({**rule, "namespace": namespace, "repositories": repositories,
                          "manage": namespace in mine,
                          "summary": retention_summary(rule) if "keep_last" in rule else []})
        return found

    defaults = {"namespace": chosen if chosen in mine else "", "repositories": "",
                "tag_pattern": "", "exclude_pattern": "", "keep_last": "", "older_than": "",
                "untagged": False, "always_keep": "", "schedule": ""}
    given = values or {}
    return visit.render(
        "rules.html", status=status, title="Rules", chosen=chosen,
        namespaces=sorted(ns["name"] for ns in namespaces), manageable=sorted(mine),
        immutability=rows(immutability), retention=rows(retention),
        immutability_error="" if immutability.ok else immutability.message,
        retention_error="" if retention.ok else retention.message,
        errors=errors or {},
        imm_values={**defaults, **given.get("immutability", {})},
        ret_values={**defaults, "tag_pattern": "*", **given.get("retention", {})})


async def add_rule(visit: Visit) -> Response:
    kind = _kind(visit)
    if kind is None:
        return _missing(visit, "such", "")
    creating = True
    body = (immutability_body if kind == "immutability" else retention_body)(visit.form, creating)
    answer = await visit.api("POST", f"/api/v1/{kind}", body=body)
    if answer.status in _FORM_REFUSALS:
        return await rules_page(visit, status=answer.status, errors={kind: answer.message},
                                values={kind: {**visit.form, "untagged":
                                               visit.form.get("untagged") == "on"}})
    if not answer.ok:
        return visit.refused(answer)
    rule = answer.data
    return visit.redirect("/rules", flash=f"Added {kind} rule {rule['id']} for {rule['scope']}.")


async def _manageable(visit: Visit) -> tuple[str, dict[str, Any]] | Response:
    """The rule a page is about, with its kind, if the caller may manage it; otherwise the
    answer to give (not found, refused, not theirs)."""
    kind = _kind(visit)
    rule_id = visit.params["rule_id"]
    if kind is None:
        return _missing(visit, "such", rule_id)
    rule, answer = await _find(visit, kind, rule_id)
    if not answer.ok:
        return visit.refused(answer)
    if rule is None:
        return _missing(visit, kind, rule_id)
    if not await _may_manage(visit, rule):
        return _not_yours(visit, rule)
    return kind, rule


async def edit_page(visit: Visit, status: int = 200, error: str = "",
                    values: dict[str, Any] | None = None) -> Response:
    found = await _manageable(visit)
    if isinstance(found, Response):
        return found
    kind, rule = found
    return visit.render("rules_edit.html", status=status, title=f"Edit {kind} rule {rule['id']}",
                        kind=kind, rule=rule, error=error,
                        values={**_form_values(rule, kind), **(values or {})})


async def save_rule(visit: Visit) -> Response:
    """PATCH: the rule changes in place (same id); its scope stays."""
    kind = _kind(visit)
    rule_id = visit.params["rule_id"]
    if kind is None or not rule_id.isdigit():
        return _missing(visit, kind or "such", rule_id)
    body = (immutability_body if kind == "immutability" else retention_body)(visit.form, False)
    answer = await visit.api("PATCH", f"/api/v1/{kind}/{rule_id}", body=body)
    if answer.status in _FORM_REFUSALS:
        return await edit_page(visit, status=answer.status, error=answer.message,
                               values={**visit.form,
                                       "untagged": visit.form.get("untagged") == "on"})
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect("/rules", flash=f"Saved {kind} rule {rule_id}.")


async def set_state(visit: Visit) -> Response:
    """Disable or enable a rule in place."""
    kind = _kind(visit)
    rule_id = visit.params["rule_id"]
    if kind is None or not rule_id.isdigit():
        return _missing(visit, kind or "such", rule_id)
    enabled = visit.form.get("enabled") == "true"
    answer = await visit.api("PATCH", f"/api/v1/{kind}/{rule_id}", body={"enabled": enabled})
    if not answer.ok:
        return visit.refused(answer)
    back = visit.form.get("namespace", "").strip()
    target = "/rules" + ("?" + urlencode({"namespace": back}) if back else "")
    return visit.redirect(target, flash=f"{kind.capitalize()} rule {rule_id} is "
                                        f"{'enabled' if enabled else 'disabled'}.")


async def delete_page(visit: Visit) -> Response:
    found = await _manageable(visit)
    if isinstance(found, Response):
        return found
    kind, rule = found
    return visit.render("rules_delete.html", title=f"Delete {kind} rule {rule['id']}",
                        kind=kind, rule=rule)


async def delete_rule(visit: Visit) -> Response:
    kind = _kind(visit)
    rule_id = visit.params["rule_id"]
    if kind is None or not rule_id.isdigit():
        return _missing(visit, kind or "such", rule_id)
    answer = await visit.api("DELETE", f"/api/v1/{kind}/{rule_id}")
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect("/rules", flash=f"Deleted {kind} rule {rule_id}.")


async def _run(visit: Visit, dry_run: bool) -> Response:
    rule_id = visit.params["rule_id"]
    if not rule_id.isdigit():
        return _missing(visit, "retention", rule_id)
    answer = await visit.api("POST", f"/api/v1/retention/{rule_id}/run",
                             body={"dry_run": dry_run})
    if not answer.ok:
        return visit.refused(answer)
    return visit.redirect(f"/rules/retention/{rule_id}/runs/{answer.data['id']}")


async def preview(visit: Visit) -> Response:
    """A dry run: what the rule would delete, and why each other tag stays."""
    return await _run(visit, dry_run=True)


async def apply(visit: Visit) -> Response:
    """The real run, from the preview's page."""
    return await _run(visit, dry_run=False)


async def run_page(visit: Visit) -> Response:
    """A retention run (dry or real) of one rule: the page, or (for htmx) its live part."""
    rule_id, job_id = visit.params["rule_id"], visit.params["job_id"]
    fragment = visit.request.headers.get("hx-request") == "true"
    rule, rules = await _find(visit, "retention", rule_id)
    job = await visit.get(f"/api/v1/jobs/{job_id}") if job_id.isdigit() else None
    problem: Answer | None = None
    if not rules.ok:
        problem = rules
    elif job is not None and not job.ok:
        problem = job
    if problem is not None:
        if fragment:
            return visit.render("rules_run_live.html", status=problem.status,
                                error=problem.message, job=None, finished=True)
        return visit.refused(problem)
    found = job.data if job is not None else None
    if rule is None or found is None or found.get("type") != "retention" \
            or found.get("payload", {}).get("rule_id") != rule["id"]:
        return _missing(visit, "retention run of a", rule_id)
    namespace, repositories = split_scope(rule["scope"])
    result = found.get("result") if isinstance(found.get("result"), dict) else None
    context = {"rule": {**rule, "namespace": namespace, "repositories": repositories,
                        "summary": retention_summary(rule)},
               "job": found, "finished": found["status"] in FINISHED,
               "dry_run": bool(found.get("payload", {}).get("dry_run")),
               "plan": retention_decisions(result) if result else None,
               "manage": await _may_manage(visit, rule)}
    if fragment:
        return visit.render("rules_run_live.html", **context)
    title = "Retention preview" if context["dry_run"] else "Retention run"
    return visit.render("rules_run.html", title=f"{title}: rule {rule['id']}", **context)


def install(site: ConsoleSite) -> None:
    site.add_nav("Rules", "/rules", 40)
    site.get("/rules", rules_page)
    site.post("/rules/{kind}", add_rule)
    site.get("/rules/{kind}/{rule_id}", edit_page)
    site.post("/rules/{kind}/{rule_id}", save_rule)
    site.post("/rules/{kind}/{rule_id}/state", set_state)
    site.get("/rules/{kind}/{rule_id}/delete", delete_page)
    site.post("/rules/{kind}/{rule_id}/delete", delete_rule)
    site.post("/rules/retention/{rule_id}/preview", preview)
    site.post("/rules/retention/{rule_id}/apply", apply)
    site.get("/rules/retention/{rule_id}/runs/{job_id}", run_page)
