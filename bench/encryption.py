"""Throughput of the plain and the encrypted filesystem blob store, side by side (not a test).

    PYTHONPATH=src python bench/encryption.py [--mib 256] [--dir /some/disk]

Writes go the way the registry writes: an upload staged in 1 MiB batches through a chunk
writer (the core hands the store `write_batch` bytes at a time), then committed. "one chunk" is
the usual `docker push` (one PATCH), whose encrypted commit re-binds a header in place;
"4 chunks" is a chunked push, whose encrypted commit decrypts and re-encrypts the whole blob.
Reads stream the whole blob through `read()` in 1 MiB pieces (page cache warm), and then 1 MiB
ranges at random offsets. Figures are MB/s (10^6 bytes per second) of plaintext, by the wall
clock and by this process's CPU time; on a busy machine the second says more about the code.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from moorage.store.base import BlobStore
from moorage.store.encrypted import EncryptedBlobStore
from moorage.store.filesystem import FilesystemBlobStore
from moorage.store.keys import Keyring, generate_key

MiB = 1 << 20


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rate(self, size: int) -> str:
        return f"{size / self.wall / 1e6:6.0f} / {size / self.cpu / 1e6:<6.0f}"


def write(store: BlobStore, digest: str, size: int, chunks: int) -> float:
    """Stage `size` bytes sent as `chunks` chunks and commit; returns the commit's seconds."""
    block = os.urandom(store.write_batch)
    upload_id = os.urandom(16).hex()
    store.upload_create(upload_id)
    offset = 0
    per_chunk = size // chunks
    for n in range(chunks):
        length = per_chunk if n < chunks - 1 else size - offset
        writer = store.upload_chunk(upload_id, offset)
        sent = 0
        while sent < length:
            piece = block[:min(len(block), length - sent)]
            writer.write(piece)
            sent += len(piece)
        writer.commit()
        offset += length
    started = time.perf_counter()
    store.upload_commit(upload_id, digest)
    return time.perf_counter() - started


def read(store: BlobStore, digest: str) -> None:
    for _ in store.read(digest, 0, None, MiB):
        pass


def read_ranges(store: BlobStore, digest: str, size: int, count: int) -> None:
    rng = random.Random(1)
    for _ in range(count):
        start = rng.randrange(0, size - MiB)
        for _ in store.read(digest, start, start + MiB, MiB):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="blob size in MiB")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (a temp dir)")
    parser.add_argument("--ranges", type=int, default=64, help="random 1 MiB range reads")
    args = parser.parse_args()
    size = args.mib * MiB
    root = Path(tempfile.mkdtemp(prefix="moorage-bench-", dir=args.dir))
    try:
        keyring = Keyring.from_environment(generate_key())
        stores: dict[str, BlobStore] = {
            "plain": FilesystemBlobStore(root / "plain"),
            "encrypted": EncryptedBlobStore(FilesystemBlobStore(root / "encrypted"), keyring),
        }
        rows: dict[str, dict[str, str]] = {name: {} for name in stores}
        for name, store in stores.items():
            for chunks in (1, 4):
                digest = "sha256:" + os.urandom(32).hex()
                with Clock() as clock:
                    commit = write(store, digest, size, chunks)
                label = f"write, {chunks} chunk{'s' if chunks > 1 else ''}"
                rows[name][label] = f"{clock.rate(size)} (commit {commit * 1000:4.0f} ms)"
                if chunks == 1:
                    read(store, digest)  # warm the page cache: compare the code, not the disk
                    with Clock() as clock:
                        read(store, digest)
                    rows[name]["read whole"] = clock.rate(size)
                    with Clock() as clock:
                        read_ranges(store, digest, size, args.ranges)
                    rows[name]["read 1 MiB ranges"] = clock.rate(args.ranges * MiB)
                store.delete(digest)
        print(f"{args.mib} MiB blob; MB/s of plaintext, wall / CPU; {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}; {root}")
        print(f"{'':20}{'plain':>34}{'encrypted':>34}")
        for metric in rows["plain"]:
            print(f"{metric:20}{rows['plain'][metric]:>34}{rows['encrypted'][metric]:>34}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
