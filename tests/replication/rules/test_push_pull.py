"""Push and pull rules against real registries: a signed multi-arch image with an SBOM
travels whole with digests unchanged; filters, namespace mapping, delete propagation."""

from __future__ import annotations

import time

import pytest

from tests.remote.conftest import Distribution
from tests.replication.rules.conftest import BASIC_PASSWORD, BASIC_USER
from tests.replication.rules.helpers import (ADMIN, SBOM_TYPE, api, client_for, create_rule,
                                             executions, manifest_digest, push_multiarch, run,
                                             run_rule, wait_finished)
from tests.support.certs import Authority
from tests.support.schedules import make_due
from tests.support.server import MoorageServer


def dist_rule(distribution: Distribution, authority: Authority, name: str,
              **fields: object) -> dict[str, object]:
    return {"name": name, "mode": "push", "url": distribution.url, "username": BASIC_USER,
            "password": BASIC_PASSWORD, "ca_pem": authority.ca_file.read_text(), **fields}


def test_push_on_event_carries_a_signed_multiarch_image_with_its_sbom(
        primary: MoorageServer, distribution: Distribution, authority: Authority) -> None:
    rule = create_rule(primary, **dist_rule(distribution, authority, "to-dist",
                                            repositories="app/**"))
    assert rule["has_password"] is True and "password" not in rule

    async def push() -> dict[str, object]:
        async with client_for(primary, *ADMIN) as client:
            return await push_multiarch(client, "app/web", "1.0")

    pushed = run(push())
    found = wait_finished(primary, "to-dist")
    assert [e["status"] for e in found] == ["succeeded"] * len(found), found
    assert any(e["trigger"] == "event" and e["copied"] >= 1 for e in found)

    async def check() -> None:
        async with client_for(distribution, BASIC_USER, BASIC_PASSWORD,
                              str(authority.ca_file)) as dest:
            assert await manifest_digest(dest, "app/web", "1.0") == pushed["index"]
            for child in pushed["children"]:  # type: ignore[attr-defined]
                assert await manifest_digest(dest, "app/web", child) == child
            assert await manifest_digest(dest, "app/web", pushed["sbom"]) == pushed["sbom"]
            assert await manifest_digest(dest, "app/web", pushed["sig_tag"]) == pushed["sig"]
            # Distribution 2.8 has no referrers API: the client reads cosign's tag index,
            # so ask by digest that the SBOM manifest is byte-identical
            sbom = await dest.get_manifest("app/web", pushed["sbom"])  # type: ignore[arg-type]
            assert sbom.manifest.artifact_type == SBOM_TYPE
            assert sbom.manifest.subject.digest == pushed["index"]
    run(check())
    # one execution per tag pushed (the index's, the signature tag's) and, the rule having
    # no tag filter, one per manifest pushed by digest only (the platforms, the SBOM): the
    # bytes went with whichever ran first; the index's saw at least its own tree (the SBOM
    # and the signature too when they were pushed before it ran; else their own executions
    # took them, as check() shows)
    execution = next(e for e in found if e["scope"].get("tag") == "1.0")
    assert execution["artifacts_done"] >= 3, execution
    assert len(found) == 5 and sum(e["bytes"] for e in found) > 0, found
    log = api(primary, "GET", f"/replication/executions/{execution['id']}/log").json()["log"]
    assert "app/web" in log and BASIC_PASSWORD not in log

    # audited: the rule's creation (no password in it) and the execution's result
    entries = api(primary, "GET", "/audit?action=replication*").json()["entries"]
    actions = {e["action"] for e in entries}
    assert {"replication_rule.create", "replication.succeeded"} <= actions, actions
    assert BASIC_PASSWORD not in str(entries) and BASIC_PASSWORD not in primary.log()

    # the report: nothing differs
    report = api(primary, "GET", "/replication/rules/to-dist/report").json()
    assert report["counts"]["missing"] == 0 and report["counts"]["different"] == 0
    assert report["counts"]["same"] >= 1

    # and back: a pull rule from Distribution brings the image, its SBOM (found through the
    # referrers tag the push kept there) and its signature into another namespace here
    create_rule(primary, name="from-dist", mode="pull", url=distribution.url,
                username=BASIC_USER, password=BASIC_PASSWORD,
                ca_pem=authority.ca_file.read_text(), repositories="app/*",
                destination_namespace="back", on_event=False)
    execution = run_rule(primary, "from-dist")
    assert execution["status"] == "succeeded" and execution["copied"] == 1, execution

    async def back() -> None:
        async with client_for(primary, *ADMIN) as client:
            assert await manifest_digest(client, "back/web", "1.0") == pushed["index"]
            assert await manifest_digest(client, "back/web", pushed["sig_tag"]) == pushed["sig"]
            refs = await client.referrers("back/web", pushed["index"])  # type: ignore[arg-type]
            assert [r.digest for r in refs] == [pushed["sbom"]]
            tags = [t async for t in client.tags("back/web")]
            assert sorted(tags) == sorted(["1.0", pushed["sig_tag"]])  # no referrers tag
    run(back())


