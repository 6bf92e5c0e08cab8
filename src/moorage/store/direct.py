"""Staged uploads written around the page cache (O_DIRECT), from a reused aligned buffer.

Why. A buffered write copies every received byte into a page-cache page allocated for it,
and the commit's fsync then writes those pages out. On the benchmark's VM the allocation is
the expensive part (fresh memory faults on the host: a plain buffered write of 256 MiB took
0.8-3.1 s from run to run), and the writeback of buffered pages ran at ~250 MB/s where the
same disk takes 1 MiB direct writes at 0.8-1.5 GB/s (`dd`, docs/benchmarks.md, "Durable
uploads, fourth round"). Written directly, the bytes go from one reused buffer to the disk:
no page is allocated, and the fsync at commit is left with the tail and the device's flush.
Nothing about durability changes: the blob is still fsynced before it is acknowledged.

How. O_DIRECT needs the file offset, the length and the memory address aligned (4 KiB is
safe on every Linux filesystem that takes O_DIRECT). A chunk may start anywhere (a PATCH
ends where its client chose), so the appender starts at the block below the chunk's offset,
with that block's first bytes read back from the file into its buffer; it then writes whole
blocks only, and the last, partial block of the chunk (its tail) is written through the page
cache after O_DIRECT is cleared on the descriptor with fcntl. The next chunk reads that tail
back and rewrites the block directly (the kernel writes back and drops a cached page a direct
write covers, so the file is always what was written last). A filesystem that refuses
O_DIRECT (tmpfs on older kernels, some FUSE and network filesystems), or a direct write the
device refuses for its alignment, falls back to plain buffered writes for the chunk.

The buffers are anonymous mmaps (page-aligned), kept in a small per-process pool so that an
upload reuses memory already faulted in instead of touching new memory for every chunk.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Sequence

ALIGN = 4096
BUFFER_SIZE = 2 << 20  # a multiple of ALIGN; a batch of ~1 MiB plus its carried block fits
POOL_SIZE = 4  # idle buffers kept per process (8 MiB at most)

_O_DIRECT = getattr(os, "O_DIRECT", 0)


class _BufferPool:
    """Aligned buffers to reuse; at most POOL_SIZE idle ones are kept."""

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, BUFFER_SIZE)

    def give(self, buffer: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < POOL_SIZE:
                self._free.append(buffer)
                return
        buffer.close()


_pool = _BufferPool()


def set_direct(fd: int, on: bool) -> bool:
    """Set or clear O_DIRECT on an open descriptor; False if the filesystem refuses it."""
    if not _O_DIRECT:
        return False
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT if on else flags & ~_O_DIRECT)
    except OSError:
        return False
    return True


class DirectAppender:
    """Appends to an open file from `offset` on, whole aligned blocks written directly.

    Bytes handed to `append` reach the file in order; `finish` writes the last partial block
    (through the page cache) and must be called before the file is used again; `release`
    returns the buffer (always call it, also after a failure).
    """

    @classmethod
    def open(cls, fd: int, offset: int) -> DirectAppender | None:
        """An appender at `offset` of `fd` (whose size is `offset`), or None where O_DIRECT
        cannot be had (the caller then writes through the page cache)."""
        base = offset - offset % ALIGN
        head = os.pread(fd, offset - base, base) if offset > base else b""
        if len(head) != offset - base or not set_direct(fd, True):
            return None
        return cls(fd, base, head)

    def __init__(self, fd: int, base: int, head: bytes) -> None:
        self.fd = fd
        self.base = base  # file offset of the buffer's first byte (aligned)
        self.start = base + len(head)  # where this chunk's own bytes begin
        self.direct = True
        self._buffer: mmap.mmap | None = _pool.take()
        self._view = memoryview(self._buffer)
        self._view[:len(head)] = head
        self.fill = len(head)

    def append(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        view = self._view
        for part in parts:
            data = memoryview(part).cast("B")
            at, size = 0, len(data)
            while at < size:
                n = min(size - at, BUFFER_SIZE - self.fill)
                view[self.fill:self.fill + n] = data[at:at + n]
                self.fill += n
                at += n
                if self.fill == BUFFER_SIZE:
                    self._flush(BUFFER_SIZE)
        self._flush(self.fill - self.fill % ALIGN)

    def finish(self) -> None:
        """Write the partial block left in the buffer (if it holds any new byte), buffered."""
        if self.direct:
            set_direct(self.fd, False)
            self.direct = False
        if self.fill and self.base + self.fill > self.start:
            self._write(self._view[:self.fill], self.base)
        self.base += self.fill
        self.fill = 0

    def release(self) -> None:
        if self._buffer is not None:
            self._view.release()
            _pool.give(self._buffer)
            self._buffer = None

    def _flush(self, n: int) -> None:
        """Write the buffer's first `n` bytes (whole blocks) and keep the rest at its start."""
        if n == 0:
            return
        self._write(self._view[:n], self.base)
        rest = self.fill - n
        if rest:  # less than a block, after at least one: the two ranges never overlap
            self._view[:rest] = self._view[n:self.fill]
        self.base += n
        self.fill = rest

    def _write(self, data: memoryview, offset: int) -> None:
        while len(data):
            try:
                n = os.pwrite(self.fd, data, offset)
            except OSError as exc:
                # The device wants a larger alignment than ALIGN, or a short direct write
                # left the rest unaligned: the rest of the chunk goes through the page cache.
                if exc.errno != errno.EINVAL or not self.direct:
                    raise
                set_direct(self.fd, False)
                self.direct = False
                continue
            data, offset = data[n:], offset + n
