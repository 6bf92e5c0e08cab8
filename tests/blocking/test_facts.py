"""Facts written when their inputs change, seen by a running server at once.

A second Moorage process is built in this test on the server's own data folder (as another
worker or `moorage worker` would be), with a stand-in for the signing service: the unsigned
rule is turned on through it, and its `signature.verified` events on that process's bus
write the signed facts the server's pulls then follow (a child pulled by digest from a
signed index counts as signed). The backfill of images scanned before threat blocking was
installed runs inline for a small namespace and as a durable job, with progress, which the
server's workers run, when told the namespace is large."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import moorage.blocking as blocking
from moorage.app import Instance, build_instance
from moorage.blocking.model import PullPolicy
from moorage.registry.events import Event
from moorage.settings import load_settings
from tests.blocking.helpers import (CLEAN, api, error_of, image, manifest, new_namespace,
                                    push, set_policy, skopeo_pull, token, wait_report,
                                    wait_until)
from tests.blocking.test_index import _index
from tests.clients.tools import copy_in
from tests.blocking.helpers import ADMIN
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]


class SigningStandIn:
    """The agreed face of the signing service (`is_signed`), answering from a set."""

    def __init__(self) -> None:
        self.signed: set[tuple[str, str]] = set()

    def is_signed(self, repository: str, digest: str) -> bool:
        return (repository, digest) in self.signed


@pytest.fixture(scope="module")
def second(server: MoorageServer) -> Iterator[Instance]:
    instance = build_instance(load_settings(environ={}, overrides={
        "data_dir": server.data_dir}))
    assert instance.blocking is not None
    instance.signing = SigningStandIn()  # type: ignore[attr-defined]
    yield instance
    instance.blocking.gate.close()


def _namespace_id(server: MoorageServer, name: str) -> int:
    with sqlite3.connect(server.data_dir / "moorage.db", timeout=60) as db:
        (found,) = db.execute("SELECT id FROM namespaces WHERE name = ?", (name,)).fetchone()
    db.close()
    return int(found)


def _verified(instance: Instance, repository: str, digest: str, verified: bool) -> None:
    instance.registry.bus.publish(Event("signature.verified", repository, digest, detail={
        "verified": verified, "signers": ["release key"] if verified else []}))


def test_signature_verdicts_decide_the_unsigned_rule(server: MoorageServer, second: Instance,
                                                     tmp_path: Path) -> None:
    folder, digest, children = _index(tmp_path, {
        "amd64": image(tmp_path, "amd", CLEAN), "arm64": image(tmp_path, "arm", CLEAN)})
    with api(server) as client:
        ns = new_namespace(client)
        repo = f"{ns}/app"
        copy_in(f"oci:{folder}:t", f"docker://{server.host}/{repo}:1", "--all",
                "--dest-creds", f"{ADMIN[0]}:{ADMIN[1]}", "--preserve-digests")
        other = push(server, image(tmp_path, "other", CLEAN), f"{ns}/other:1")
        wait_report(client, repo, "1",
                    until=lambda r: all(i["status"] == "done" for i in r["images"]))
        wait_report(client, f"{ns}/other", "1")
    assert second.blocking is not None
    second.blocking.save(_namespace_id(server, ns), PullPolicy(
        ns, None, True, True, updated_by="test"))
    with api(server) as client:
        shown = client.get(f"/namespaces/{ns}/pull-policy").json()
        assert shown["block_unsigned"] and shown["block_unscanned"]
    bearer = token(server, repo)
    refused = manifest(server, repo, "1", bearer)
    assert refused.status_code == 403
    assert error_of(refused)["message"].endswith("(unsigned rule): no signature from a "
                                                 "trusted key")

    _verified(second, repo, digest, True)
    assert manifest(server, repo, "1", bearer).status_code == 200
    for child in children.values():  # by digest, from the signed index
        assert manifest(server, repo, child, bearer).status_code == 200
    pulled = skopeo_pull(server, f"{repo}:1", tmp_path / "out")
    assert pulled.returncode == 0, pulled.stderr
    refused_other = skopeo_pull(server, f"{ns}/other:1", tmp_path / "out2")
    assert refused_other.returncode != 0
    assert "no signature from a trusted key" in refused_other.stderr
    # a signature verified in another repository does not sign this one
    _verified(second, f"{ns}/elsewhere", other, True)
    assert manifest(server, f"{ns}/other", "1", token(server, f"{ns}/other")).status_code == 403

    _verified(second, repo, digest, False)  # the key was revoked
    assert manifest(server, repo, "1", bearer).status_code == 403
    assert manifest(server, repo, children["amd64"], bearer).status_code == 403


def _forget_facts(server: MoorageServer, digests: list[str]) -> None:
    """As if these images had been scanned before threat blocking was installed."""
    with sqlite3.connect(server.data_dir / "moorage.db", timeout=60) as db:
        db.executemany("DELETE FROM pull_scan_facts WHERE digest = ?", [(d,) for d in digests])
    db.close()


def test_images_scanned_before_installation_get_their_facts_when_a_policy_is_saved(
        server: MoorageServer, second: Instance, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert second.blocking is not None
    with api(server) as client:
        ns = new_namespace(client)
        ns_id = _namespace_id(server, ns)
        digests = [push(server, image(tmp_path, f"img{n}", (*CLEAN, (f"only-{ns}-{n}", "1.0"))),
                        f"{ns}/app{n}:1") for n in range(2)]
        for n in range(2):
            wait_report(client, f"{ns}/app{n}", "1")
        assert len(set(digests)) == 2

        def pulls() -> list[int]:
            return [manifest(server, f"{ns}/app{n}", "1",
                             token(server, f"{ns}/app{n}")).status_code for n in range(2)]

        _forget_facts(server, digests)
        # the rule stored without any backfill: both now read as never scanned
        second.blocking.store.put_policy(ns_id, PullPolicy(ns, None, True, False))
        assert pulls() == [403, 403]
        # the same policy saved through the server: small, so brought up to date inline
        set_policy(client, ns, block_unscanned=True)
        assert pulls() == [200, 200]

        _forget_facts(server, digests)
        second.blocking.store.put_policy(ns_id, PullPolicy(ns, None, True, False))
        assert pulls() == [403, 403]
        second.blocking.signing = lambda: None  # type: ignore[method-assign]
        monkeypatch.setattr(blocking, "INLINE_BACKFILL", 1)  # "large": a job does it
        job = second.blocking.save(ns_id, PullPolicy(ns, None, True, False, updated_by="t"))
        assert job is not None

        def finished() -> dict[str, Any] | None:
            found = client.get(f"/jobs/{job}").json()
            return found if found["status"] in ("succeeded", "failed") else None
        done = wait_until(finished, "the backfill job")
        assert done["status"] == "succeeded", done
        assert done["type"] == "blocking.backfill"
        assert done["result"]["scan_facts"] == 2
        # with a signing service in the server, each manifest's signed state is asked too
        assert done["progress"]["done"] == done["progress"]["total"] == \
            2 + done["result"]["manifests"]
        assert pulls() == [200, 200]


def test_an_allowlist_entry_stops_accepting_at_its_expiry_without_any_write(
        server: MoorageServer, second: Instance, tmp_path: Path) -> None:
    """The decision kept for an image is dropped at the namespace's next allowlist expiry:
    with the clock moved past it (and nothing committed meanwhile), the next pull is refused.
    The second process's own pull check is asked, with an injected clock."""
    from datetime import datetime, timedelta, timezone

    from moorage.oci.errors import RegistryError
    from tests.blocking.helpers import VULNERABLE, blocking_ids

    assert second.blocking is not None
    gate = second.blocking.gate
    with api(server) as client:
        ns = new_namespace(client)
        repo = f"{ns}/app"
        push(server, image(tmp_path, "vuln", VULNERABLE), f"{repo}:1")
        found = wait_report(client, repo, "1")
        ids = blocking_ids(found, ("critical", "high"))
        expires = datetime.now(timezone.utc) + timedelta(days=30)
        for ident in ids:
            resp = client.post(f"/namespaces/{ns}/cve-allowlist", json={
                "id": ident, "reason": "for a month", "expires_at": expires.isoformat()})
            assert resp.status_code == 201, resp.text
        set_policy(client, ns, severity="high")
    accept = ["application/vnd.oci.image.manifest.v1+json"]
    gate.clock = lambda: expires.timestamp() - 3600
    try:
        for _ in range(3):  # decided once, then answered from what was kept
            assert second.registry.get_manifest(repo, "1", accept).size > 0
        gate.clock = lambda: expires.timestamp() + 1
        with pytest.raises(RegistryError) as refused:
            second.registry.get_manifest(repo, "1", accept)
        assert refused.value.code == "DENIED" and "(severity rule)" in str(refused.value)
        # HEAD (pull=False) is still answered
        assert second.registry.get_manifest(repo, "1", accept, pull=False).size > 0
    finally:
        gate.clock = time.time
