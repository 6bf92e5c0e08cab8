"""Numbers in the management API: each has a range, a bool is not a number, and a number out
of range is a 422 with nothing stored (no 500, no half-made row).

Run on both backends: PostgreSQL enforces the widths of its integer columns, SQLite refuses
integers beyond 64 bits, and each fails differently when the API lets such a value through.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from moorage.access.authentication import make_token
from moorage.db.access import AccessStore
from moorage.db.metadata import open_engine, sqlite_url
from tests.support.secured import Secured
from tests.support.server import MoorageServer
from tests.web.helpers import api, error, make_namespace, make_user, unique


@pytest.fixture
def server(secured: Secured) -> MoorageServer:
    """A secured instance on each backend (tests.support.secured)."""
    return secured.server


BEYOND_64_BITS = 2**63
INT64_MAX = 2**63 - 1
BEYOND_32_BITS = 2**31  # ids live in INTEGER columns: 32 bits on PostgreSQL


def _refused(resp: Any, status: int = 422) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    return error(resp)[1]


def _raw(server: MoorageServer, method: str, path: str, body: str, **kwargs: Any) -> Any:
    """A body as written, for what Python's json module would never produce (1e999)."""
    return api(server, method, path, content=body,
               headers={"Content-Type": "application/json"}, **kwargs)


def _store(server: MoorageServer) -> AccessStore:
    url = server.env.get("MOORAGE_DATABASE_URL") or sqlite_url(server.data_dir)
    return AccessStore(open_engine(url))


@pytest.mark.parametrize("days", ["1e10", "1e999", "-1", "0", "true", "\"30\"", "36501"])
def test_token_lifetimes(server: MoorageServer, days: str) -> None:
    name = unique("tok")
    _refused(_raw(server, "POST", "/tokens", f'{{"name": "{name}", "expires_in_days": {days}}}'))
    listed = api(server, "GET", "/tokens")
    assert listed.status_code == 200
    assert name not in [t["name"] for t in listed.json()], "nothing half-made is stored"


def test_the_longest_token_lifetime_is_taken(server: MoorageServer) -> None:
    made = api(server, "POST", "/tokens", json={"name": unique("long"),
                                                  "expires_in_days": 36500})
    assert made.status_code == 201, made.text
    assert made.json()["expires_at"].startswith(str(time.gmtime().tm_year + 99)) or \
        made.json()["expires_at"].startswith(str(time.gmtime().tm_year + 100))


@pytest.mark.parametrize("days", ["1e10", "1e999", "false", "36501"])
def test_robot_lifetimes(server: MoorageServer, days: str) -> None:
    namespace = make_namespace(server)
    _refused(_raw(server, "POST", f"/namespaces/{namespace}/robots",
                  f'{{"name": "ci", "expires_in_days": {days}}}'))
    listed = api(server, "GET", f"/namespaces/{namespace}/robots")
    assert listed.status_code == 200 and listed.json() == [], "nothing half-made is stored"


def test_rows_written_by_older_code_still_list(server: MoorageServer) -> None:
    """A token or robot stored with an expiry beyond any date (as the API once allowed) is
    shown as expiring at the end of time, and its listing still answers."""
    username, password = make_user(server, "old-rows")
    store = _store(server)
    account = store.user(username)
    assert account is not None
    token_id, _, secret_hash = make_token("personal")
    store.create_token(token_id, account.id, "personal", "ancient", secret_hash, 8.64e14)
    namespace = make_namespace(server)
    ns_id = store.namespace(namespace).id  # type: ignore[union-attr]
    store.create_user(f"robot${namespace}+old", "x", kind="robot", namespace_id=ns_id,
                      expires_at=1e300)

    tokens = api(server, "GET", "/tokens", auth=(username, password))
    assert tokens.status_code == 200, tokens.text
    [token] = tokens.json()
    assert token["expires_at"].startswith("9999-12-31") and token["active"] is True
    robots = api(server, "GET", f"/namespaces/{namespace}/robots")
    assert robots.status_code == 200, robots.text
    assert robots.json()[0]["expires_at"].startswith("9999-12-31")


@pytest.mark.parametrize("quota", [BEYOND_64_BITS, -1, "true", "1.5", "\"10\""])
def test_storage_quota(server: MoorageServer, quota: Any) -> None:
    namespace = make_namespace(server)
    _refused(_raw(server, "PATCH", f"/namespaces/{namespace}", f'{{"storage_quota": {quota}}}'))
    assert api(server, "GET", f"/namespaces/{namespace}").json()["storage_quota"] is None


