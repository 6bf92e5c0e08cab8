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
from concurrent.futures import Future, ThreadPoolExecutor, wait

ALIGN = 4096
BUFFER_SIZE = 2 << 20  # a multiple of ALIGN; a batch of ~1 MiB plus its carried block fits
IN_USE = 8  # buffers handed out at once per process: four chunks written directly (16 MiB)
POOL_SIZE = 4  # idle buffers kept per process (8 MiB)

_O_DIRECT = getattr(os, "O_DIRECT", 0)


class _BufferPool:
    """Aligned buffers to reuse. At most IN_USE buffers are handed out at once (a chunk takes
    two), so the memory they hold stays bounded however many uploads run; a chunk that finds
    none left is written through the page cache. At most POOL_SIZE idle ones are kept."""

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._in_use = 0
        self._lock = threading.Lock()

    def take_pair(self) -> list[mmap.mmap] | None:
        with self._lock:
            if self._in_use + 2 > IN_USE:
                return None
            self._in_use += 2
            taken = [self._free.pop() for _ in range(min(2, len(self._free)))]
        try:
            while len(taken) < 2:
                taken.append(mmap.mmap(-1, BUFFER_SIZE))
        except BaseException:  # no memory for a buffer: give back what was counted
            with self._lock:
                self._in_use -= 2 - len(taken)
            for buffer in taken:
                self.give(buffer)
            raise
        return taken

    def give(self, buffer: mmap.mmap) -> None:
        with self._lock:
            self._in_use -= 1
            if len(self._free) < POOL_SIZE:
                self._free.append(buffer)
                return
        try:
            buffer.close()
        except BufferError:  # a view of it is still alive somewhere: the collector frees it
            pass


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

    Bytes handed to `append` reach the file in order. Each direct write runs in a writer
    thread of its own (`_writer`) while `append` returns, so the caller hashes a batch while
    the device writes it (os.pwrite and hashlib both release the GIL); the appender holds two
    buffers, one being written and one being filled, and never more than one write in flight.
    `finish` waits for it and writes the last partial block (through the page cache); it must
    be called before the file is used again. `release` waits for a write in flight and returns
    the buffers: always call it (after a failure too) before the file is truncated or closed.
    """

    @classmethod
    def open(cls, fd: int, offset: int) -> DirectAppender | None:
        """An appender at `offset` of `fd` (whose size is `offset`), or None where O_DIRECT
        cannot be had (the caller then writes through the page cache)."""
        base = offset - offset % ALIGN
        head = os.pread(fd, offset - base, base) if offset > base else b""
        if len(head) != offset - base:
            return None
        buffers = _pool.take_pair()
        if buffers is None:
            return None
        if not set_direct(fd, True):
            for buffer in buffers:
                _pool.give(buffer)
            return None
        return cls(fd, base, head, buffers)

    def __init__(self, fd: int, base: int, head: bytes, buffers: list[mmap.mmap]) -> None:
        self.fd = fd
        self.base = base  # file offset of the filling buffer's first byte (aligned)
        self.start = base + len(head)  # where this chunk's own bytes begin
        self.direct = True
        self._buffers = buffers
        self._views = [memoryview(b) for b in self._buffers]
        self._views[0][:len(head)] = head
        self.fill = len(head)
        self._pending: Future[None] | None = None

    def append(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        for part in parts:
            data = memoryview(part).cast("B")
            at, size = 0, len(data)
            while at < size:
                n = min(size - at, BUFFER_SIZE - self.fill)
                self._views[0][self.fill:self.fill + n] = data[at:at + n]
                self.fill += n
                at += n
                if self.fill == BUFFER_SIZE:
                    self._submit(BUFFER_SIZE)
        self._submit(self.fill - self.fill % ALIGN)

    def finish(self) -> None:
        """Wait for the write in flight, then write the partial block left in the buffer (if
        it holds any new byte) through the page cache."""
        self._wait()
        if self.direct:
            set_direct(self.fd, False)
            self.direct = False
        if self.fill and self.base + self.fill > self.start:
            self._write(self._views[0][:self.fill], self.base)
        self.base += self.fill
        self.fill = 0

    def release(self) -> None:
        if not self._buffers:
            return
        try:
            if self._pending is not None:
                wait([self._pending])  # its error, if any, is the caller's failure already
                self._pending = None
        finally:
            for view in self._views:
                view.release()
            for buffer in self._buffers:
                _pool.give(buffer)
            self._buffers, self._views = [], []

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _submit(self, n: int) -> None:
        """Hand the filling buffer's first `n` bytes (whole blocks) to the writer thread and
        go on filling the other buffer, which starts with the rest (less than a block)."""
        if n == 0:
            return
        self._wait()  # the other buffer is free once its write is done
        full, empty = self._views
        rest = self.fill - n
        if rest:
            empty[:rest] = full[n:self.fill]
        self._pending = _writer().submit(self._write, full[:n], self.base)
        self._views = [empty, full]
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


_writers: tuple[int, ThreadPoolExecutor] | None = None
_writers_lock = threading.Lock()
WRITER_THREADS = IN_USE // 2  # one per chunk that can be written directly at once


def _writer() -> ThreadPoolExecutor:
    """This process's writer threads, started on first use (never inherited: threads do not
    survive a fork, and granian forks its workers from a process that imported this)."""
    global _writers
    with _writers_lock:
        if _writers is None or _writers[0] != os.getpid():
            _writers = (os.getpid(), ThreadPoolExecutor(WRITER_THREADS,
                                                        thread_name_prefix="moorage-direct"))
        return _writers[1]