def test_pull_with_filters_and_namespace_mapping(primary: MoorageServer,
                                                 peer: MoorageServer) -> None:
    async def seed() -> dict[str, dict[str, object]]:
        async with client_for(peer, *ADMIN) as client:
            return {f"{name}:{tag}": await push_multiarch(client, name, tag, seed="peer")
                    for name, tag in (("team/api", "v1"), ("team/api", "dev"),
                                      ("other/x", "v1"))}
    pushed = run(seed())["team/api:v1"]
    create_rule(primary, name="from-peer", mode="pull", url=peer.url, username=ADMIN[0],
                password=ADMIN[1], repositories="team/*", tags="v*",
                destination_namespace="mirror", on_event=False)
    before = api(primary, "GET", "/replication/rules/from-peer/report").json()
    assert before["counts"]["missing"] == 1
    assert before["differences"][0]["destination"] == "mirror/api"

    execution = run_rule(primary, "from-peer")
    assert execution["status"] == "succeeded", execution
    assert execution["copied"] == 1

    async def check() -> None:
        async with client_for(primary, *ADMIN) as client:
            assert await manifest_digest(client, "mirror/api", "v1") == pushed["index"]
            assert await manifest_digest(client, "mirror/api", "dev") is None  # tag filter
            assert await manifest_digest(client, "mirror/x", "v1") is None  # repo filter
            sig = pushed["sig_tag"]
            assert await manifest_digest(client, "mirror/api", sig) == pushed["sig"]
            refs = await client.referrers("mirror/api", pushed["index"])  # type: ignore[arg-type]
            assert [r.digest for r in refs] == [pushed["sbom"]]
    run(check())

    # a second run finds everything in place: nothing copied, no bytes sent
    again = run_rule(primary, "from-peer")
    assert again["status"] == "succeeded" and again["copied"] == 0 and again["bytes"] == 0
    after = api(primary, "GET", "/replication/rules/from-peer/report").json()
    assert after["counts"] == {"same": 1, "missing": 0, "different": 0, "extra": 0}


def test_delete_propagates_only_when_set(primary: MoorageServer, peer: MoorageServer) -> None:
    create_rule(primary, name="del-on", mode="push", url=peer.url, username=ADMIN[0],
                password=ADMIN[1], repositories="gone/on", propagate_deletes=True)
    create_rule(primary, name="del-off", mode="push", url=peer.url, username=ADMIN[0],
                password=ADMIN[1], repositories="gone/off")

    async def push() -> None:
        async with client_for(primary, *ADMIN) as client:
            for name in ("gone/on", "gone/off"):
                await push_multiarch(client, name, "t", seed=name)
    run(push())
    wait_finished(primary, "del-on")
    wait_finished(primary, "del-off")

    async def present(name: str) -> bool:
        async with client_for(peer, *ADMIN) as client:
            return await manifest_digest(client, name, "t") is not None
    assert run(present("gone/on")) and run(present("gone/off"))
    for name in ("gone/on", "gone/off"):
        reply = api(primary, "DELETE", f"/repositories/{name}/tags/t")
        assert reply.status_code in (200, 204), reply.text
    wait_finished(primary, "del-on", count=2)
    time.sleep(2)  # give a wrong trigger of del-off the chance to show
    wait_finished(primary, "del-off")
    assert not run(present("gone/on"))
    assert run(present("gone/off"))


