"""Hostile values must never stop the audit log (issue 12, item 2).

One anonymous request with `1e999` in its body once made the writer fail to serialise
`Infinity` and retry that batch forever: nothing was recorded afterwards while `verify` still
reported an intact chain. Each test here sends such a request to a real server, then does an
ordinary audited action and checks that it is recorded and that the chain verifies, on SQLite
and on PostgreSQL (which refuses a NUL character that SQLite stores).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.audit.helpers import Entries, entries, page, verify, wait_for
from tests.support.server import MoorageServer
from tests.web.helpers import ADMIN, api, error, make_namespace

REPLACEMENT = "\ufffd"


def newest_id(server: MoorageServer) -> int:
    resp = page(server, limit=1)
    assert resp.status_code == 200, resp.text
    found = resp.json()["entries"]
    return found[0]["id"] if found else 0


def since(server: MoorageServer, start: int, **filters: Any) -> Entries:
    """Entries written after entry `start`, newest first."""
    return [e for e in entries(server, **filters) if e["id"] > start]


def raw(server: MoorageServer, method: str, path: str, body: str,
        auth: tuple[str, str] | None = ADMIN) -> httpx.Response:
    """A JSON body as written: httpx's json= cannot send 1e999 or a lone surrogate."""
    return api(server, method, path, auth=auth, content=body.encode("utf-8", "surrogatepass"),
               headers={"content-type": "application/json"})


def assert_the_log_goes_on(server: MoorageServer, start: int) -> Entries:
    """An ordinary change after the hostile requests is recorded, and the chain verifies;
    returns everything written since `start`."""
    name = make_namespace(server, prefix="after-hostile")
    found = wait_for(server, lambda es: any(e["target"] == f"namespaces/{name}" for e in es),
                     action="namespace.create", actor="admin")
    assert any(e["target"] == f"namespaces/{name}" and e["id"] > start for e in found), \
        "an ordinary change after a hostile request was never recorded"
    result = verify(server)
    assert result["ok"] and result["checked"] == result["last_id"], result
    return since(server, start)


@pytest.mark.parametrize("literal, recorded", [
    ("1e999", "Infinity"), ("-1e999", "-Infinity"), ("NaN", "NaN"),
    ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
])
def test_a_number_json_cannot_write_is_recorded_as_a_string(
        audited: MoorageServer, literal: str, recorded: str) -> None:
    start = newest_id(audited)
    # The issue's request, anonymous, answered 401.
    resp = raw(audited, "POST", "/tokens", f'{{"name":"x","expires_in_days":{literal}}}',
               auth=None)
    assert resp.status_code == 401, resp.text
    # The same number from an administrator, whose body surely reaches the recorder.
    resp = raw(audited, "POST", "/namespaces", f'{{"name":{literal},"visibility":{literal}}}')
    assert 400 <= resp.status_code < 500, resp.text

    written = assert_the_log_goes_on(audited, start)
    [anonymous] = [e for e in written if e["action"] == "token.create"]
    assert (anonymous["actor"], anonymous["result"], anonymous["detail"]["status"]) == \
        ("anonymous", "failure", 401), anonymous
    if "values" in anonymous["detail"]:  # unless the body was refused unread
        assert anonymous["detail"]["values"] == {"name": "x", "expires_in_days": recorded}
    [refused] = [e for e in written if e["action"] == "namespace.create"
                 and e["result"] == "failure"]
    assert refused["actor"] == "admin"
    assert refused["detail"]["values"] == {"name": recorded, "visibility": recorded}, refused


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "\\udfff"])
def test_text_no_database_can_store_is_recorded_with_a_replacement_character(
        audited: MoorageServer, escape: str) -> None:
    """NUL (PostgreSQL refuses it in text) and lone UTF-16 surrogates (not UTF-8 at all), in
    a recorded value, in the target a value names, and in a field's name."""
    start = newest_id(audited)
    resp = raw(audited, "POST", "/namespaces", f'{{"name":"bad{escape}name","x{escape}":1}}')
    assert 400 <= resp.status_code < 500, resp.text
    anonymous = raw(audited, "POST", "/namespaces", f'{{"name":"anon{escape}"}}', auth=None)
    assert anonymous.status_code == 401

    written = assert_the_log_goes_on(audited, start)
    [mine] = [e for e in written if e["actor"] == "admin" and e["result"] == "failure"]
    assert mine["target"] == f"namespaces/bad{REPLACEMENT}name", mine
    assert mine["detail"]["values"] == {"name": f"bad{REPLACEMENT}name"}
    assert mine["detail"]["fields"] == ["name", f"x{REPLACEMENT}"]
    [theirs] = [e for e in written if e["actor"] == "anonymous"]
    assert theirs["detail"]["status"] == 401


