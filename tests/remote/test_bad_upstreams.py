"""Every way an upstream can misbehave ends in one clear RemoteError, after a bounded number
of tries, with nothing unverified handed on: garbage and wrong-digest manifests, wrong or
truncated blobs, redirect loops, an upstream that never answers, throttling with
Retry-After, revoked tokens. The waits between tries are recorded, never slept."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator

import httpx

import pytest

from moorage.oci import mediatypes as mt
from moorage.remote import (DigestMismatch, RegistryClient, RemoteAuthError, RemoteConfig,
                            RemoteContentError, RemoteProtocolError, RemoteTimeout,
                            RemoteTooLarge, RemoteUnavailable, ShortBody)
from tests.remote.conftest import Misbehaving
from tests.remote.helpers import (Clock, Limits, MiB, PatternSource, Sleeps, Timeouts,
                                  client_for, fast_retries)
from tests.remote.misbehaving import (LAYER, LAYER_DIGEST, MANIFEST, MANIFEST_DIGEST,
                                      PASSWORD, USER)
from tests.support.server import free_port


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def read_all(client: RegistryClient, name: str, digest: str,
                   size: int | None = None) -> bytes:
    """What a caller would write to its store before the stream's verdict."""
    kept = []
    async with client.open_blob(name, digest, size=size) as blob:
        async for chunk in blob.chunks():
            kept.append(chunk)
    return b"".join(kept)


def test_a_good_upstream_for_reference(misbehaving: Misbehaving) -> None:
    async def scenario() -> None:
        async with client_for(misbehaving) as client:
            fetched = await client.get_manifest("good", "latest")
            assert fetched.digest == MANIFEST_DIGEST and fetched.data == MANIFEST
            assert await read_all(client, "good", LAYER_DIGEST, len(LAYER)) == LAYER
    run(scenario())


def test_a_registry_ignoring_range_is_read_from_the_start(misbehaving: Misbehaving) -> None:
    async def scenario() -> None:
        async with client_for(misbehaving) as client:
            async with client.open_blob("good", LAYER_DIGEST, offset=100) as blob:
                assert blob.verified  # it sent every byte: all of them were hashed
                assert b"".join([c async for c in blob.chunks()]) == LAYER[100:]
    run(scenario())


def test_garbage_manifests_are_refused(misbehaving: Misbehaving) -> None:
    async def scenario() -> None:
        async with client_for(misbehaving) as client:
            with pytest.raises(RemoteProtocolError,
                               match=r"garbage: manifest latest: not a usable manifest: "
                                     r"manifest is not valid JSON"):
                await client.get_manifest("garbage", "latest")
            with pytest.raises(RemoteProtocolError, match="schema 1 is not supported"):
                await client.get_manifest("schema1", "latest")
            with pytest.raises(RemoteTooLarge, match="more than the bound"):
                await client.get_manifest("overlong", "latest")
            # a type that was not asked for (this one answers OCI whatever it is asked)
            with pytest.raises(RemoteProtocolError, match="manifest.v1\\+json, which was not "
                                                          "asked for"):
                await client.get_manifest("good", "latest", accept=(mt.DOCKER_MANIFEST,))
    run(scenario())


def test_wrong_digests_are_refused(misbehaving: Misbehaving) -> None:
    async def scenario() -> None:
        async with client_for(misbehaving) as client:
            with pytest.raises(DigestMismatch, match=f"not {MANIFEST_DIGEST}"):
                await client.get_manifest("wrongdigest", "latest")  # the digest announced
            with pytest.raises(DigestMismatch):
                await client.get_manifest("wrongdigest", MANIFEST_DIGEST)  # the digest asked
            kept: list[bytes] = []
            with pytest.raises(DigestMismatch, match="wrongdigest: blob .*not the digest"):
                async with client.open_blob("wrongdigest", LAYER_DIGEST) as blob:
                    async for chunk in blob.chunks():
                        kept.append(chunk)
            # every byte was handed on before the verdict: the caller discards them
            assert sum(map(len, kept)) == len(LAYER)
    run(scenario())


