"""The remote client against CNCF Distribution (Debian's docker-registry 2.8): Basic auth
over TLS with a custom CA, an open instance, manifests, blobs, listings, mounts, referrers
through the tag-schema fallback, and a chunked upload resumed after a dropped connection."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

import pytest

from moorage.oci import mediatypes as mt
from moorage.remote import (BytesSource, DigestMismatch, RegistryClient, RemoteAuthError,
                            RemoteConfig, RemoteConfigError, RemoteConnectError, RemoteNotFound,
                            RemoteTooLarge, copy_blob)
from moorage.remote.blobs import Cursor
from tests.remote.conftest import BASIC_PASSWORD, BASIC_USER, Distribution
from tests.remote.helpers import (Counting, CuttingProxy, Limits, MiB, PatternSource, Sleeps,
                                  client_for, digest_read_back, fast_retries, push_image)
from tests.support.certs import Authority


def test_basic_auth_over_tls_with_a_custom_ca(distribution_basic: Distribution,
                                              authority: Authority) -> None:
    async def scenario() -> None:
        async with client_for(distribution_basic, user=BASIC_USER, password=BASIC_PASSWORD,
                              ca_file=authority.ca_file) as client:
            digest, data = await push_image(client, "basic/app", "v1", layer=b"tls layer")
            by_tag = await client.get_manifest("basic/app", "v1")
            assert (by_tag.digest, by_tag.data) == (digest, data)
            assert by_tag.media_type == mt.OCI_MANIFEST
            by_digest = await client.get_manifest("basic/app", digest)
            assert by_digest.data == data
            head = await client.head_manifest("basic/app", "v1")
            assert head is not None and (head.digest, head.size) == (digest, len(data))
            assert await client.head_manifest("basic/app", "missing") is None
            layer = by_tag.manifest.blobs[1]
            assert await client.blob_size("basic/app", layer.digest) == len(b"tls layer")
            async with client.open_blob("basic/app", layer.digest, size=layer.size) as blob:
                assert b"".join([c async for c in blob.chunks()]) == b"tls layer"
            with pytest.raises(RemoteNotFound, match="basic/app: manifest nope"):
                await client.get_manifest("basic/app", "nope")
    asyncio.run(scenario())


def test_a_fresh_client_s_concurrent_first_requests_all_carry_the_credentials(
        distribution_basic: Distribution, authority: Authority) -> None:
    """Eight reads at once on a client that has not yet asked /v2/ how to authenticate (a
    proxy cache's first pull: podman asks for every layer together): each waits for that
    answer and sends the credentials; none goes out bare and is taken for a refusal."""
    async def scenario() -> None:
        async with client_for(distribution_basic, user=BASIC_USER, password=BASIC_PASSWORD,
                              ca_file=authority.ca_file) as client:
            await push_image(client, "basic/many", "v1", layer=b"many readers")
        async with client_for(distribution_basic, user=BASIC_USER, password=BASIC_PASSWORD,
                              ca_file=authority.ca_file) as fresh:
            found = await asyncio.gather(*(fresh.head_manifest("basic/many", "v1")
                                           for _ in range(8)))
            assert all(h is not None for h in found)
    asyncio.run(scenario())


def test_wrong_password_is_a_clear_error_without_the_password(
        distribution_basic: Distribution, authority: Authority,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with client_for(distribution_basic, user=BASIC_USER, password="not-the-pw-9x7",
                              ca_file=authority.ca_file) as client:
            with pytest.raises(RemoteAuthError) as refused:
                await client.get_manifest("basic/app", "v1")
            message = str(refused.value)
            assert "refused our credentials" in message and distribution_basic.host in message
            assert "not-the-pw-9x7" not in message
        async with client_for(distribution_basic, ca_file=authority.ca_file) as anonymous:
            with pytest.raises(RemoteAuthError, match="asks for credentials"):
                await anonymous.get_manifest("basic/app", "v1")
    asyncio.run(scenario())
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "not-the-pw-9x7" not in logged and BASIC_PASSWORD not in logged


def test_tls_is_verified_unless_insecure(distribution_basic: Distribution) -> None:
    async def scenario() -> None:
        sleeps = Sleeps()
        async with client_for(distribution_basic, user=BASIC_USER, password=BASIC_PASSWORD,
                              sleep=sleeps) as strict:
            with pytest.raises(RemoteConnectError, match="TLS certificate is not trusted") \
                    as failed:
                await strict.ping()
            assert BASIC_PASSWORD not in str(failed.value)
            assert sleeps.waits == []  # not tried again: no retry can fix it
        async with client_for(distribution_basic, user=BASIC_USER, password=BASIC_PASSWORD,
                              insecure=True) as insecure:
            await insecure.ping()
    asyncio.run(scenario())


def test_plain_http_only_to_loopback_or_when_insecure() -> None:
    with pytest.raises(RemoteConfigError, match="plain http to registry.example.com"):
        RemoteConfig("http://registry.example.com").check()
    RemoteConfig("http://registry.example.com", insecure=True).check()
    RemoteConfig("http://127.0.0.1:5000").check()
    with pytest.raises(RemoteConfigError, match="not in the URL"):
        RemoteConfig("https://u:p@registry.example.com").check()
    assert "hunter2" not in repr(RemoteConfig("https://r.example", username="u",
                                              password="hunter2"))


def test_catalog_and_tags_follow_link_pages(distribution: Distribution) -> None:
    async def scenario() -> None:
        transport = Counting()
        async with client_for(distribution, transport=transport) as client:
            for tag in ("a", "b", "c", "d", "e", "f", "g"):
                await push_image(client, "paged/app", tag)
            for i in range(5):
                await push_image(client, f"paged/repo{i}", "v1")
            transport.requests.clear()
            tags = [t async for t in client.tags("paged/app", page_size=3)]
            assert sorted(tags) == ["a", "b", "c", "d", "e", "f", "g"]
            # Distribution 2.8 ignores `n` on tag lists (one page, no Link); Moorage pages them
            # (test_moorage.py). Its catalog pages:
            repos = [r async for r in client.catalog(page_size=2)]
            assert {f"paged/repo{i}" for i in range(5)} | {"paged/app"} <= set(repos)
            assert transport.count("GET", "/_catalog") >= 3  # six repositories, two a page
            assert len(repos) == len(set(repos))
        # a listing longer than the bound on pages is an error, not an endless walk
        async with client_for(distribution, limits=Limits(pages=2)) as bounded:
            with pytest.raises(RemoteTooLarge, match="catalog: more than 2 pages"):
                [r async for r in bounded.catalog(page_size=1)]
    asyncio.run(scenario())


def test_mount_within_one_registry_and_streaming_between_two(
        distribution: Distribution, distribution_basic: Distribution,
        authority: Authority) -> None:
    async def scenario() -> None:
        transport = Counting()
        blob = b"mounted layer bytes" * 100
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        async with client_for(distribution, transport=transport) as open_client, \
                client_for(distribution_basic, user=BASIC_USER, password=BASIC_PASSWORD,
                           ca_file=authority.ca_file) as other:
            await open_client.push_blob("mount/source", digest, BytesSource(blob))
            transport.requests.clear()
            result = await copy_blob(open_client, "mount/source", open_client, "mount/target",
                                     digest, len(blob))
            assert result.how == "mounted" and result.sent == 0
            assert transport.count("PATCH") == 0 and transport.count("PUT") == 0
            assert await open_client.blob_size("mount/target", digest) == len(blob)
            # another registry: no mount possible, the bytes stream across
            copied = await copy_blob(open_client, "mount/source", other, "mount/copy", digest,
                                     len(blob))
            assert copied.how == "monolithic" and copied.sent == len(blob)
            async with other.open_blob("mount/copy", digest, size=len(blob)) as read:
                assert b"".join([c async for c in read.chunks()]) == blob
            again = await copy_blob(open_client, "mount/source", other, "mount/copy", digest,
                                    len(blob))
            assert again.how == "present"
            # a blob the source repository does not have: the registry opens an upload instead
            assert not await open_client.mount_blob("mount/target2", "sha256:" + "0" * 64,
                                                    "mount/source")
    asyncio.run(scenario())


def test_referrers_fall_back_to_the_tag_schema(distribution: Distribution) -> None:
    async def scenario() -> None:
        async with client_for(distribution) as client:
            subject_digest, subject = await push_image(client, "refs/app", "v1")
            subject_descriptor = {"mediaType": mt.OCI_MANIFEST, "digest": subject_digest,
                                  "size": len(subject)}
            sbom_digest, sbom = await push_image(client, "refs/app", None, layer=b"sbom",
                                                 subject=subject_descriptor,
                                                 artifact_type="application/spdx+json")
            sig_digest, sig = await push_image(client, "refs/app", None, layer=b"sig",
                                               subject=subject_descriptor,
                                               artifact_type="application/vnd.dev.cosign")
            assert await client.referrers("refs/app", subject_digest) == []
            index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
                {"mediaType": mt.OCI_MANIFEST, "digest": sbom_digest, "size": len(sbom),
                 "artifactType": "application/spdx+json"},
                {"mediaType": mt.OCI_MANIFEST, "digest": sig_digest, "size": len(sig),
                 "artifactType": "application/vnd.dev.cosign"}]}).encode()
            await client.put_manifest("refs/app", "sha256-" + subject_digest[7:], index,
                                      mt.OCI_INDEX)
            found = await client.referrers("refs/app", subject_digest)
            assert {d.digest for d in found} == {sbom_digest, sig_digest}
            only = await client.referrers("refs/app", subject_digest, "application/spdx+json")
            assert [d.digest for d in only] == [sbom_digest]
    asyncio.run(scenario())


def test_a_chunked_upload_survives_a_dropped_connection(distribution: Distribution) -> None:
    """Distribution cannot resume an upload whose last PATCH broke off (its signed `_state`
    no longer matches the bytes it holds): the client asks, is told the session is gone,
    and sends the blob again in a new one. Moorage resumes in place (test_moorage.py)."""
    source = PatternSource(24 * MiB, seed=7)

    async def scenario() -> None:
        proxy = CuttingProxy(distribution.port, cut_after=12 * MiB)
        port = await proxy.start()
        transport = Counting()
        config = RemoteConfig(f"http://127.0.0.1:{port}", retry=fast_retries(),
                              limits=Limits(monolithic_max=4 * MiB, upload_chunk=8 * MiB))
        sleeps = Sleeps()
        try:
            async with RegistryClient(config, transport=transport, sleep=sleeps) as client:
                result = await client.push_blob("resume/app", source.digest, source)
                assert proxy.cuts == 1 and len(sleeps.waits) == result.resumes
                assert result.how == "chunked" and result.restarts == 1 == result.resumes
                assert transport.count("GET", "/blobs/uploads/") == 1  # the offset asked once
                assert transport.count("POST", "/blobs/uploads/") == 2
                assert source.largest_chunk <= MiB
                assert await client.blob_size("resume/app", source.digest) == source.size
                assert await digest_read_back(client, "resume/app", source.digest, source.size) == \
                    source.digest
        finally:
            await proxy.aclose()
    asyncio.run(scenario())


def test_content_negotiation_of_indexes_and_docker_types(distribution: Distribution) -> None:
    async def scenario() -> None:
        async with client_for(distribution) as client:
            children = []
            for arch in ("amd64", "arm64"):
                config = json.dumps({"architecture": arch, "os": "linux"}).encode()
                layer = f"layer for {arch}".encode()
                for data in (config, layer):
                    await client.push_blob("nego/app",
                                           "sha256:" + hashlib.sha256(data).hexdigest(),
                                           BytesSource(data))
                manifest = json.dumps({
                    "schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                               "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                               "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                                "size": len(layer)}]}).encode()
                digest = await client.put_manifest("nego/app", f"only-{arch}", manifest,
                                                   mt.DOCKER_MANIFEST)
                children.append({"mediaType": mt.DOCKER_MANIFEST, "digest": digest,
                                  "size": len(manifest),
                                  "platform": {"architecture": arch, "os": "linux"}})
            listing = json.dumps({"schemaVersion": 2, "mediaType": mt.DOCKER_LIST,
                                  "manifests": children}).encode()
            list_digest = await client.put_manifest("nego/app", "multi", listing, mt.DOCKER_LIST)
            fetched = await client.get_manifest("nego/app", "multi")
            assert (fetched.digest, fetched.media_type) == (list_digest, mt.DOCKER_LIST)
            assert [c.digest for c in fetched.manifest.children] == \
                [c["digest"] for c in children]
            head = await client.head_manifest("nego/app", "multi")
            assert head is not None and (head.digest, head.media_type) == (list_digest,
                                                                          mt.DOCKER_LIST)
            # a client that takes no index: Distribution answers the linux/amd64 image
            single = await client.get_manifest("nego/app", "multi",
                                               accept=(mt.DOCKER_MANIFEST,))
            assert single.media_type == mt.DOCKER_MANIFEST
            assert single.digest == children[0]["digest"]
    asyncio.run(scenario())


def test_another_client_resumes_an_upload_from_its_location(distribution: Distribution) -> None:
    """A copy interrupted by a crash: the upload's location was kept; a new client (a new
    process) asks the registry's offset there and sends only the rest."""
    source = PatternSource(20 * MiB, seed=5)
    limits = Limits(monolithic_max=MiB, upload_chunk=8 * MiB)

    async def scenario() -> None:
        async with client_for(distribution, limits=limits) as first:
            upload = await first.start_upload("later/app")
            await upload.write(Cursor(source.open(0)).take(8 * MiB), 8 * MiB)
            location = upload.location
        async with client_for(distribution, limits=limits) as second:
            resumed = await second.resume_upload("later/app", location)
            assert resumed.offset == 8 * MiB
            result = await resumed.send(source, source.digest)
            assert result.sent == 12 * MiB
            assert await digest_read_back(second, "later/app", source.digest, source.size) == \
                source.digest
    asyncio.run(scenario())


def test_a_blob_read_from_an_offset_is_verified_with_the_hash_so_far(
        distribution: Distribution) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def scenario() -> None:
        async with client_for(distribution) as client:
            await client.push_blob("ranged/app", digest, BytesSource(data))
            prefix = hashlib.sha256(data[:1000])
            async with client.open_blob("ranged/app", digest, size=len(data), offset=1000,
                                        hasher=prefix) as blob:
                assert blob.verified and blob.size == len(data)
                assert b"".join([c async for c in blob.chunks()]) == data[1000:]
            async with client.open_blob("ranged/app", digest, offset=1000) as unverified:
                assert not unverified.verified  # the receiving registry checks the digest
                assert b"".join([c async for c in unverified.chunks()]) == data[1000:]
            with pytest.raises(DigestMismatch):
                async with client.open_blob("ranged/app", digest, offset=1000,
                                            hasher=hashlib.sha256(b"other")) as wrong:
                    [c async for c in wrong.chunks()]
    asyncio.run(scenario())
