"""Who a policy applies to and what a refusal leaves behind: exempted robots pull (not a
robot created again under a deleted one's name), other robots and anonymous clients of a
public namespace are refused; a refusal is one audit entry
and one `pull.blocked` webhook delivery per (image, actor) and minute however often it is
retried; a policy edit is followed by the very next pull on a two-worker server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.blocking.helpers import (VULNERABLE, api, error_of, image, manifest,
                                    new_namespace, push, set_policy, skopeo_pull, token,
                                    wait_report, wait_until)
from tests.events.receiver import Receiver
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]


def _robot(client: httpx.Client, ns: str, name: str) -> tuple[str, str]:
    resp = client.post(f"/namespaces/{ns}/robots", json={"name": name, "role": "developer"})
    assert resp.status_code == 201, resp.text
    return f"robot${ns}+{name}", resp.json()["secret"]


def _blocked_image(server: MoorageServer, client: httpx.Client, tmp_path: Path,
                   **rules: object) -> tuple[str, str, str]:
    ns = new_namespace(client)
    repo = f"{ns}/app"
    digest = push(server, image(tmp_path, "vuln", VULNERABLE), f"{repo}:1.0")
    wait_report(client, repo, "1.0")
    set_policy(client, ns, **{"severity": "high", **rules})
    return ns, repo, digest


def test_exempted_robots_pull_and_others_are_refused(server: MoorageServer,
                                                     tmp_path: Path) -> None:
    with api(server) as client:
        ns, repo, _ = _blocked_image(server, client, tmp_path)
        scanner = _robot(client, ns, "scanner")
        deployer = _robot(client, ns, "deployer")
        set_policy(client, ns, severity="high", exempt_robots=["scanner"])
        assert skopeo_pull(server, f"{repo}:1.0", tmp_path / "a", scanner).returncode == 0
        refused = skopeo_pull(server, f"{repo}:1.0", tmp_path / "b", deployer)
        assert refused.returncode != 0 and "pull policy" in refused.stderr, refused.stderr
        # the full username is accepted too, and stored as the robot's name
        policy = set_policy(client, ns, severity="high",
                            exempt_robots=[deployer[0], "scanner"])
        assert policy["exempt_robots"] == ["deployer", "scanner"]
        assert skopeo_pull(server, f"{repo}:1.0", tmp_path / "c", deployer).returncode == 0

        # an exemption belongs to the account: the robot deleted and created again under
        # its name (a new secret, perhaps someone else's) is not exempted
        assert client.delete(f"/namespaces/{ns}/robots/deployer").status_code == 204
        assert client.get(f"/namespaces/{ns}/pull-policy").json()["exempt_robots"] == \
            ["scanner"]
        again = _robot(client, ns, "deployer")
        refused = skopeo_pull(server, f"{repo}:1.0", tmp_path / "d", again)
        assert refused.returncode != 0 and "pull policy" in refused.stderr, refused.stderr


def test_a_refusal_is_audited_and_announced_once_a_minute(server: MoorageServer,
                                                         tmp_path: Path,
                                                         receiver: Receiver) -> None:
    with api(server) as client:
        ns, repo, digest = _blocked_image(server, client, tmp_path)
        resp = client.post("/webhooks", json={"namespace": ns, "url": receiver.url,
                                              "events": ["pull.blocked"]})
        assert resp.status_code == 201, resp.text
        # public: anonymous pulls are refused too, and recorded, bounded the same way
        resp = client.patch(f"/namespaces/{ns}", json={"visibility": "public"})
        assert resp.status_code == 200, resp.text
        bearer = token(server, repo)
        for _ in range(5):  # a client retrying: five refusals
            refused = manifest(server, repo, "1.0", bearer)
            assert refused.status_code == 403 and error_of(refused)["code"] == "DENIED"
        anonymous = httpx.get(f"{server.url}/auth/token", timeout=60, params={
            "service": server.host, "scope": f"repository:{repo}:pull"}).json()["token"]
        for _ in range(3):
            assert manifest(server, repo, "1.0", anonymous).status_code == 403

        def entries() -> list[dict]:
            found = client.get("/audit", params={"action": "pull.blocked",
                                                 "repository": repo})
            assert found.status_code == 200, found.text
            rows = found.json()["entries"]
            return rows if len(rows) >= 2 else []
        rows = wait_until(entries, "two audit entries")
        by_actor = {r["actor"]: r for r in rows}
        assert set(by_actor) == {"admin", "anonymous"}, rows
        assert by_actor["admin"]["result"] == "failure"
        assert "severity" in str(by_actor["admin"]["detail"])
        delivered = receiver.wait_for(2, event="pull.blocked", settle=2.0)
        assert len(delivered) == 2
        body = delivered[0].json()
        assert body["type"] == "pull.blocked" and body["digest"] == digest
        assert body["detail"]["rule"] == "severity" and body["namespace"] == ns
        # no other refusal entry ("manifest.pull" failure) doubles them
        time.sleep(1.0)
        found = client.get("/audit", params={"action": "manifest.pull", "repository": repo})
        assert found.json()["entries"] == []


def test_a_policy_edit_is_followed_by_the_next_pull_on_any_worker(server: MoorageServer,
                                                                  tmp_path: Path) -> None:
    with api(server) as client:
        ns, repo, _ = _blocked_image(server, client, tmp_path)
        bearer = token(server, repo)
        for _ in range(6):  # two workers: each answer may come from either
            set_policy(client, ns)
            for _ in range(3):
                assert manifest(server, repo, "1.0", bearer).status_code == 200
            set_policy(client, ns, severity="high")
            for _ in range(3):
                assert manifest(server, repo, "1.0", bearer).status_code == 403
