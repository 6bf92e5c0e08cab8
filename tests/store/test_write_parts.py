"""FileChunk.write_parts: the bytes of a batch as the server received them, in one writev.

The upload code hands the filesystem store its batches as lists of received pieces (no join,
no copy); what lands in the staged file, and then in the blob, must be exactly those bytes in
order, whatever the number and sizes of the pieces (more than writev takes at once included),
and an aborted chunk must still leave nothing behind.
"""

from __future__ import annotations

from pathlib import Path

from moorage.store.filesystem import FilesystemBlobStore
from tests.store.helpers import append, blob, digest_of, new_upload, payload, staged


def _pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        out.append(data[at:at + size])
        at += size
    assert at == len(data)
    return out


def test_parts_land_in_order_and_commit_as_one_blob(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    upload_id = new_upload(store)
    head = payload(1000, seed=1)
    append(store, upload_id, head)  # a chunk written the plain way first
    # 3,000 pieces (past writev's 1,024 buffers at once) of uneven sizes, one of them empty
    sizes = [(i * 37) % 700 + (0 if i == 5 else 1) for i in range(3000)]
    body = payload(sum(sizes), seed=2)
    half = sum(sizes[:1500])
    writer = store.upload_chunk(upload_id, len(head))
    writer.write_parts(_pieces(body[:half], sizes[:1500]))
    writer.write(b"between")
    writer.write_parts(_pieces(body[half:], sizes[1500:]))
    writer.commit()
    expected = head + body[:half] + b"between" + body[half:]
    assert staged(store, upload_id) == expected
    digest = digest_of(expected)
    store.upload_commit(upload_id, digest, size=len(expected))
    assert blob(store, digest) == expected


def test_an_aborted_chunk_of_parts_leaves_nothing(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    upload_id = new_upload(store)
    head = payload(5000, seed=3)
    append(store, upload_id, head)
    writer = store.upload_chunk(upload_id, len(head))
    writer.write_parts([payload(4096, seed=4), payload(10, seed=5)])
    writer.abort()
    assert staged(store, upload_id) == head
    assert store.upload_size(upload_id) == len(head)
