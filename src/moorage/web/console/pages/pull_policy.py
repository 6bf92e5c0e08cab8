"""Namespace settings: the pull policy (threat blocking). The namespace page shows it to
whoever may read it (owners, administrators) with a form; this module takes the form, calls
`PUT /api/v1/namespaces/{ns}/pull-policy` and shows the API's refusal on the form. Installed
from app.py when threat blocking is.
"""

from __future__ import annotations

from starlette.responses import Response

from moorage.web.console.pages.namespaces import _answer
from moorage.web.console.site import ConsoleSite, Visit

EXEMPT_PREFIX = "exempt:"


async def save(visit: Visit) -> Response:
    name, form = visit.params["name"], visit.form
    severity = form.get("severity", "").strip()
    body = {"severity": severity or None,
            "block_unscanned": form.get("block_unscanned") == "on",
            "block_unsigned": form.get("block_unsigned") == "on",
            "exempt_robots": sorted(k[len(EXEMPT_PREFIX):] for k, v in form.items()
                                    if k.startswith(EXEMPT_PREFIX) and v == "on")[:100]}
    answer = await visit.api("PUT", f"/api/v1/namespaces/{name}/pull-policy", body=body)
    return await _answer(visit, answer, "pull-policy", f"Pull policy of {name} saved.")


def install(site: ConsoleSite) -> None:
    site.post("/namespaces/{name}/pull-policy", save)
