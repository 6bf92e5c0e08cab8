"""Manifests pushed by digest only and push rules: a referrer pushed after its subject joins
it on the destination when the subject's tag is one the rule wants; an untagged artifact is
copied by a rule without a tag filter and left alone by a rule with one."""

from __future__ import annotations

import json

from moorage.oci import mediatypes as mt
from tests.replication.rules.helpers import (ADMIN, SBOM_TYPE, api, client_for, create_rule,
                                             digest_of, executions, manifest_digest,
                                             push_blob, push_image, run, wait_finished)
from tests.support.server import MoorageServer


async def _push_sbom(client, name: str, subject: dict, text: str) -> str:  # type: ignore[no-untyped-def]
    """An SBOM referring to `subject`, pushed by digest only (as oras attach does)."""
    sbom = json.dumps({"spdxVersion": "SPDX-2.3", "name": text}).encode()
    await push_blob(client, name, mt.EMPTY_JSON)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": SBOM_TYPE,
           "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_DIGEST, "size": 2},
           "layers": [{"mediaType": SBOM_TYPE, **await push_blob(client, name, sbom)}],
           "subject": {"mediaType": subject["mediaType"], "digest": subject["digest"],
                       "size": subject["size"]}}
    data = json.dumps(doc).encode()
    return await client.put_manifest(name, digest_of(data), data, mt.OCI_MANIFEST)


def test_a_referrer_pushed_later_follows_its_tagged_subject(primary: MoorageServer,
                                                            peer: MoorageServer) -> None:
    create_rule(primary, name="untagged-ref", mode="push", url=peer.url, username=ADMIN[0],
                password=ADMIN[1], repositories="untag/ref", tags="v*", on_event=True)

    async def push_subject() -> dict:  # type: ignore[type-arg]
        async with client_for(primary, *ADMIN) as client:
            return await push_image(client, "untag/ref", "amd64", b"subject" * 100, tag="v1")
    subject = run(push_subject())
    wait_finished(primary, "untagged-ref", 1)

    async def push_referrers() -> tuple[str, str]:
        async with client_for(primary, *ADMIN) as client:
            sbom = await _push_sbom(client, "untag/ref", subject, "of v1")
            # a subject whose only tag the rule does not want: its referrer stays here
            other = await push_image(client, "untag/ref", "amd64", b"other" * 100,
                                     tag="latest")
            return sbom, await _push_sbom(client, "untag/ref", other, "of latest")
    sbom, unwanted = run(push_referrers())
    found = wait_finished(primary, "untagged-ref", 2)
    # the push of `latest` and the referrer of `latest` started nothing
    assert len(found) == 2, found
    assert all(e["status"] == "succeeded" for e in found), found

    async def check() -> None:
        async with client_for(peer, *ADMIN) as client:
            assert await manifest_digest(client, "untag/ref", sbom) == sbom
            listed = [d.digest for d in await client.referrers("untag/ref", subject["digest"])]
            assert sbom in listed
            assert await manifest_digest(client, "untag/ref", unwanted) is None
    run(check())


def test_an_untagged_artifact_goes_only_where_no_tag_filter_applies(
        primary: MoorageServer, peer: MoorageServer) -> None:
    create_rule(primary, name="untagged-all", mode="push", url=peer.url, username=ADMIN[0],
                password=ADMIN[1], repositories="untag/all", tags="**", on_event=True)
    create_rule(primary, name="untagged-some", mode="push", url=peer.url, username=ADMIN[0],
                password=ADMIN[1], repositories="untag/all", tags="release-*",
                destination_namespace="filtered", on_event=True)

    async def push() -> str:
        async with client_for(primary, *ADMIN) as client:
            image = await push_image(client, "untag/all", "arm64", b"untagged" * 100)
            return str(image["digest"])
    digest = run(push())
    [execution] = wait_finished(primary, "untagged-all", 1)
    assert execution["status"] == "succeeded", execution
    assert executions(primary, "untagged-some") == []
    log = api(primary, "GET", f"/replication/executions/{execution['id']}/log").json()["log"]
    assert f"untag/all@{digest}" in log

    async def check() -> None:
        async with client_for(peer, *ADMIN) as client:
            assert await manifest_digest(client, "untag/all", digest) == digest
            assert await manifest_digest(client, "filtered/all", digest) is None
    run(check())