def test_the_largest_storage_quota_is_taken(server: MoorageServer) -> None:
    namespace = make_namespace(server)
    taken = api(server, "PATCH", f"/namespaces/{namespace}", json={"storage_quota": INT64_MAX})
    assert taken.status_code == 200 and taken.json()["storage_quota"] == INT64_MAX


@pytest.mark.parametrize("fields", [
    {"keep_last": BEYOND_64_BITS}, {"keep_last": 2**31}, {"keep_last": True},
    {"keep_last": -1},
    {"older_than": "9" * 400 + "d"}, {"older_than": "99999999999999999999d"},
    {"older_than": BEYOND_64_BITS}, {"older_than": -5}, {"older_than": False},
    {"older_than": "1e400"}, {"schedule": "0 0 31 2 *"}, {"untagged": 1},
], ids=lambda f: json.dumps(f)[:40])
def test_retention_numbers(server: MoorageServer, fields: dict[str, Any]) -> None:
    namespace = make_namespace(server)
    body = json.dumps({"scope": namespace, **fields})
    refused = _raw(server, "POST", "/retention", body)
    assert refused.status_code in (400, 422), (refused.status_code, refused.text[:300])
    error(refused)
    listed = api(server, "GET", "/retention", params={"namespace": namespace})
    assert listed.status_code == 200 and listed.json() == [], "nothing half-made is stored"


def test_retention_limits_are_taken(server: MoorageServer) -> None:
    namespace = make_namespace(server)
    made = api(server, "POST", "/retention", json={"scope": namespace, "keep_last": 2**31 - 1,
                                                    "older_than": "24855d"})
    assert made.status_code == 201, made.text
    assert made.json()["keep_last"] == 2**31 - 1
    assert made.json()["older_than_seconds"] == 24855 * 86400


@pytest.mark.parametrize("path", [
    f"/jobs/{BEYOND_64_BITS}", f"/jobs?before_id={BEYOND_64_BITS}", "/jobs/0",
    f"/jobs/{BEYOND_32_BITS}", f"/webhooks/{BEYOND_32_BITS}",
    f"/audit/export?limit={BEYOND_32_BITS}",
    f"/webhooks/{BEYOND_64_BITS}", f"/webhooks/{BEYOND_64_BITS}/deliveries",
    f"/audit?before_id={BEYOND_64_BITS}", f"/audit/export?after_id={BEYOND_64_BITS}",
    f"/audit/export?limit={BEYOND_64_BITS}", "/audit?since=1e400", "/audit?until=nan",
    "/audit?since=99999999999999999999d",
])
def test_ids_and_cursors_in_paths_and_queries(server: MoorageServer, path: str) -> None:
    resp = api(server, "GET", path)
    assert resp.status_code in (400, 422), (resp.status_code, resp.text[:300])
    error(resp)


@pytest.mark.parametrize("method,path", [
    ("DELETE", f"/network-rules/{BEYOND_64_BITS}"),
    ("DELETE", f"/sso/group-roles/{BEYOND_64_BITS}"),
    ("DELETE", f"/immutability/{BEYOND_64_BITS}"),
    ("PATCH", f"/immutability/{BEYOND_64_BITS}"),
    ("DELETE", f"/retention/{BEYOND_64_BITS}"),
    ("PATCH", f"/retention/{BEYOND_64_BITS}"),
    ("POST", f"/retention/{BEYOND_64_BITS}/run"),
    ("PATCH", f"/webhooks/{BEYOND_64_BITS}"),
    ("DELETE", f"/webhooks/{BEYOND_64_BITS}"),
    ("POST", f"/webhooks/{BEYOND_64_BITS}/test"),
])
def test_ids_of_changes(server: MoorageServer, method: str, path: str) -> None:
    resp = api(server, method, path, json={} if method in ("POST", "PATCH") else None)
    _refused(resp)


def test_the_largest_ids_are_not_found(server: MoorageServer) -> None:
    for path in (f"/jobs/{BEYOND_32_BITS - 1}", f"/webhooks/{BEYOND_32_BITS - 1}"):
        resp = api(server, "GET", path)
        assert resp.status_code == 404, (path, resp.text)
    for cursor in ({"before_id": BEYOND_32_BITS - 1}, {"before_id": BEYOND_32_BITS},
                   {"before_id": INT64_MAX}):  # audit ids are 64-bit: the log outgrows 2^31
        page = api(server, "GET", "/audit", params=cursor)
        assert page.status_code == 200, page.text
    export = api(server, "GET", "/audit/export", params={"after_id": INT64_MAX})
    assert export.status_code == 200 and export.text == "", export.text


@pytest.mark.parametrize("grace", ["false", "true", str(BEYOND_64_BITS), "-1", "\"1e400s\"",
                                   "\"99999999999999999999d\"", "1.5"])
