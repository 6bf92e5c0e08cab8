"""Which refused /v2 requests the audit log records, and what it records of them (pure).

Every refused write or delete is recorded: a guest's manifest PUT, a robot outside its
namespace, a token without the action, an immutable tag, a namespace that may not be
created. A pull is recorded when it was refused to someone who presented credentials (a
wrong password, an expired token, a role too small), not when an anonymous client was
refused: anonymous refusals of reads are what scanners of the internet cause, one row each.

What is never a refusal: a 401 challenge to a request that carried no credentials. It is the
token protocol itself (every `docker login`, every anonymous pull and most pushes begin with
one), and recording it would flood the log with one row per client session. A refused
storage quota is already recorded by the core (action `quota`), so it is not recorded twice;
a rate limit (429) is not an access decision, and recording it would let a flood of requests
become a flood of audit rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.oci.digest import is_digest
from moorage.oci.errors import RegistryError
from moorage.registry.events import Event

# (route kind, method) -> the action a refusal is recorded as
ACTIONS: dict[tuple[str, str], str] = {
    ("manifest", "GET"): "manifest.pull", ("manifest", "HEAD"): "manifest.pull",
    ("manifest", "PUT"): "manifest.push", ("manifest", "DELETE"): "manifest.delete",
    ("blob", "GET"): "blob.pull", ("blob", "HEAD"): "blob.pull",
    ("blob", "DELETE"): "blob.delete",
    ("uploads", "POST"): "blob.upload", ("upload", "GET"): "blob.upload",
    ("upload", "PATCH"): "blob.upload", ("upload", "PUT"): "blob.upload",
    ("upload", "DELETE"): "blob.upload",
    ("tags", "GET"): "tags.list", ("referrers", "GET"): "referrers.list",
    ("catalog", "GET"): "catalog.list",
}
WRITES = frozenset({"manifest.push", "manifest.delete", "blob.delete", "blob.upload"})
# Refusals their deciders record themselves: a storage quota (the core's `quota` event) and
# a pull policy (threat blocking's `pull.blocked`, at most once a minute per image and actor).
_RECORDED_ELSEWHERE = frozenset({"quota", "pull_policy"})
# What a policy's refusal names in its detail ("reason"), and what the entry calls the rule.
_POLICIES = {"immutable": "immutability"}


def refusal(kind: str, method: str, name: str | None, params: Mapping[str, str | None],
            error: RegistryError, actor: str, address: str,
            credentials: bool) -> Event | None:
    """The event recording a refused request, or None when it is not a refusal to record
    (see the module docstring). `credentials`: the request carried an Authorization header."""
    if error.status not in (401, 403):
        return None
    if error.status == 401 and not credentials:
        return None
    action = ACTIONS.get((kind, method))
    if action is None or (action not in WRITES and not credentials):
        return None
    because = error.detail if isinstance(error.detail, Mapping) else {}
    if because.get("reason") in _RECORDED_ELSEWHERE:
        return None
    detail: dict[str, Any] = {"method": method, "status": error.status, "code": error.code,
                              "reason": error.message}
    if "rule" in because:
        policy = str(because.get("reason", "rule"))
        detail["rule"] = f"{_POLICIES.get(policy, policy)}:{because['rule']}"
    elif because.get("reason"):
        detail["refused_by"] = because["reason"]
    if params.get("upload_id"):
        detail["upload"] = params["upload_id"]
    reference = params.get("reference") or params.get("digest")
    digest = reference if reference and is_digest(reference) else None
    tag = reference if reference and digest is None else None
    return Event(action, repository=name, digest=digest, tag=tag, result="failure",
                 target="" if name else "catalog", actor=actor or "anonymous",
                 address=address, detail=detail)
