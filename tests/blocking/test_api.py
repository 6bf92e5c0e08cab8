"""The pull policy's API and CLI faces: reading and replacing it, what is refused and why
(an unknown severity, a huge or unknown exempt list, the unsigned rule without a signing
service, callers who are not the namespace's owners, editions without threat blocking), and
what the instance advertises."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.blocking.helpers import ADMIN, api, new_namespace, set_policy, wait_until
from tests.conftest import ROOMY, SECURED
from tests.scan.service.helpers import moorage
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.slow]


def _message(resp: httpx.Response) -> str:
    return str(resp.json()["error"]["message"])


def test_a_namespace_without_a_policy_reads_all_rules_off(server: MoorageServer) -> None:
    with api(server) as client:
        ns = new_namespace(client)
        got = client.get(f"/namespaces/{ns}/pull-policy")
        assert got.status_code == 200, got.text
        policy = got.json()
        assert policy["active"] is False and policy["severity"] is None
        assert policy["exempt_robots"] == [] and policy["updated_at"] is None
        saved = set_policy(client, ns, severity="medium", block_unscanned=True)
        assert saved["active"] and saved["severity"] == "medium"
        assert saved["updated_by"] == "admin"
        assert client.get(f"/namespaces/{ns}/pull-policy").json() == saved

        def audited() -> list[dict]:
            rows = client.get("/audit", params={"action": "pull_policy.set"}).json()["entries"]
            return [r for r in rows if ns in r["target"]]
        [entry] = wait_until(audited, "the audit entry of the edit")
        assert entry["actor"] == "admin" and entry["result"] == "success"
        assert entry["detail"]["values"]["severity"] == "medium"
        assert entry["detail"]["values"]["block_unscanned"] is True
        assert "exempt_robots" in entry["detail"]["fields"]


@pytest.mark.parametrize("body, status, words", [
    ({"severity": "catastrophic"}, 400, "unknown severity"),
    ({"severity": "high", "exempt_robots": [f"r{i}" for i in range(51)]}, 422, "50"),
    ({"exempt_robots": ["nobody"]}, 400, "no robot account 'nobody'"),
    ({"exempt_robots": ["Not A Name!"]}, 400, "is not a robot account name"),
    ({"block_unscanned": "yes"}, 422, "bool"),
    ({"severity": "high", "surprise": 1}, 422, "surprise"),
    ({"exempt_robots": ["x" * 400]}, 422, "300"),
])
def test_bad_input_is_refused_with_the_reason(server: MoorageServer, body: dict,
                                              status: int, words: str) -> None:
    with api(server) as client:
        ns = new_namespace(client)
        resp = client.put(f"/namespaces/{ns}/pull-policy", json=body)
        assert resp.status_code == status, resp.text
        assert words in resp.text
        assert client.get(f"/namespaces/{ns}/pull-policy").json()["active"] is False


def test_only_owners_and_administrators_see_and_change_it(server: MoorageServer) -> None:
    with api(server) as client:
        ns = new_namespace(client)
        resp = client.post("/users", json={"username": f"dev{ns}", "password": "pw-12345678"})
        assert resp.status_code == 201, resp.text
        resp = client.put(f"/namespaces/{ns}/members/dev{ns}", json={"role": "developer"})
        assert resp.status_code in (200, 201), resp.text
    with api(server, (f"dev{ns}", "pw-12345678")) as dev:
        assert dev.get(f"/namespaces/{ns}/pull-policy").status_code == 403
        resp = dev.put(f"/namespaces/{ns}/pull-policy", json={"severity": "low"})
        assert resp.status_code == 403, resp.text
    with api(server, None) as nobody:
        assert nobody.get(f"/namespaces/{ns}/pull-policy").status_code == 401


def test_the_cli_shows_and_changes_it(server: MoorageServer) -> None:
    env = {"MOORAGE_URL": server.url, "MOORAGE_USERNAME": ADMIN[0],
           "MOORAGE_PASSWORD": ADMIN[1]}
    with api(server) as client:
        ns = new_namespace(client)
    done = moorage("policy", "pull", "set", ns, "--severity", "critical", "--unscanned",
                   env=env)
    assert done.returncode == 0, done.stderr
    assert f"Pull policy of {ns} saved." in done.stdout
    assert "block critical and worse" in done.stdout
    done = moorage("policy", "pull", "set", ns, "--severity", "off", "--json", env=env)
    policy = json.loads(done.stdout)
    assert policy["severity"] is None and policy["block_unscanned"] is True  # kept
    shown = moorage("policy", "pull", "show", ns, env=env)
    assert shown.returncode == 0 and "unscanned" in shown.stdout and "block" in shown.stdout
    bad = moorage("policy", "pull", "set", ns, "--severity", "dire", env=env)
    assert bad.returncode == 2 and "--severity takes one of" in bad.stderr
    refused = moorage("policy", "pull", "set", ns, "--exempt", "ghost", env=env)
    assert refused.returncode == 1 and "no robot account 'ghost'" in refused.stderr
    info = moorage("info", "--json", env=env)
    assert json.loads(info.stdout)["features"]["threat_blocking"] is True


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    started = MoorageServer(tmp_path_factory.mktemp("blocking-basic") / "data",
                            extra_args=["--edition", "basic"], env={**SECURED, **ROOMY}).start()
    yield started
    started.kill()


def test_editions_without_threat_blocking_refuse_it_and_do_not_advertise_it(
        basic: MoorageServer) -> None:
    with api(basic) as client:
        assert client.post("/namespaces", json={"name": "team"}).status_code == 201
        for resp in (client.get("/namespaces/team/pull-policy"),
                     client.put("/namespaces/team/pull-policy", json={"severity": "high"})):
            assert resp.status_code == 403, resp.text
            assert "threat blocking by policy needs the advanced edition" in _message(resp)
        assert client.get("/info").json()["features"]["threat_blocking"] is False