def test_gc_grace(server: MoorageServer, grace: str) -> None:
    """`{"grace": false}` once queued a collection with no grace period at all."""
    before = api(server, "GET", "/jobs", params={"type": "gc"}).json()
    _refused(_raw(server, "POST", "/gc", f'{{"dry_run": true, "grace": {grace}}}'))
    assert api(server, "GET", "/jobs", params={"type": "gc"}).json() == before


def test_gc_flags_are_booleans(server: MoorageServer) -> None:
    _refused(_raw(server, "POST", "/gc", '{"dry_run": 0}'))


def test_numbers_json_cannot_carry_never_stall_the_audit_log(server: MoorageServer) -> None:
    """Python's JSON reader takes 1e999 and NaN; the audit log, which records the values of
    safe fields, once retried such a batch for ever, and recorded nothing after it. Now it
    records them in its safe form, as strings."""
    from tests.audit.helpers import wait_for

    for body in ('{"name": "x", "expires_in_days": 1e999}', '{"name": "x", "expires_in_days": NaN}'):
        _refused(_raw(server, "POST", "/tokens", body))
    namespace = make_namespace(server)
    found = wait_for(server, lambda es: any(e["target"] == f"namespaces/{namespace}" for e in es),
                     action="namespace.create")
    assert any(e["target"] == f"namespaces/{namespace}" for e in found)
    refused = wait_for(server, lambda es: len(es) >= 2, action="token.create",
                       result="failure")
    recorded = {e["detail"].get("values", {}).get("expires_in_days") for e in refused[:2]}
    assert recorded <= {"Infinity", "NaN", None}, recorded  # None: the body refused unread


@pytest.mark.parametrize("path,fields", [
    ("/immutability", {"tag_pattern": "v" * 256}),
    ("/immutability", {"tag_pattern": "v*", "exclude_pattern": "x" * 256}),
    ("/immutability", {"tag_pattern": "v*", "scope_suffix": "/" + "a" * 256}),
    ("/retention", {"tag_pattern": "t" * 256}),
    ("/retention", {"always_keep": "k" * 256}),
    ("/retention", {"schedule": "0 4 * * *" + " " * 130}),
    ("/retention", {"scope_suffix": "/" + "a" * 256}),
], ids=lambda v: v if isinstance(v, str) else "-".join(v))
def test_rule_texts_fit_their_columns(server: MoorageServer, path: str,
                                      fields: dict[str, Any]) -> None:
    """Text the rules keep in VARCHAR columns is bounded by the API (PostgreSQL refuses
    longer text with an error; SQLite stores it), and nothing is left behind."""
    namespace = make_namespace(server)
    fields = dict(fields)
    scope = namespace + fields.pop("scope_suffix", "")
    refused = api(server, "POST", path, json={"scope": scope, **fields})
    assert refused.status_code in (400, 422), (refused.status_code, refused.text[:300])
    error(refused)
    listed = api(server, "GET", path, params={"namespace": namespace})
    assert listed.status_code == 200 and listed.json() == []


def test_the_document_states_the_ranges(server: MoorageServer) -> None:
    """The OpenAPI document gives each range as it is enforced. (FastAPI writes bounds as
    floats: a bound it would round, such as 2**63 - 1, would be documented wrong.)"""
    import httpx

    doc = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=60).json()
    schemas = doc["components"]["schemas"]

    def branch(prop: dict[str, Any], kind: str) -> dict[str, Any]:
        return next(s for s in prop.get("anyOf", [prop]) if s.get("type") == kind)

    days = branch(schemas["TokenCreate"]["properties"]["expires_in_days"], "number")
    assert (days["exclusiveMinimum"], days["maximum"]) == (0, 36500)
    quota = branch(schemas["NamespaceUpdate"]["properties"]["storage_quota"], "integer")
    assert (quota["minimum"], quota["exclusiveMaximum"]) == (0, 2**63)
    keep = branch(schemas["RetentionCreate"]["properties"]["keep_last"], "integer")
    assert keep["maximum"] == 2**31 - 1
    [job_id] = doc["paths"]["/api/v1/jobs/{job_id}"]["get"]["parameters"]
    assert (job_id["schema"]["minimum"], job_id["schema"]["maximum"]) == (1, 2**31 - 1)

    def bounds(node: Any) -> list[float]:
        if isinstance(node, dict):
            found = [v for k, v in node.items() if k in ("maximum", "exclusiveMaximum",
                                                         "minimum", "exclusiveMinimum")]
            return found + [b for v in node.values() for b in bounds(v)]
        if isinstance(node, list):
            return [b for v in node for b in bounds(v)]
        return []

    assert all(abs(b) < 2**53 or abs(b) == 2**63 for b in bounds(doc)), "every bound exact"