def test_a_truncated_blob_raises_after_its_last_chunk(misbehaving: Misbehaving) -> None:
    async def scenario() -> None:
        async with client_for(misbehaving) as client:
            with pytest.raises(ShortBody, match=f"ended after {len(LAYER) // 2} of "
                                                f"{len(LAYER)} bytes") as short:
                await read_all(client, "truncated", LAYER_DIGEST)
            assert isinstance(short.value, RemoteContentError) and short.value.retryable
            # a descriptor's size bounds a blob: a registry sending more is cut off
            with pytest.raises(RemoteTooLarge, match="announces"):
                await read_all(client, "good", LAYER_DIGEST, size=100)
    run(scenario())


def test_redirects_are_bounded_and_carry_no_credentials(
        misbehaving: Misbehaving, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with client_for(misbehaving, user=USER, password=PASSWORD) as client:
            with pytest.raises(RemoteProtocolError, match="redirect loop"):
                await read_all(client, "loop", LAYER_DIGEST)
            with pytest.raises(RemoteProtocolError, match="more than 5 redirects"):
                await read_all(client, "chain", LAYER_DIGEST)
            # Basic credentials go to the registry, not to the storage it redirects to
            assert await read_all(client, "presigned", LAYER_DIGEST, len(LAYER)) == LAYER
        stats = misbehaving.stats()
        assert stats.get("GET /redirect/a") == stats.get("GET /redirect/b") == 1
    run(scenario())
    # the presigned URL's signature and the credentials are in no log line
    assert "/storage/" in caplog.text and "X-Sig" not in caplog.text
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert PASSWORD not in caplog.text and encoded not in caplog.text


def test_listing_links_that_loop_or_leave_are_refused(misbehaving: Misbehaving) -> None:
    async def scenario() -> None:
        async with client_for(misbehaving) as client:
            listed: list[str] = []
            with pytest.raises(RemoteProtocolError, match="pages: tag list: the Link goes "
                                                          "round in a circle"):
                async for tag in client.tags("pages"):
                    listed.append(tag)
            assert listed == ["a", "a"]  # the first page, then its Link once: no more
            with pytest.raises(RemoteProtocolError, match=r"a Link to another host "
                                                          r"\(http://evil.invalid/"):
                [t async for t in client.tags("elsewhere")]
        assert "GET /v2/x/tags/list" not in misbehaving.stats()
    run(scenario())


def test_an_upstream_that_never_answers_times_out(misbehaving: Misbehaving) -> None:
    sleeps = Sleeps()

    async def scenario() -> None:
        async with client_for(misbehaving, sleep=sleeps, retry=fast_retries(2),
                              timeouts=Timeouts(read=1.0, request=2.0)) as client:
            with pytest.raises(RemoteTimeout, match="silent: manifest latest: timed out "
                                                    r"\(ReadTimeout\) after 2 attempts"):
                await client.get_manifest("silent", "latest")
    run(scenario())
    assert len(sleeps.waits) == 1
    assert misbehaving.stats()["silent manifests"] >= 2


def test_a_blob_that_stalls_mid_stream_times_out(misbehaving: Misbehaving) -> None:
    async def scenario() -> None:
        async with client_for(misbehaving, timeouts=Timeouts(read=1.0)) as client:
            with pytest.raises(RemoteTimeout, match=f"stalling: blob {LAYER_DIGEST}: the blob "
                                                    f"stalled after {len(LAYER) // 2} bytes"):
                await read_all(client, "stalling", LAYER_DIGEST, len(LAYER))
    run(scenario())


def test_an_unreachable_registry_fails_after_its_attempts() -> None:
    sleeps = Sleeps()
    nobody = RegistryClient(RemoteConfig(f"http://127.0.0.1:{free_port()}",
                                         retry=fast_retries(3)), sleep=sleeps)

    async def scenario() -> None:
        async with nobody:
            with pytest.raises(RemoteUnavailable, match=r"any/app: manifest v1: connection failed "
                                                        r"\(ConnectError\) after 3 attempts"):
                await nobody.get_manifest("any/app", "v1")
    run(scenario())
    assert len(sleeps.waits) == 2


def test_throttling_honours_retry_after(misbehaving: Misbehaving) -> None:
    sleeps = Sleeps()

    async def scenario() -> None:
        async with client_for(misbehaving, sleep=sleeps, retry=fast_retries(3)) as client:
            fetched = await client.get_manifest("throttled", "latest")
            assert fetched.digest == MANIFEST_DIGEST
    run(scenario())
    assert sleeps.waits == [7.0, 7.0]


def test_an_unavailable_upstream_fails_after_its_attempts(misbehaving: Misbehaving) -> None:
    sleeps = Sleeps()

    async def scenario() -> None:
        async with client_for(misbehaving, sleep=sleeps, retry=fast_retries(3)) as client:
            with pytest.raises(RemoteUnavailable, match=r"still answering 503 after 3 "
                                                        r"attempts \(HTTP 503\)") as down:
                await client.get_manifest("unavailable", "latest")
            assert down.value.retryable
    run(scenario())
    # Retry-After names a date decades away: cut to the policy's bound
    assert sleeps.waits == [60.0, 60.0]


def test_backoff_doubles_with_jitter(misbehaving: Misbehaving) -> None:
    sleeps = Sleeps()

    async def scenario() -> None:
        async with client_for(misbehaving, sleep=sleeps, random=lambda: 0.5,
                              retry=fast_retries(4)) as client:
            fetched = await client.get_manifest("flaky", "latest")  # one 502, then fine
            assert fetched.digest == MANIFEST_DIGEST
            with pytest.raises(RemoteUnavailable):
                await client.get_manifest("unavailable", "v2")
    run(scenario())
    # base 1 s, equal jitter at random() = 0.5: 0.75 of 1, 2 (and the 503s' Retry-After)
    assert sleeps.waits[0] == pytest.approx(0.75)
    assert sleeps.waits[1:] == [60.0, 60.0, 60.0]


def test_tokens_are_reused_refreshed_once_and_never_looped(
        misbehaving: Misbehaving, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()

    async def scenario() -> None:
        async with client_for(misbehaving, user=USER, password=PASSWORD, clock=clock) as client:
            for _ in range(3):
                await client.get_manifest("private", "latest")
            assert client.token_requests == 1
            # the token is revoked upstream before it expires: one refresh, then fine
            await asyncio.to_thread(__import__("httpx").post, f"{misbehaving.url}/_rotate")
            await client.get_manifest("private", "latest")
            assert client.token_requests == 2
            # a registry refusing every token: one refresh, then a clear error, no loop
            with pytest.raises(RemoteAuthError, match="denied: manifest latest: the registry "
                                                      r"refused our token \(HTTP 401\)"):
                await client.get_manifest("denied", "latest")
            assert client.token_requests == 4
        async with client_for(misbehaving, user=USER, password="wrong-pw-3kq") as wrong:
            with pytest.raises(RemoteAuthError, match="token service refused the credentials") \
                    as refused:
                await wrong.get_manifest("private", "latest")
            assert "wrong-pw-3kq" not in str(refused.value)
    run(scenario())
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert "/token" in caplog.text
    for secret in (PASSWORD, encoded, "wrong-pw-3kq", "Bearer t"):
        assert secret not in caplog.text


def test_a_token_refused_mid_upload_is_renewed_and_the_upload_resumes(
        misbehaving: Misbehaving) -> None:
    pattern = PatternSource(3 * MiB, seed=3)
    rotate = f"{misbehaving.url}/_rotate"

    class RevokedMidway:
        """The upstream revokes our token once the first chunk has gone."""

        size = pattern.size

        async def open(self, offset: int) -> AsyncIterator[bytes]:
            sent = 0
            async for chunk in pattern.open(offset):
                if offset == 0 and sent == MiB:
                    await asyncio.to_thread(httpx.post, rotate, timeout=30)
                yield chunk
                sent += len(chunk)

    async def scenario() -> None:
        async with client_for(misbehaving, user=USER, password=PASSWORD, sleep=Sleeps(),
                              limits=Limits(monolithic_max=MiB, upload_chunk=MiB)) as client:
            result = await client.push_blob("uploads", pattern.digest, RevokedMidway())
            assert result.how == "chunked"
            assert (result.resumes, result.restarts, result.sent) == (1, 0, pattern.size)
            assert client.token_requests == 2
            assert await client.blob_size("uploads", pattern.digest) == pattern.size
    run(scenario())