def test_a_nul_in_the_path(audited: MoorageServer) -> None:
    """What a client writes in the URL reaches the target column."""
    start = newest_id(audited)
    resp = api(audited, "DELETE", "/namespaces/gone%00away", auth=None)
    assert 400 <= resp.status_code < 500, resp.text  # refused, whichever check comes first

    written = assert_the_log_goes_on(audited, start)
    [deleted] = [e for e in written if e["action"] == "namespace.delete"]
    assert deleted["target"] == f"namespaces/gone{REPLACEMENT}away", deleted
    assert deleted["detail"]["path"] == f"/api/v1/namespaces/gone{REPLACEMENT}away"


def test_a_nul_in_a_claimed_username(audited: MoorageServer) -> None:
    """A failed login with a claimed username no account has (Basic credentials, the OAuth2
    form) is refused and recorded, under a pseudonym of the name: a NUL in it stops neither
    the lookup (PostgreSQL cannot hold one) nor the log."""
    start = newest_id(audited)
    claimed = base64.b64encode(b"eve\x00x:guess").decode()
    resp = api(audited, "GET", "/user", auth=None, headers={"Authorization": f"Basic {claimed}"})
    assert resp.status_code == 401, resp.text
    resp = httpx.post(f"{audited.url}/auth/token",
                      content=b"grant_type=password&username=mal%00lory&password=guess",
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 401, resp.text

    written = assert_the_log_goes_on(audited, start)
    logins = [e for e in written if e["action"] == "login"]
    assert len(logins) == 2 and all(e["result"] == "failure" for e in logins), logins
    assert all(e["actor"].startswith("unknown:") for e in logins), logins


def test_huge_and_deeply_nested_values_are_bounded(audited: MoorageServer) -> None:
    start = newest_id(audited)
    huge = "9" * 4000  # Python's own limit for int() of text is 4300 digits
    resp = raw(audited, "POST", "/namespaces", f'{{"name":{huge},"keep_last":-{huge}}}')
    assert 400 <= resp.status_code < 500, resp.text
    nested = '{"name":"deep","description":' + "[" * 50_000 + "]" * 50_000 + "}"
    deep = raw(audited, "POST", "/namespaces", nested)
    assert deep.status_code != 201

    written = assert_the_log_goes_on(audited, start)
    refused = [e for e in written if e["action"] == "namespace.create" and e["actor"] == "admin"
               and e["result"] == "failure"]
    assert len(refused) == 2, "a body too deep to parse is still a change that is recorded"
    [numbers] = [e for e in refused if "values" in e["detail"]]
    assert len(json.dumps(numbers["detail"])) < 1000, numbers
    assert numbers["detail"]["values"] == {"name": "<integer of 13288 bits>",
                                           "keep_last": "<negative integer of 13288 bits>"}


def test_hostile_filters_get_a_clear_answer(audited: MoorageServer) -> None:
    """Reading the log with such values: a NUL in a filter (PostgreSQL refuses it even in a
    query) finds what was recorded with U+FFFD in its place; ids beyond 64 bits and times
    that are not numbers are refused by name, never a 500."""
    start = newest_id(audited)
    resp = api(audited, "DELETE", "/repositories/team/a%00b", auth=None)
    assert 400 <= resp.status_code < 500, resp.text
    assert_the_log_goes_on(audited, start)
    [found] = since(audited, start, repository="team/a\x00b")
    assert found["repository"] == f"team/a{REPLACEMENT}b" and found["action"] == "repository.delete"
    assert page(audited, actor="nobody\x00").json()["entries"] == []

    for params in ({"before_id": 10**24}, {"since": "nan"}, {"until": "1e999"},
                   {"since": "inf"}, {"since": "9" * 400 + "d"}):
        resp = page(audited, **params)
        assert resp.status_code in (400, 422), (params, resp.text)
        code, message = error(resp)
        assert code == "INVALID" and next(iter(params)) in message, (params, message)
    resp = api(audited, "GET", "/audit/export", params={"after_id": 10**24})
    assert resp.status_code == 422 and error(resp)[0] == "INVALID", resp.text
