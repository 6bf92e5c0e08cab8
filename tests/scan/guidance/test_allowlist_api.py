"""The CVE allowlist through a real server: the API (add, list, replace, remove; who may do
what; expiry; clear refusals of bad input and of the per-namespace bound), the audit log's
record of changes, the OpenAPI document, and `moorage cve-allowlist` with tables and --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import insert, select

from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.schema import cve_allowlist, namespaces
from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.support.server import MoorageServer

ADMIN = ("admin", ADMIN_PASSWORD)
OWNER = ("olivia", "owner-password-1")
READER = ("rita", "reader-password-1")
STRANGER = ("sam", "stranger-password-1")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    instance = MoorageServer(tmp_path_factory.mktemp("allowlist") / "data",
                             env={**SECURED, **ROOMY}).start()
    try:
        with httpx.Client(base_url=f"{instance.url}/api/v1", auth=ADMIN, timeout=120) as api:
            for name, password in (OWNER, READER, STRANGER):
                assert api.post("/users", json={"username": name, "password": password}
                                ).status_code == 201
            for ns in ("team", "crowded", "solo"):
                assert api.post("/namespaces", json={"name": ns}).status_code == 201
                assert api.put(f"/namespaces/{ns}/members/{OWNER[0]}",
                               json={"role": "owner"}).status_code == 200
            for ns in ("team", "solo"):
                assert api.put(f"/namespaces/{ns}/members/{READER[0]}",
                               json={"role": "guest"}).status_code == 200
        yield instance
    finally:
        instance.stop()


def call(server: MoorageServer, method: str, path: str, auth: tuple[str, str] = OWNER,
         **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{server.url}/api/v1{path}", auth=auth, timeout=120,
                         **kwargs)  # type: ignore[arg-type]


def moorage(server: MoorageServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update({"MOORAGE_URL": server.url, "MOORAGE_USERNAME": OWNER[0],
                "MOORAGE_PASSWORD": OWNER[1], "NO_COLOR": "1", "COLUMNS": "200",
                "XDG_CONFIG_HOME": str(server.data_dir.parent / "config")})
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_add_list_replace_and_remove(server: MoorageServer) -> None:
    path = "/namespaces/solo/cve-allowlist"  # no other test writes there
    added = call(server, "POST", path, json={
        "id": "GHSA-jfh8-c2jp-5v3q", "reason": "the JNDI lookup is disabled",
        "expires_at": "2999-01-31T00:00:00+01:00"})
    assert added.status_code == 201, added.text
    body = added.json()
    assert (body["id"], body["expired"], body["created_by"]) == (
        "GHSA-jfh8-c2jp-5v3q", False, OWNER[0])
    assert body["expires_at"] == "2999-01-30T23:00:00Z"
    # the same advisory, another case: replaced (200), not listed twice
    again = call(server, "POST", path, json={"id": "ghsa-jfh8-c2jp-5v3q",
                                             "reason": "renewed", "expires_at": None})
    assert again.status_code == 200 and again.json()["expires_at"] is None
    listed = call(server, "GET", path, auth=READER)
    assert listed.status_code == 200
    assert [(e["id"], e["reason"]) for e in listed.json()] == [("ghsa-jfh8-c2jp-5v3q",
                                                               "renewed")]
    assert call(server, "DELETE", f"{path}/GHSA-JFH8-C2JP-5V3Q").status_code == 204
    gone = call(server, "DELETE", f"{path}/GHSA-JFH8-C2JP-5V3Q")
    assert gone.status_code == 404 and "not on the CVE allowlist of solo" in gone.text
    assert call(server, "GET", path, auth=ADMIN).json() == []


def test_expired_entries_stay_listed_as_expired(server: MoorageServer) -> None:
    path = "/namespaces/team/cve-allowlist"
    past = call(server, "POST", path, json={"id": "CVE-2020-1747", "reason": "was fine",
                                            "expires_at": "2020-01-01T00:00:00Z"})
    future = call(server, "POST", path, json={"id": "CVE-2020-14343", "reason": "is fine",
                                              "expires_at": "2999-01-01T00:00:00Z"})
    assert past.status_code == future.status_code == 201
    assert past.json()["expired"] is True and future.json()["expired"] is False
    state = {e["id"]: e["expired"] for e in call(server, "GET", path).json()}
    assert state["CVE-2020-1747"] is True and state["CVE-2020-14343"] is False


def test_who_may_read_and_change(server: MoorageServer) -> None:
    path = "/namespaces/team/cve-allowlist"
    entry = {"id": "CVE-2021-44228", "reason": "not used"}
    refused = call(server, "POST", path, auth=READER, json=entry)
    assert refused.status_code == 403 and "needs owner" in refused.json()["error"]["message"]
    assert call(server, "DELETE", f"{path}/CVE-2020-1747", auth=READER).status_code == 403
    assert call(server, "GET", path, auth=STRANGER).status_code == 403
    assert call(server, "POST", path, auth=STRANGER, json=entry).status_code == 403
    assert call(server, "GET", path, auth=("nobody", "wrong-password")).status_code == 401
    assert httpx.get(f"{server.url}/api/v1{path}", timeout=120).status_code == 401
    assert call(server, "POST", path, auth=ADMIN, json=entry).status_code == 201
    missing = call(server, "GET", "/namespaces/nothing-here/cve-allowlist", auth=ADMIN)
    assert missing.status_code == 404


@pytest.mark.parametrize("body, words", [
    ({"id": "not an id", "reason": "x"}, "is not an advisory id"),
    ({"id": "CVE-2021-44228", "reason": "   "}, "a reason is required"),
    ({"id": "CVE-2021-44228"}, "reason"),
    ({"id": "CVE-2021-44228", "reason": "x" * 1001}, "reason"),
    ({"id": "CVE-" + "1" * 80, "reason": "x"}, "id"),
    ({"id": "CVE-2021-44228", "reason": "x", "expires_at": "2027-01-01T00:00:00"},
     "time zone"),
    ({"id": "CVE-2021-44228", "reason": "x", "expires_at": "next tuesday"}, "expires_at"),
    ({"id": "CVE-2021-44228", "reason": "x", "extra": 1}, "extra"),
    ({"id": 7, "reason": "x"}, "id"),
])
def test_bad_input_gets_a_clear_refusal(server: MoorageServer, body: dict, words: str) -> None:
    answer = call(server, "POST", "/namespaces/team/cve-allowlist", json=body)
    assert answer.status_code in (400, 422), answer.text
    assert words in answer.text and "Traceback" not in answer.text


def test_a_huge_body_is_refused_before_it_is_read(server: MoorageServer) -> None:
    answer = call(server, "POST", "/namespaces/team/cve-allowlist",
                  content=b'{"id": "CVE-2021-44228", "reason": "' + b"x" * (8 << 20) + b'"}',
                  headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_a_namespace_holds_at_most_a_thousand_entries(server: MoorageServer) -> None:
    engine = open_engine(sqlite_url(server.data_dir))
    try:
        with engine.begin() as conn:
            ns = conn.execute(select(namespaces.c.id).where(namespaces.c.name == "crowded")
                              ).scalar_one()
            conn.execute(insert(cve_allowlist), [
                {"namespace_id": ns, "advisory_id": f"CVE-2000-{i:05d}", "reason": "bulk",
                 "expires_at": None, "created_at": time.time(), "created_by": "test"}
                for i in range(999)])
    finally:
        engine.dispose()
    path = "/namespaces/crowded/cve-allowlist"
    assert call(server, "POST", path, json={"id": "CVE-2001-1", "reason": "the 1000th"}
                ).status_code == 201
    full = call(server, "POST", path, json={"id": "CVE-2001-2", "reason": "one too many"})
    assert full.status_code == 400
    assert "at most 1000 entries" in full.json()["error"]["message"]
    assert call(server, "POST", path, json={"id": "CVE-2001-1", "reason": "replaced"}
                ).status_code == 200
    assert len(call(server, "GET", path).json()) == 1000


def test_changes_reach_the_audit_log(server: MoorageServer) -> None:
    path = "/namespaces/team/cve-allowlist"
    assert call(server, "POST", path, json={"id": "CVE-2022-0001", "reason": "audited"}
                ).status_code == 201
    assert call(server, "DELETE", f"{path}/CVE-2022-0001").status_code == 204
    found: dict[str, dict] = {}
    deadline = time.monotonic() + 120  # bounds a hang only: the audit writer is asynchronous
    while len(found) < 2 and time.monotonic() < deadline:
        page = call(server, "GET", "/audit", auth=ADMIN,
                    params={"actor": OWNER[0], "limit": 500}).json()
        for e in page["entries"]:
            if e["action"] in ("cve_allowlist.add", "cve_allowlist.remove") \
                    and "CVE-2022-0001" in e["target"]:
                found.setdefault(e["action"], e)
        time.sleep(0.2)
    assert set(found) == {"cve_allowlist.add", "cve_allowlist.remove"}
    added = found["cve_allowlist.add"]
    assert added["target"] == "namespaces/team/cve-allowlist/CVE-2022-0001"
    assert added["result"] == "success" and added["detail"]["values"]["id"] == "CVE-2022-0001"
    assert "audited" not in json.dumps(added)  # free text is named, not recorded
    assert found["cve_allowlist.remove"]["target"] == \
        "namespaces/team/cve-allowlist/CVE-2022-0001"


def test_the_openapi_document_describes_it(server: MoorageServer) -> None:
    doc = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=120).json()
    paths = doc["paths"]
    assert set(paths["/api/v1/namespaces/{namespace}/cve-allowlist"]) == {"get", "post"}
    assert set(paths["/api/v1/namespaces/{namespace}/cve-allowlist/{ident}"]) == {"delete"}
    create = doc["components"]["schemas"]["CveAllowlistCreate"]
    assert create["properties"]["reason"]["maxLength"] == 1000
    assert create["properties"]["id"]["maxLength"] == 64


def test_the_cli(server: MoorageServer) -> None:
    added = moorage(server, "cve-allowlist", "add", "team", "CVE-2023-0001", "--reason",
                    "vendored copy is patched", "--expires", "2999-06-30", "--json")
    assert added.returncode == 0, added.stderr
    entry = json.loads(added.stdout)
    assert entry["id"] == "CVE-2023-0001" and entry["expires_at"] == "2999-06-30T00:00:00Z"
    said = moorage(server, "cve-allowlist", "add", "team", "CVE-2023-0002", "--reason",
                   "gone", "--expires", "2001-01-01")
    assert said.returncode == 0 and "Accepted CVE-2023-0002 in team" in said.stdout
    assert "accepts nothing" in said.stdout
    listed = json.loads(moorage(server, "cve-allowlist", "list", "team", "--json").stdout)
    assert {"CVE-2023-0001", "CVE-2023-0002"} <= {e["id"] for e in listed}
    table = moorage(server, "cve-allowlist", "list", "team")
    row = next(line for line in table.stdout.splitlines() if "CVE-2023-0002" in line)
    assert "expired" in row and "gone" in row
    bad = moorage(server, "cve-allowlist", "add", "team", "CVE-2023-0003", "--reason", "x",
                  "--expires", "someday")
    assert bad.returncode == 2 and "--expires 'someday' is not a date" in bad.stderr
    refused = moorage(server, "cve-allowlist", "add", "team", "nope", "--reason", "x", "--json")
    assert refused.returncode == 1 and "not an advisory id" in refused.stdout + refused.stderr
    removed = moorage(server, "cve-allowlist", "remove", "team", "CVE-2023-0001", "--json")
    assert json.loads(removed.stdout) == {"removed": "CVE-2023-0001", "namespace": "team"}
    assert "Traceback" not in table.stderr + bad.stderr + refused.stderr


def test_the_personal_edition_refuses_it_naming_the_edition(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    small = MoorageServer(tmp_path_factory.mktemp("personal") / "data",
                          env={**SECURED, "MOORAGE_EDITION": "personal"}).start()
    try:
        assert httpx.post(f"{small.url}/api/v1/namespaces", json={"name": "home"}, auth=ADMIN,
                          timeout=120).status_code == 201
        for method, body in (("GET", None), ("POST", {"id": "CVE-2021-44228", "reason": "x"})):
            answer = httpx.request(method, f"{small.url}/api/v1/namespaces/home/cve-allowlist",
                                   json=body, auth=ADMIN, timeout=120)
            assert answer.status_code == 403
            assert "needs the basic edition or higher" in answer.json()["error"]["message"]
    finally:
        small.stop()