def test_two_instances_replicating_to_each_other_settle(primary: MoorageServer,
                                                        peer: MoorageServer) -> None:
    """Global synchronization: A pushes to B and B to A, both on events. The copy back finds
    the same digests and writes nothing, so nothing triggers again."""
    create_rule(primary, name="loop-out", mode="push", url=peer.url, username=ADMIN[0],
                password=ADMIN[1], repositories="loop/**", propagate_deletes=True)
    create_rule(peer, name="loop-back", mode="push", url=primary.url, username=ADMIN[0],
                password=ADMIN[1], repositories="loop/**", propagate_deletes=True)

    async def push() -> dict[str, object]:
        async with client_for(primary, *ADMIN) as client:
            return await push_multiarch(client, "loop/app", "1", seed="loop")
    pushed = run(push())

    def settled() -> tuple[int, int, int]:
        out = wait_finished(primary, "loop-out")
        back = wait_finished(peer, "loop-back")
        return len(out), len(back), sum(e["copied"] for e in back)

    first = settled()
    time.sleep(5)  # whatever would loop has had the time to start
    assert settled() == first
    outs, backs, copied_back = first
    # the rules have no tag filter, so every push starts an execution: on the way out one
    # per tag pushed (the index, its .sig) and one per manifest pushed by digest only (two
    # platforms, the SBOM); on the way back one per manifest and tag written there, which
    # varies with how the executions on the way out overlapped (two may write the same
    # manifest). What matters: the counts stay put, and the way back copied nothing.
    assert outs == 5 and backs >= 2, (executions(primary, "loop-out"),
                                      executions(peer, "loop-back"))
    assert copied_back == 0  # the way back found everything in place

    async def digest_at(server: MoorageServer) -> str | None:
        async with client_for(server, *ADMIN) as client:
            return await manifest_digest(client, "loop/app", "1")
    assert run(digest_at(peer)) == run(digest_at(primary)) == pushed["index"]

    # a delete settles as well: the tag gone on both sides, one execution more on each (the
    # way back finds no tag to delete)
    assert api(primary, "DELETE", "/repositories/loop/app/tags/1").status_code == 204
    wait_finished(primary, "loop-out", count=outs + 1)
    wait_finished(peer, "loop-back", count=backs + 1)
    time.sleep(5)
    assert len(wait_finished(primary, "loop-out")) == outs + 1
    assert len(wait_finished(peer, "loop-back")) == backs + 1
    assert wait_finished(peer, "loop-back")[0]["copied"] == 0  # no tag left to delete here
    assert run(digest_at(peer)) is None and run(digest_at(primary)) is None


@pytest.mark.slow
def test_a_schedule_runs_full_syncs(primary: MoorageServer, peer: MoorageServer) -> None:
    """A cron rule's schedule enqueues full syncs (made due now rather than at the next
    minute boundary: tests/support/schedules.py)."""
    async def seed() -> str:
        async with client_for(peer, *ADMIN) as client:
            return (await push_multiarch(client, "cron/app", "1", seed="cron"))["index"]
    pushed = run(seed())
    rule = create_rule(primary, name="every-minute", mode="pull", url=peer.url,
                       username=ADMIN[0], password=ADMIN[1], repositories="cron/app",
                       cron="* * * * *")
    make_due(primary, "replication", rule["id"])
    found = wait_finished(primary, "every-minute", timeout=300)
    assert found[-1]["trigger"] == "schedule" and found[-1]["status"] == "succeeded", found

    async def here() -> str | None:
        async with client_for(primary, *ADMIN) as client:
            return await manifest_digest(client, "cron/app", "1")
    assert run(here()) == pushed
