"""Small blobs served from memory where the store has no local file to send.

Why. A pull is a manifest and its blobs, and most of those blobs are small: the config, the
layers of a slim image, signatures, SBOMs. On S3 with redirects each of them cost the client a
307 and a second request to the bucket, and the bucket a signed GET: on the benchmark's two
replicas, SeaweedFS spent more CPU per pull (1.1 s per 1,000) than either replica. Streamed
from S3 (no redirects), each was a GET to the bucket from the registry; with encryption at
rest, a decryption. A blob of at most SMALL_BLOB_MAX bytes is now answered with its bytes from
a per-process LRU of `capacity` bytes, read from the store once.

Why it is safe. A digest names its bytes, so kept bytes can never be stale: they are checked
against the digest before they are kept, and bytes that are not the digest's are never
served (BLOB_UNKNOWN, and an error in the log, as for bytes that are missing). Whether a
repository holds the blob, and whether the caller may pull it, are decided before, from the
database, on every request: a blob deleted or collected is unknown there, whatever is kept.

The filesystem store keeps nothing (`zero_copy`): its blobs go out with sendfile from the
page cache, which is cheaper than a copy in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from moorage.cache.lru import LRUCache
from moorage.oci.errors import RegistryError
from moorage.store.base import BlobStore

log = logging.getLogger("moorage.registry")

SMALL_BLOB_MAX = 64 << 10


def unservable(digest: str, why: str) -> RegistryError:
    """BLOB_UNKNOWN for a recorded blob whose stored bytes cannot be sent (missing, or not
    the digest's), with why in the log: a client gets no bytes rather than wrong ones."""
    log.error("blob %s %s", digest, why)
    return RegistryError("BLOB_UNKNOWN", detail={"digest": digest})


class SmallBlobs:
    def __init__(self, store: BlobStore, capacity: int) -> None:
        self.store = store
        zero_copy = getattr(store, "zero_copy", False)
        self._kept: LRUCache[str, bytes] = LRUCache(0 if zero_copy else capacity)

    def holds(self, size: int) -> bool:
        """Whether a blob of `size` bytes is answered from here."""
        return size <= SMALL_BLOB_MAX and self._kept.capacity > 0

    async def read(self, digest: str, size: int) -> bytes:
        """The blob's bytes: kept, or read whole from the store (in a worker thread), checked
        and kept. BLOB_UNKNOWN when the store's bytes are missing or not the digest's."""
        data = self._kept.get(digest)
        if data is None:
            data = await asyncio.to_thread(self._checked, digest, size)
            self._kept.put(digest, data, max(len(data), 1))
        return data

    def _checked(self, digest: str, size: int) -> bytes:
        try:
            data = b"".join(self.store.read(digest, 0, size))
        except FileNotFoundError:
            raise unservable(digest, "is recorded but its bytes are missing") from None
        algorithm, _, expected = digest.partition(":")
        if len(data) != size or hashlib.new(algorithm, data).hexdigest() != expected:
            raise unservable(digest, f"is stored as {len(data)} of {size} bytes that are not "
                                     "the digest's; refused")
        return data
