"""Uncached blobs of a proxy namespace: fetched once, streamed while they are cached.

The design, for N clients asking for one uncached blob on any worker or replica:

1. A blob the instance already holds (in any repository) is linked into this one, as a
   mount is, and the core answers it: no upstream request.
2. Otherwise the first asker claims the fetch: a row in `proxy_fetches` keyed by the digest
   (an INSERT, so exactly one claim succeeds in the shared database). The claimant opens the
   upstream stream and writes it through the core's normal upload path (`push_blob`: staged,
   hashed, committed atomically, quota checked, `blob.push` announced as `proxy:<ns>`) while
   the same chunks are relayed to its client. The relay holds back the last chunk until the
   commit succeeded: the client receives a complete blob only when the bytes were verified
   (against the digest, by the remote client and by the upload path) and stored. Wrong bytes,
   a short body or a dead upstream make the upload cancel itself (nothing is committed) and
   the response stop short, so the client's pull fails and nothing unverified is stored.
   The fetch does not depend on its client: a client that goes away leaves it running, so
   the others still get the blob.
3. Every other asker waits: it polls (every 0.2 s) for the blob to appear in the store and
   then links it (1.), so it is answered from the store once the claimant committed. A claim
   whose holder stopped beating (its process died: it beats every 5 s while it fetches) for
   30 s is taken over; a fetch that ended without a commit lets the next asker claim again,
   once, before a waiter gives up with a 502.

Waiting for the commit rather than reading the growing staged file keeps one rule intact:
nothing half-written is read by anyone (staged uploads may live in S3 or be encrypted). The
price: the followers of a first pull wait for the whole layer; the first client does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from moorage.oci.errors import RegistryError
from moorage.registry.events import acting_as
from moorage.registry.upstreams import UpstreamBlob
from moorage.remote import BlobReader, RemoteError, RemoteNotFound
from moorage.replication.proxy.source import ProxySource, bad_gateway
from moorage.replication.proxy.store import ProxyStore

log = logging.getLogger("moorage.proxy")

POLL = 0.2  # seconds between a waiter's looks at the store
BEAT = 5.0  # seconds between the claimant's signs of life
STALE = 30.0  # a claim without a beat this long is taken over
WAIT = 1800.0  # the longest a waiter waits for someone else's fetch
RELAY_CHUNKS = 16  # chunks held for a slow client before the fetch waits for it
_END = object()


class BlobFetcher:
    def __init__(self, store: ProxyStore) -> None:
        self.store = store
        # Fetches this process runs: kept referenced until they end (asyncio holds tasks
        # weakly), whether or not their client is still there.
        self._running: set[asyncio.Task[None]] = set()

    async def blob(self, source: ProxySource, name: str, upstream: str, digest: str,
                   head: bool) -> UpstreamBlob | None:
        if await self._link(source, name, digest):
            return None
        if not source.config.enabled:
            raise source._disabled()
        if head:
            try:
                size = await source.client.blob_size(upstream, digest)
            except RemoteError as exc:
                source.failed(f"{name}@{digest}", exc, None)
                raise bad_gateway(f"blob {digest}", exc) from None
            if size is None:
                raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
            return UpstreamBlob(size, None)
        holder = uuid.uuid4().hex
        give_up = time.monotonic() + WAIT
        ended_without_commit = 0
        while True:
            if await asyncio.to_thread(self.store.claim_fetch, digest, holder, time.time(),
                                       STALE):
                if await self._link(source, name, digest):  # committed just before the claim
                    await asyncio.to_thread(self.store.release_fetch, digest, holder)
                    return None
                return await self._lead(source, name, upstream, digest, holder)
            while True:  # someone else fetches it
                await asyncio.sleep(POLL)
                if await self._link(source, name, digest):
                    return None
                if not await asyncio.to_thread(self.store.fetch_claimed, digest):
                    break
                if time.monotonic() > give_up:
                    raise RegistryError("UNKNOWN", f"blob {digest} is being fetched from the "
                                        "upstream registry and is not there yet", status=502,
                                        detail={"reason": "upstream"})
            ended_without_commit += 1
            if ended_without_commit > 1:
                raise RegistryError("UNKNOWN", f"blob {digest} is not cached and its fetch "
                                    "from the upstream registry failed", status=502,
                                    detail={"reason": "upstream"})

    async def _link(self, source: ProxySource, name: str, digest: str) -> bool:
        """Link a blob the instance holds into the repository; pending manifests that it
        completes are stored."""
        def link() -> bool:
            with acting_as(source.actor, proxy=source.config.namespace):
                if source.registry.mount(name, digest, None) is None:
                    return False
            source.promote(name)
            return True
        return await asyncio.to_thread(link)

    async def _lead(self, source: ProxySource, name: str, upstream: str, digest: str,
                    holder: str) -> UpstreamBlob:
        opener = source.client.open_blob(upstream, digest)
        try:
            reader = await opener.__aenter__()
        except BaseException as exc:
            await asyncio.to_thread(self.store.release_fetch, digest, holder)
            if isinstance(exc, RemoteNotFound):
                raise RegistryError("BLOB_UNKNOWN", f"the upstream has no blob {digest} in "
                                    f"{upstream}", detail={"digest": digest}) from None
            if isinstance(exc, RemoteError):
                source.failed(f"{name}@{digest}", exc, None)
                raise bad_gateway(f"blob {digest}", exc) from None
            raise
        if reader.size is None:
            await opener.__aexit__(None, None, None)
            await asyncio.to_thread(self.store.release_fetch, digest, holder)
            raise RegistryError("UNKNOWN", f"the upstream did not say the size of {digest}",
                                status=502, detail={"reason": "upstream"})
        relay = _Relay()
        task = asyncio.create_task(self._cache(source, name, digest, holder, reader, opener,
                                               relay))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return UpstreamBlob(reader.size, relay.chunks())

    async def _cache(self, source: ProxySource, name: str, digest: str, holder: str,
                     reader: BlobReader, opener: AbstractAsyncContextManager[Any],
                     relay: "_Relay") -> None:
        """Fetch, store and relay; the claim is released however it ends. The claim beats
        on its own timer, so a slow client (whose relay makes the fetch wait) or a slow
        upstream does not let another worker take the fetch over while this one lives."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(BEAT)
                try:
                    await asyncio.to_thread(self.store.beat, digest, holder, time.time())
                except Exception as exc:  # the database is away: the fetch goes on
                    log.warning("proxy cache: could not renew the fetch claim of %s: %s",
                                digest, exc)

        async def tee() -> AsyncIterator[bytes]:
            async for chunk in reader.chunks():
                await relay.put(chunk)
                yield chunk

        beating = asyncio.create_task(beat())
        outcome: object = _END
        try:
            with acting_as(source.actor, proxy=source.config.namespace):
                await source.registry.push_blob(name, digest, tee(), reader.size,
                                                f"proxy:{source.config.namespace}")
        except RemoteError as exc:
            source.failed(f"{name}@{digest}", exc, None)
            outcome = exc
        except Exception as exc:  # the upload path refused (quota, digest): the client is told
            log.warning("proxy cache %s: could not cache %s@%s: %s", source.config.namespace,
                        name, digest, exc)
            outcome = exc
        finally:
            beating.cancel()
            try:
                await opener.__aexit__(None, None, None)
            except Exception:  # closing a broken stream
                pass
            await asyncio.to_thread(self.store.release_fetch, digest, holder)
        if outcome is _END:
            try:
                await asyncio.to_thread(source.promote, name)
            except Exception:
                log.exception("proxy cache %s: storing pending manifests of %s failed",
                              source.config.namespace, name)
        await relay.finish(outcome)


class _Relay:
    """Chunks from the fetch to one client, the last held back until the fetch's outcome."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue(RELAY_CHUNKS)
        self.gone = False

    async def put(self, chunk: bytes) -> None:
        if not self.gone:
            await self.queue.put(chunk)

    async def finish(self, outcome: object) -> None:
        if not self.gone:
            await self.queue.put(outcome)

    async def chunks(self) -> AsyncIterator[bytes]:
        held: bytes | None = None
        try:
            while True:
                item = await self.queue.get()
                if item is _END:
                    break
                if isinstance(item, RegistryError):  # refused by the upload path (quota)
                    raise item
                if isinstance(item, BaseException):
                    raise RegistryError("UNKNOWN", f"the upstream fetch failed: {item}",
                                        status=502, detail={"reason": "upstream"})
                assert isinstance(item, bytes)
                if held is not None:
                    yield held
                held = item
            if held:
                yield held
        finally:
            self.gone = True
            while not self.queue.empty():  # unblock a fetch waiting to hand over a chunk
                self.queue.get_nowait()
