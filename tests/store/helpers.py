"""Helpers for the blob store tests: payloads, and chunks written the way the core writes."""

from __future__ import annotations

import hashlib
import random

from moorage.store.base import BlobStore

MiB = 1 << 20


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def append(store: BlobStore, upload_id: str, data: bytes) -> int:
    """One chunk the way the core sends it: write_batch pieces into one writer, then commit."""
    offset = store.upload_size(upload_id)
    assert offset is not None
    writer = store.upload_chunk(upload_id, offset)
    try:
        for start in range(0, len(data), store.write_batch):
            writer.write(data[start:start + store.write_batch])
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return offset + len(data)


def staged(store: BlobStore, upload_id: str) -> bytes:
    return b"".join(store.upload_read(upload_id))


def blob(store: BlobStore, digest: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read(digest, start, end))


def new_upload(store: BlobStore) -> str:
    upload_id = random.Random().randbytes(16).hex()
    store.upload_create(upload_id)
    return upload_id
