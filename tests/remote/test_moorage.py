"""The remote client against Moorage with token auth: the Docker token flow counted at
Moorage's side (its request counter for `/auth/token`), token expiry on an injected clock,
tag pagination, the referrers API, a mount, an upload resumed in place after a dropped
connection, and a 64 MiB blob streamed out of Distribution into Moorage in bounded chunks."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import pytest

from moorage.oci import mediatypes as mt
from moorage.remote import (FileSource, RegistryClient, RemoteAuthError, RemoteConfig,
                            RemoteNotFound, copy_blob)
from tests.remote.conftest import (ADMIN, BASIC_PASSWORD, BASIC_USER, Distribution,
                                   token_requests)
from tests.remote.helpers import (Clock, Counting, CuttingProxy, Limits, MiB, PatternSource,
                                  Sleeps, client_for, digest_read_back, fast_retries,
                                  push_image)
from tests.support.certs import Authority
from tests.support.server import MoorageServer


def admin_client(server: MoorageServer, **kwargs):  # type: ignore[no-untyped-def]
    return client_for(server, user=ADMIN[0], password=ADMIN[1], **kwargs)


def test_token_flow_reuses_tokens_until_they_expire(moorage: MoorageServer) -> None:
    clock = Clock()

    async def scenario() -> None:
        async with admin_client(moorage, clock=clock) as client:
            before = token_requests(moorage)
            digest, data = await push_image(client, "remote-tok/app", "v1")
            for reference in ("v1", digest, "v1"):
                assert (await client.get_manifest("remote-tok/app", reference)).data == data
            assert (await client.head_manifest("remote-tok/app", "v1")).digest == digest
            # one token for pull,push on the repository served the push and every pull
            assert token_requests(moorage) - before == 1 == client.token_requests
            await client.get_manifest("remote-tok/app", "v1")
            await push_image(client, "remote-tok/other", "v1")  # another repository: a token
            assert token_requests(moorage) - before == 2
            clock.now += 301  # Moorage's tokens last 300 s
            await client.get_manifest("remote-tok/app", "v1")
            await client.get_manifest("remote-tok/app", "v1")
            assert token_requests(moorage) - before == 3
    asyncio.run(scenario())


def test_anonymous_and_wrong_credentials_are_refused_clearly(moorage: MoorageServer) -> None:
    async def scenario() -> None:
        async with admin_client(moorage) as admin:
            await push_image(admin, "remote-private/app", "v1")
        async with client_for(moorage) as anonymous:
            with pytest.raises(RemoteAuthError, match="remote-private/app: manifest v1"):
                await anonymous.get_manifest("remote-private/app", "v1")
        async with client_for(moorage, user="admin", password="wrong-pw-zz1") as wrong:
            with pytest.raises(RemoteAuthError,
                               match="token service refused the credentials") as refused:
                await wrong.get_manifest("remote-private/app", "v1")
            assert "wrong-pw-zz1" not in str(refused.value)
    asyncio.run(scenario())


def test_tags_are_listed_page_by_page(moorage: MoorageServer) -> None:
    async def scenario() -> None:
        transport = Counting()
        async with admin_client(moorage, transport=transport) as client:
            names = [f"t{i:02d}" for i in range(11)]
            for tag in names:
                await push_image(client, "remote-pages/app", tag)
            transport.requests.clear()
            listed = [t async for t in client.tags("remote-pages/app", page_size=4)]
            assert listed == names
            assert transport.count("GET", "/tags/list") == 3  # 4 + 4 + 3
            with pytest.raises(RemoteNotFound):
                [t async for t in client.tags("remote-pages/none")]
    asyncio.run(scenario())


def test_referrers_api_and_mount(moorage: MoorageServer) -> None:
    async def scenario() -> None:
        transport = Counting()
        async with admin_client(moorage, transport=transport) as client:
            subject_digest, subject = await push_image(client, "remote-refs/app", "v1")
            descriptor = {"mediaType": mt.OCI_MANIFEST, "digest": subject_digest,
                          "size": len(subject)}
            sbom, _ = await push_image(client, "remote-refs/app", None, layer=b"sbom",
                                       subject=descriptor, artifact_type="application/spdx+json")
            sig, _ = await push_image(client, "remote-refs/app", None, layer=b"sig",
                                      subject=descriptor,
                                      artifact_type="application/vnd.dev.cosign")
            transport.requests.clear()
            found = await client.referrers("remote-refs/app", subject_digest)
            assert {d.digest for d in found} == {sbom, sig}
            only = await client.referrers("remote-refs/app", subject_digest,
                                          "application/vnd.dev.cosign")
            assert [d.digest for d in only] == [sig]
            assert transport.count("GET", "/manifests/") == 0  # no fallback was needed
            layer = (await client.get_manifest("remote-refs/app", "v1")).manifest.blobs[1]
            result = await copy_blob(client, "remote-refs/app", client, "remote-refs/mounted",
                                     layer.digest, layer.size)
            assert result.how == "mounted"
            assert await client.blob_size("remote-refs/mounted", layer.digest) == layer.size
    asyncio.run(scenario())


def test_an_upload_resumes_in_place_after_a_dropped_connection(moorage: MoorageServer) -> None:
    source = PatternSource(24 * MiB, seed=11)

    async def scenario() -> None:
        proxy = CuttingProxy(moorage.port, cut_after=12 * MiB)
        port = await proxy.start()
        transport = Counting()
        config = RemoteConfig(f"http://127.0.0.1:{port}", username=ADMIN[0],
                              password=ADMIN[1], retry=fast_retries(),
                              limits=Limits(monolithic_max=4 * MiB, upload_chunk=8 * MiB))
        try:
            async with RegistryClient(config, transport=transport, sleep=Sleeps()) as client:
                result = await client.push_blob("remote-resume/app", source.digest, source)
                assert proxy.cuts == 1
                # resumed where Moorage stopped (once more if the broken PATCH was still being
                # wound up there when the next one came): no acknowledged byte sent twice
                assert result.how == "chunked" and result.resumes >= 1 and result.restarts == 0
                assert result.sent <= source.size
                assert transport.count("POST", "/blobs/uploads/") == 1
                assert await client.blob_size("remote-resume/app", source.digest) == source.size
        finally:
            await proxy.aclose()
    asyncio.run(scenario())


@pytest.mark.slow
def test_a_64_mib_blob_streams_from_distribution_into_moorage(
        distribution_basic: Distribution, authority: Authority, moorage: MoorageServer) -> None:
    """Out of Distribution (Basic auth, TLS) and into Moorage (tokens), chunk by chunk: the
    client never holds more than a few chunks (traced allocations), whatever the size."""
    source = PatternSource(64 * MiB, seed=64)

    async def scenario() -> int:
        async with client_for(distribution_basic, user=BASIC_USER, password=BASIC_PASSWORD,
                              ca_file=authority.ca_file) as upstream, \
                admin_client(moorage) as local:
            await upstream.push_blob("big/app", source.digest, source)
            seen: list[int] = []

            class Watched:
                size = source.size

                async def open(self, offset: int):  # type: ignore[no-untyped-def]
                    async for chunk in upstream.source("big/app", source.digest,
                                                       source.size).open(offset):
                        seen.append(len(chunk))
                        yield chunk

            tracemalloc.start()
            try:
                result = await local.push_blob("remote-big/app", source.digest, Watched())
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert result.how == "chunked" and result.sent == source.size
            assert sum(seen) == source.size and max(seen) <= MiB
            assert await local.blob_size("remote-big/app", source.digest) == source.size
            assert await digest_read_back(local, "remote-big/app", source.digest, source.size) == \
                source.digest
            return peak

    peak = asyncio.run(scenario())
    print(f"64 MiB blob copied with a peak of {peak / MiB:.1f} MiB of traced allocations")
    assert peak < 16 * MiB, f"peak traced allocation {peak / MiB:.1f} MiB for a 64 MiB blob"


def test_a_copy_resumes_when_the_source_drops_mid_blob(distribution: Distribution,
                                                      moorage: MoorageServer,
                                                      tmp_path: Path) -> None:
    """Distribution to Moorage; the download from Distribution breaks off mid-blob (inside
    a PATCH to Moorage): Moorage is asked where it stopped, the source is read again from
    there with a Range, and the copy completes, verified by Moorage's digest check."""
    pattern = PatternSource(24 * MiB, seed=24)
    staged = tmp_path / "blob"
    with staged.open("wb") as out:
        for piece in pattern._pieces(0):
            out.write(piece)
    limits = Limits(monolithic_max=MiB, upload_chunk=8 * MiB)

    async def scenario() -> None:
        async with client_for(distribution, limits=limits) as direct:
            # from a file (read in a worker thread); a second push finds it there
            assert (await direct.push_blob("cut/src", pattern.digest, FileSource(staged))).how \
                == "chunked"
            assert (await direct.push_blob("cut/src", pattern.digest, FileSource(staged))).how \
                == "present"
        proxy = CuttingProxy(distribution.port, cut_after=12 * MiB, downwards=True)
        port = await proxy.start()
        source_transport = Counting()
        try:
            async with RegistryClient(RemoteConfig(f"http://127.0.0.1:{port}", limits=limits),
                                      transport=source_transport) as source, \
                    admin_client(moorage, limits=limits, sleep=Sleeps()) as target:
                result = await copy_blob(source, "cut/src", target, "remote-cut/dst",
                                         pattern.digest, pattern.size)
                assert proxy.cuts == 1
                assert result.how == "chunked" and result.resumes >= 1 and result.restarts == 0
                blob_gets = [r for (m, p, _), r in zip(source_transport.requests,
                                                       source_transport.ranges)
                             if m == "GET" and "/blobs/" in p]
                assert blob_gets[0] is None and blob_gets[-1] is not None  # then a Range
                assert await digest_read_back(target, "remote-cut/dst", pattern.digest,
                                              pattern.size) == pattern.digest
        finally:
            await proxy.aclose()
    asyncio.run(scenario())
