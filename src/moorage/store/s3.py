"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph RGW, R2, ...).

Layout under the configured prefix:

    <prefix>/blobs/<algorithm>/<first two hex>/<hex>     committed blobs
    <prefix>/uploads/<id>/marker                          an upload exists (possibly empty)
    <prefix>/uploads/<id>/chunk-<start offset, 20 digits> one object per committed chunk
    <prefix>/uploads/<id>/last-<offset>-<size>            a last chunk staged at its blob key
    <prefix>/uploads/<id>/staging                         the same, while it is being written
    <prefix>/uploads/<id>/run                             the upload's run (multipart upload)
    <prefix>/uploads/<id>/run-<offset>-<size>-<p1>-<p2>   a chunk that is parts p1..p2 of it
    <prefix>/uploads/<id>/sealed                          the run was completed to be read
    <prefix>/data/<id>                                    the run, completed: a blob's bytes

Replicas share nothing but the database, this bucket and Redis, so every fact about an upload
lives in the bucket: its existence is the marker, its size the sum of its chunk objects, its
bytes those objects in offset order. Any replica can therefore take the next chunk, answer a
status request or commit, and a restarted replica has lost nothing.

Why one object per chunk: S3 objects cannot be appended to, and a chunk must be all or
nothing. A chunk is streamed as a multipart upload that only becomes visible when completed
(or as one PutObject when it is small), so an aborted or crashed chunk leaves no object and
the upload resumes at the size it had. Committing is server-side: CopyObject for a single
chunk, otherwise a multipart upload assembled with UploadPartCopy, so the bytes do not pass
through the registry again. CopyObject and CompleteMultipartUpload are atomic, which keeps
the promise that a blob is either whole under its digest or absent.

Why a last chunk can skip the copy: a server-side copy is not free, the object store reads
and rewrites every byte (SeaweedFS spent twice the CPU of a plain PUT on a push that was
copied on commit; for v3's S3 driver, which moves the same way, as much). When a chunk comes
with the digest it must have (a monolithic PUT or POST ?digest=, the way containerd and ORAS
push), `upload_last_chunk` streams it as a multipart upload created at the blob's own key and
does not complete it: the `last-` object records the multipart upload and its parts, and
`upload_commit`, after the core has checked the digest, completes it. Until then the bytes
are invisible, like any unfinished multipart upload; a mismatch or `upload_delete` aborts it.
The `staging` object names the multipart upload from its creation on, so that one a replica
left mid-stream (it died) is found and aborted by `upload_delete` too, like a chunk's.

Why a chunked upload has a run: its digest is known only at the end, so its bytes cannot be
staged at the blob key, and assembling chunk objects at commit copies every byte (SeaweedFS
spends as much CPU on that as on the push itself). Chunks of at least 5 MiB (every PATCH of
Docker, skopeo and most clients) therefore become parts of one multipart upload at
`data/<id>`, started by the first of them (the `run` record names it, so `upload_delete`
aborts it, or deletes the object once completed). Each chunk's `run-` record names its parts
and, cumulatively, the ETags of all parts so far; a failed chunk leaves no record, and its
stray parts are outnumbered or replaced. The commit, after the core checked the digest,
completes the multipart upload with the recorded parts (naming each by its ETag; a small
last chunk is added as a part copied server-side, the only bytes copied) and writes a
*pointer* at the blob key: an empty object whose metadata names `data/<id>` and the size.
Reads, sizes, presigned URLs and deletes follow it; `data/<id>` is never written again, so
a remembered pointer can at worst name an object since deleted, which a read notices. The
`run` record is deleted before the pointer is written: a commit that dies in between leaves
an object no one names, never a blob without bytes. A chunk smaller than 5 MiB ends the run
(parts but the last must be 5 MiB); chunks after it are objects, copied after the run at
commit as before. `upload_read` cannot read unfinished parts: it completes ("seals") the run
first, after which the run stands for one chunk object (a replica without the running hash
rebuilds it this way; the commit then copies only if chunks followed).

Why a run chunk's parts stream: a chunk whose length the request announced (a PATCH's
Content-Length) is cut into parts of known sizes, and each part's UploadPart starts with the
chunk's first bytes (see _PartBody), so the registry and the bucket work at once instead of
taking turns per PATCH. A body that turns out shorter or longer fails its parts mid-request;
an incomplete part is never stored, and the chunk leaves no record, as any failed chunk.

Why GC looks at `data/`: two commits of one digest at once both complete their runs and the
last pointer wins, and a commit can die between completing its run and writing its pointer;
either leaves a data object that nothing names. `sweep_unnamed` deletes those, never one a
commit in progress may still name (see there).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from moorage.store.base import StagedUploadInvalid
from moorage.store.heap import keep_big_buffers_off_the_heap

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
# S3's multipart limits: every part but the last is at least 5 MiB, a part (and a single
# CopyObject) is at most 5 GiB, and an upload has at most 10,000 parts.
MIN_PART = 5 * MiB
MAX_PART = 5 * GiB
MAX_PARTS = 10_000
# Byte range of each UploadPartCopy when a large chunk is copied into a multipart upload.
COPY_PIECE = 1 * GiB

MARKER = "marker"
CHUNK_PREFIX = "chunk-"
LAST_PREFIX = "last-"
STAGING = "staging"  # names the multipart upload of a last chunk while it is being written
RUN = "run"  # names the upload's run: one multipart upload its big chunks are parts of
RUN_PREFIX = "run-"  # a chunk whose bytes are parts of the run (cumulative part record)
SEALED = "sealed"  # the run's multipart upload was completed (its bytes are readable)
# A blob committed from a run is a pointer: an empty object at the blob key whose metadata
# names the completed object (under <prefix>/data/) that holds its bytes, and its size.
POINTER_KEY = "moorage-data"
POINTER_SIZE = "moorage-size"
# A blob smaller than this is never a pointer: pointers are written only for an upload's run,
# whose chunks are each at least MIN_PART (S3Chunk._decide). Its bytes are at its key, and
# a presigned URL for it needs no HEAD to find them. The write side must keep this true.
POINTER_MIN_SIZE = MIN_PART
_RECORDS_KEPT = 64  # the last run record written, for this many uploads (see _wrote_record)
_SCAN_KEPT_SECONDS = 5.0  # a listing by upload_size may stand for the chunk's own this long
_POINTERS_KEPT = 10_000  # digest -> data key remembered per store (immutable, see _located)
# Bytes a blob read yields at a time. Below the 1 MiB from which buffers get mappings of their
# own (_make_client: keep_big_buffers_off_the_heap): each chunk of exactly 1 MiB was a fresh
# mapping, its 256 pages faulted in and zeroed, then unmapped (8 streams in one process spent
# 0.7-1.2 s of CPU per GiB where chunks just under 1 MiB, reused from the heap, cost
# 0.36-0.45 s). And not near it: granian holds a number of body messages per response, not a
# number of bytes (8 streams of 1 MiB messages from a bare app: +52 MiB; of 256 KiB: +18 MiB),
# so a streamed blob's memory is proportional to its chunks; smaller ones cost CPU per byte.
READ_CHUNK = 512 * 1024
_URLS_KEPT = 4096  # presigned URLs kept per store (see _signed), ~0.5 KiB each
_URL_REUSE = 0.25  # a presigned URL is handed out during this fraction of its validity
_OFFSET_DIGITS = 20  # enough for any 64-bit offset, so names sort in offset order

_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
# Errors of a response body stream that a fresh ranged GET from the current position can cure.
_STREAM_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ConnectionError, TimeoutError)
# How long a streamed part waits for its next bytes before it gives up (the core aborts a
# chunk whose body stalls long before this; this only bounds a part nobody ends).
_PART_WAIT_SECONDS = 600.0
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


_SESSION_LOCK = threading.Lock()
_LOADERS: list[Any] = []


class _SlimLoader(botocore.loaders.Loader):
    """botocore's data loader, keeping only what an S3 client uses.

    A worker holds what it loads for as long as it lives: endpoints.json describes every
    AWS service in every partition (~4 MiB of Python objects, of which S3 needs one entry
    per partition), and the S3 model carries 1 MB of documentation text that only
    docstrings read. Both are pruned once, as loaded; nothing a request uses is dropped.
    """

    def load_data_with_path(self, name: str) -> Any:
        data, path = super().load_data_with_path(name)
        if name == "endpoints" and isinstance(data, dict):
            for partition in data.get("partitions", []):
                services = partition.get("services")
                if isinstance(services, dict) and "s3" in services:
                    partition["services"] = {"s3": services["s3"]}
        return data, path

    def load_service_model(self, service_name: str, type_name: str,
                           api_version: str | None = None) -> Any:
        model = super().load_service_model(service_name, type_name, api_version)
        if type_name == "service-2":
            _drop_documentation(model)
        return model


class _PlainJSONFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's JSON files parsed into plain dicts, which keep their order as OrderedDict
    does (botocore's default) in about half the memory."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            return json.loads(fp.read().decode("utf-8"))


def _drop_documentation(node: Any) -> None:
    if isinstance(node, dict):
        for key in ("documentation", "documentationUrl"):
            if key in node:  # emptied, not removed: botocore reads some of these keys
                node[key] = ""
        for value in node.values():
            _drop_documentation(value)
    elif isinstance(node, list):
        for value in node:
            _drop_documentation(value)


def _session() -> botocore.session.Session:
    """A fresh botocore session (so credentials are resolved per store, from the environment
    as it is now) that shares one data loader per process: parsing the S3 service model is
    what makes a fresh session cost ~0.5 s, and the loader caches it. boto3 is not needed for
    a client, and importing it costs a worker ~3 MiB more. Made under _SESSION_LOCK."""
    core = botocore.session.Session()
    if not _LOADERS:  # as botocore.loaders.create_loader makes its own, with data_path
        paths = core.get_config_variable("data_path")
        _LOADERS.append(_SlimLoader(extra_search_paths=[
            os.path.expanduser(os.path.expandvars(path)) for path in paths.split(os.pathsep)
        ] if paths else None, file_loader=_PlainJSONFileLoader()))
    core.register_component("data_loader", _LOADERS[0])
    # Timestamps (LastModified of every listed object, Last-Modified of every HEAD and GET)
    # stay the strings they came as: the store reads none, and dateutil's parser cost ~1 ms
    # of CPU each, an upload's listing per chunk growing with its chunks.
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=_raw_timestamp)
    return core


def _raw_timestamp(value: str) -> str:
    return value


_END = object()


def _put(channel: "queue.Queue[Any]", stop: threading.Event, entry: tuple[Any, Any]) -> bool:
    while not stop.is_set():
        try:
            channel.put(entry, timeout=1.0)
            return True
        except queue.Full:
            continue
    return False


def _read_ahead(source: Iterator[bytes], channel: "queue.Queue[Any]",
                stop: threading.Event) -> None:
    """The thread of a ReadAhead: it holds no reference to the ReadAhead itself, so a
    reader that drops it (a client that went away) lets it be collected, which stops this."""
    error: BaseException | None = None
    try:
        for chunk in source:
            if not _put(channel, stop, (None, chunk)):
                return
    except BaseException as exc:  # handed to the reader, raised there
        error = exc
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    _put(channel, stop, (_END, error))


class ReadAhead(Iterator[bytes]):
    """An iterator's items fetched by a thread of their own, up to `depth` ahead.

    A blob GET that streams through the registry alternated between reading a chunk from the
    bucket and sending it on; with the next chunks fetched meanwhile, both legs run at once.
    The thread owns the source (a generator may only be closed by the thread running it), so
    close() (or dropping the iterator, e.g. when the client went away) asks it to stop; it
    does within a second, closing the source and with it the bucket's response.
    """

    def __init__(self, source: Iterator[bytes], depth: int) -> None:
        self._source: Iterator[bytes] | None = source
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._finished = False

    def __next__(self) -> bytes:
        if self._finished:
            raise StopIteration
        if self._source is not None:
            source, self._source = self._source, None
            threading.Thread(target=_read_ahead, args=(source, self._queue, self._stop),
                             name="moorage-s3-read", daemon=True).start()
        kind, item = self._queue.get()
        if kind is _END:
            self._finished = True
            if item is not None:
                raise item
            raise StopIteration
        return item  # type: ignore[no-any-return]

    def next_nowait(self, default: Any, empty: Any) -> Any:
        """The next item if one is ready (`default` at the end, `empty` if none is ready
        yet), without waiting: a caller on an event loop takes ready chunks without a hop to
        a thread, and only waits (in a thread) for one that is not."""
        if self._finished:
            return default
        if self._source is not None:  # not started yet: __next__ starts it
            return empty
        try:
            kind, item = self._queue.get_nowait()
        except queue.Empty:
            return empty
        if kind is _END:
            self._finished = True
            if item is not None:
                raise item
            return default
        return item

    def close(self) -> None:
        self._stop.set()
        self._finished = True
        while True:  # a thread waiting to hand over a chunk sees the stop at once
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        source, self._source = self._source, None
        if source is not None:  # never started: close the source here
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def __del__(self) -> None:
        self._stop.set()


class _PointerFound(Exception):
    """The blob key holds a pointer: the bytes are in the data object `key`."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class S3StoreError(RuntimeError):
    """The bucket holds something the store cannot make sense of (e.g. a gap between chunks)."""


class S3UploadInconsistent(S3StoreError, StagedUploadInvalid):
    """An upload's chunk objects do not follow one another: not to be trusted or committed."""


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _modified_before(value: Any, moment: float) -> bool:
    """Whether a listed object's LastModified (left a string, see _session) is before
    `moment`; one that cannot be read is taken as recent."""
    if isinstance(value, datetime):
        stamp = value
    else:
        try:
            stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return False
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp() < moment


def _chunk_name(offset: int) -> str:
    return f"{CHUNK_PREFIX}{offset:0{_OFFSET_DIGITS}d}"


def _last_name(offset: int, size: int) -> str:
    return f"{LAST_PREFIX}{offset:0{_OFFSET_DIGITS}d}-{size:0{_OFFSET_DIGITS}d}"


@dataclass(frozen=True)
class _Chunk:
    key: str
    offset: int
    size: int
    staged: bool = False  # a `last-` record: the bytes are an unfinished multipart upload
    # a `run-` record: the bytes are parts first_part..last_part of the run's multipart upload
    run: bool = False
    first_part: int = 0
    last_part: int = 0


@dataclass(frozen=True)
class _Upload:
    """What a listing of an upload's prefix shows: its chunks in offset order, whether a run
    was started (the `run` record) and whether its multipart upload was completed."""

    chunks: list[_Chunk]
    has_run: bool
    sealed: bool


@dataclass
class _Run:
    """The run a chunk joins: its multipart upload and the ETags of the parts recorded."""

    key: str
    upload_id: str
    etags: list[str]


def _run_name(offset: int, size: int, first: int, last: int) -> str:
    return (f"{RUN_PREFIX}{offset:0{_OFFSET_DIGITS}d}-{size:0{_OFFSET_DIGITS}d}"
            f"-{first:05d}-{last:05d}")


@dataclass(frozen=True)
class CopyPart:
    """A part copied server-side (UploadPartCopy) from bytes [start, end) of one chunk."""

    chunk: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class DataPart:
    """A part whose bytes the registry reads, from one or more chunks, and uploads."""

    pieces: tuple[tuple[int, int, int], ...]  # (chunk, start, end)

    @property
    def size(self) -> int:
        return sum(end - start for _, start, end in self.pieces)


def plan_parts(sizes: list[int], part_size: int = 8 * MiB) -> list[CopyPart | DataPart]:
    """The parts of a multipart upload that concatenates chunks of these sizes.

    S3 wants every part but the last to hold at least 5 MiB and none more than 5 GiB. A run of
    a chunk is copied server-side whenever it can form such a part (at least MIN_PART, or
    anything at the very end); bytes that cannot (small chunks, and the head of a chunk that
    follows them) are read and gathered into parts of at least MIN_PART. When the chunk after
    a gathered remainder is large, only enough of it is read to complete a minimal part, so
    the rest of it can still be copied; otherwise gathered parts grow to part_size, which
    keeps uploads of many tiny chunks within the 10,000-part limit. Valid for any sizes.
    """
    parts: list[CopyPart | DataPart] = []
    gathered: list[tuple[int, int, int]] = []
    buffered = 0
    for index, size in enumerate(sizes):
        last = index == len(sizes) - 1
        pos = 0
        while pos < size:
            remaining = size - pos
            if not buffered and (remaining >= MIN_PART or last):
                # Big runs go in 1 GiB ranges (under the 5 GiB cap, copied in parallel);
                # the cut leaves more than MIN_PART behind, so the rest is a valid part too.
                piece = COPY_PIECE if remaining > COPY_PIECE + MIN_PART else remaining
                parts.append(CopyPart(index, pos, pos + piece))
                pos += piece
                continue
            need = MIN_PART - buffered
            if remaining > need and (last or remaining - need >= MIN_PART):
                take = need  # complete a minimal part; the rest of this chunk is copied
            else:
                take = min(remaining, part_size - buffered)
            gathered.append((index, pos, pos + take))
            buffered += take
            pos += take
            if buffered >= MIN_PART:
                parts.append(DataPart(tuple(gathered)))
                gathered, buffered = [], 0
    if gathered:
        parts.append(DataPart(tuple(gathered)))
    if len(parts) > MAX_PARTS:
        raise S3StoreError(f"the blob would need {len(parts)} parts; S3 allows {MAX_PARTS}")
    return parts


class _PartAborted(Exception):
    """The chunk a streamed part belongs to failed: the part's request must not finish."""


class _PartBody:
    """The body of one part sent to the bucket while the chunk's bytes still arrive.

    S3's UploadPart needs the part's length before its first byte, which a PATCH announces
    (Content-Length), so its bytes need not be gathered whole first: the core's thread feeds
    them here as they come, the part's own thread reads them into the request. Feeding never
    blocks (a part holds at most its own size, as the gathered chunk did), so no thread ever
    waits on one that waits on it. A chunk that fails (a body shorter or longer than
    announced, a client gone) fails its parts: their requests break off before their last
    byte, and an incomplete part is never stored. Over plain http the MD5 of what was sent
    is kept, to check against the ETag the bucket answers (the payload is not signed; see
    S3BlobStore).
    """

    def __init__(self, size: int, check: bool = True) -> None:
        self.size = size
        # what was sent, to compare with the ETag; not needed over TLS, which checks itself
        self.md5 = hashlib.md5(usedforsecurity=False) if check else None
        self._chunks: deque[memoryview] = deque()
        self._fed = 0
        self._sent = 0
        self._failed: BaseException | None = None
        self._cond = threading.Condition()

    @property
    def room(self) -> int:
        return self.size - self._fed

    def feed(self, data: memoryview) -> None:
        with self._cond:
            if self._failed is not None:
                raise _PartAborted("the part's request failed") from self._failed
            if len(data) > self.size - self._fed:
                raise S3StoreError("more bytes than the part holds")
            self._chunks.append(data)
            self._fed += len(data)
            self._cond.notify()

    def fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._failed is None:
                self._failed = exc
            self._chunks.clear()
            self._cond.notify_all()

    def read(self, amount: int = -1) -> memoryview | bytes:
        """The next bytes fed, as they were fed: a whole piece, whatever `amount` asks.
        Its readers (urllib3's body_to_chunks, then socket.sendall) send what they get; a
        piece sent whole, without a copy, spared most of the cost of 16 KiB reads."""
        with self._cond:
            while not self._chunks:
                if self._failed is not None:
                    raise _PartAborted("the chunk failed") from self._failed
                if self._sent >= self.size:
                    return b""
                if not self._cond.wait(timeout=_PART_WAIT_SECONDS):
                    raise TimeoutError("no bytes for the part")
            head = self._chunks.popleft()
            self._sent += len(head)
        if self.md5 is not None:
            self.md5.update(head)
        return head


def _run_part(future: "Future[dict[str, Any]]", store: "S3BlobStore", key: str,
              upload_id: str, number: int, body: _PartBody) -> None:
    """A streamed part's thread (one of its own, not the pool's: a part waits for bytes that
    another thread feeds, and pool threads waiting so could starve the parts fed already)."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(store._stream_part(key, upload_id, number, body))
    except BaseException as exc:
        body.fail(exc)
        future.set_exception(exc)


class S3Chunk:
    """One chunk of an upload: invisible until commit(), gone without trace after abort().

    Bytes are buffered until a full part (write_batch) is there; only then is a multipart
    upload started, so the many small chunks some clients send cost one PutObject each.
    Parts are uploaded on the store's thread pool with at most `max_inflight` per chunk, so
    the next batch is received and hashed while the previous one travels, and memory stays
    bounded at (max_inflight + 1) parts per chunk, plus MIN_PART when it joins a run.

    A chunk of at least MIN_PART whose upload holds nothing but run chunks so far joins the
    upload's run (see S3BlobStore): its bytes become the next parts of the run's multipart
    upload, every one at least MIN_PART, and its commit is the `run-` record that names them.
    """

    def __init__(self, store: "S3BlobStore", key: str, max_inflight: int = 2,
                 last: tuple[str, str] | None = None, upload_id: str | None = None,
                 length: int | None = None) -> None:
        """With `last` = (the upload's prefix, the blob key), a chunk big enough for a
        multipart upload is staged at the blob key and left unfinished for upload_commit
        (see the module's docstring); a small one is a chunk object as usual. With
        `upload_id`, a big chunk may join the upload's run instead; with its `length` known
        as well (the PATCH's Content-Length), its parts are streamed to the bucket as its
        bytes arrive (see _PartBody), instead of each part being gathered first."""
        self.store = store
        self.key = key
        self.max_inflight = max_inflight
        self._last = last
        self._mpu_key = last[1] if last else key
        self._offset = int(key.rpartition(CHUNK_PREFIX)[2])
        self._written = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._done = False
        self._for_upload = upload_id if last is None else None
        self._decided = self._for_upload is None  # whether the chunk joins a run is known
        self._in_hand = False  # decided at commit, with the whole chunk still in memory
        self._run: _Run | None = None
        self._length = length
        # streamed parts: the sizes of those still to start, and the one being fed
        self._plan: list[int] | None = None
        self._feeding: _PartBody | None = None
        self._bodies: list[_PartBody] = []

    # -- ChunkWriter -----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self.write_parts([data])

    def write_parts(self, parts: list[bytes]) -> None:
        """write() of these buffers, one after the other, without joining them first."""
        if self._done:
            raise S3StoreError("write after commit or abort")
        size = sum(len(part) for part in parts)
        if self._length is not None and self._written + size > self._length:
            raise S3StoreError(f"the chunk announced {self._length} bytes and got more")
        if not size:
            return
        if not self._decided and self._streamable():
            self._decide(recent=True)
            if self._run is not None:
                self._plan = self._part_sizes(self._length or 0)
        if self._plan is not None:
            for part in parts:
                self._feed(memoryview(part))
            self._written += size
            return
        for part in parts:
            self._buffer(part)

    def _streamable(self) -> bool:
        """Whether the chunk's parts can be streamed: its length is known and makes parts
        of at least MIN_PART (a smaller chunk ends the run anyway)."""
        return self._length is not None and self._length >= MIN_PART

    def _part_sizes(self, length: int) -> list[int] | None:
        """The chunk's parts: part_size each, the last one what remains with up to one
        part_size more (so that it is at least MIN_PART too); None if the run has no room
        for them."""
        assert self._run is not None
        count = max(1, length // self.store.part_size)
        sizes = [self.store.part_size] * (count - 1) + [
            length - self.store.part_size * (count - 1)]
        if sizes[-1] > MAX_PART:  # (under 2 * part_size)
            return None
        if len(self._run.etags) + len(sizes) > MAX_PARTS:
            return None
        return sizes

    def _feed(self, data: memoryview) -> None:
        while len(data):
            if self._feeding is None or not self._feeding.room:
                assert self._plan
                self._start_streamed_part(self._plan.pop(0))
            assert self._feeding is not None
            take = min(len(data), self._feeding.room)
            self._feeding.feed(data[:take])
            data = data[take:]

    def _start_streamed_part(self, size: int) -> None:
        assert self._run is not None and self._upload_id is not None
        unfinished = [f for f in self._parts if not f.done()]
        for future in unfinished[:max(0, len(unfinished) - self.max_inflight + 1)]:
            future.result()  # every one of these was fed whole: none waits on this thread
        for future in self._parts:
            if future.done() and future.exception() is not None:
                future.result()
        number = len(self._parts) + 1 + len(self._run.etags)
        body = _PartBody(size, check=self.store.check_streamed_parts)
        future: Future[dict[str, Any]] = Future()
        threading.Thread(target=_run_part, name="moorage-s3-part", daemon=True, args=(
            future, self.store, self._mpu_key, self._upload_id, number, body)).start()
        self._feeding = body
        self._bodies.append(body)
        self._parts.append(future)

    def _buffer(self, data: bytes) -> None:
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        self._written += len(data)
        part_size = self.store.part_size
        # A run's parts must all be at least MIN_PART, the chunk's last one included: keep
        # that much back until commit.
        keep = MIN_PART if self._run is not None or not self._decided else 0
        if self._pending_size < part_size + keep:
            return
        if not self._decided:
            self._decide(recent=self._streamable())
            keep = MIN_PART if self._run is not None else 0
        joined = b"".join(self._pending)
        whole = (len(joined) - keep) // part_size * part_size
        view = memoryview(joined)
        for start in range(0, whole, part_size):
            self._send_part(view[start:start + part_size])
        rest = joined[whole:]
        self._pending = [rest] if rest else []
        self._pending_size = len(rest)

    def commit(self) -> None:
        if self._done:
            raise S3StoreError("chunk already committed or aborted")
        self._done = True
        s3, bucket = self.store.client, self.store.bucket
        if not self._decided and self._pending_size >= MIN_PART:
            self._decide(recent=True, at_commit=True)
        data = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        try:
            if self._plan is not None:
                if self._written != self._length or self._plan or (
                        self._feeding is not None and self._feeding.room):
                    raise S3StoreError(f"the chunk announced {self._length} bytes and got "
                                       f"{self._written}")
                self._commit_run(b"")
                return
            if self._run is not None:
                self._commit_run(data)
                return
            if self._upload_id is None:
                if data:  # an empty chunk adds nothing, so it leaves no object either
                    s3.put_object(Bucket=bucket, Key=self.key, Body=data)
                return
            if data:
                self._send_part(memoryview(data), wait=False)
            parts = [future.result() for future in self._parts]
            if self._last is not None:
                # Recorded, not completed: upload_commit completes it once the digest is
                # checked. The record names the size, so a listing knows it without a read.
                record = {"key": self._mpu_key, "upload_id": self._upload_id, "parts": parts}
                s3.put_object(Bucket=bucket,
                              Key=self._last[0] + _last_name(self._offset, self._written),
                              Body=json.dumps(record).encode())
                return
            s3.complete_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self._upload_id,
                                         MultipartUpload={"Parts": parts})
        except BaseException:
            self._fail_bodies()
            self._abort_upload()
            raise

    def _fail_bodies(self) -> None:
        for body in self._bodies:  # their requests break off before their last byte
            body.fail(_PartAborted("the chunk was aborted"))

    def abort(self) -> None:
        """Best effort and never raises: the core calls it while another error propagates,
        and an unfinished multipart upload is invisible anyway (upload_delete sweeps it)."""
        self._done = True
        self._pending, self._pending_size = [], 0
        self._fail_bodies()
        self._abort_upload()

    # -- internals -------------------------------------------------------------------------
    def _decide(self, recent: bool = False, at_commit: bool = False) -> None:
        """Join the upload's run if it can take this chunk (nothing but run chunks so far).

        `recent`: the listing the core just made (upload_size, under the upload's lock) may
        stand for a new one; a run sealed since by this process (upload_read, to rebuild the
        hash) drops it. At commit the whole chunk is in hand (one part; a PATCH of 5 MiB):
        if another worker sealed the run meanwhile anyway (a lock that expired), the part
        finds its multipart upload gone, and the chunk is stored as an ordinary chunk object
        instead (see _commit_run); a streamed chunk fails, and the upload stays as it was."""
        self._decided = True
        self._in_hand = at_commit
        assert self._for_upload is not None
        self._run = self.store._join_run(self._for_upload, self._offset, recent=recent)
        if self._run is not None:
            self._mpu_key = self._run.key
            self._upload_id = self._run.upload_id

    def _commit_run(self, data: bytes) -> None:
        """The chunk's last part (at least MIN_PART: write() kept it back), then its record,
        which carries the ETags of every part of the run so far: one read tells a commit."""
        assert self._run is not None
        if data:
            self._send_part(data, wait=False)
        first = len(self._run.etags) + 1
        try:
            etags = self._run.etags + [future.result()["ETag"] for future in self._parts]
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND and self._plan is not None:
                raise S3UploadInconsistent("the upload's run was completed by another "
                                           "request meanwhile; send the chunk again") from None
            if not (self._in_hand and _error_code(exc) in _NOT_FOUND):
                raise
            log.info("the run of %s was sealed meanwhile: storing the chunk as an object",
                     self.key)
            self._run, self._upload_id, self._parts = None, None, []
            self.store.client.put_object(Bucket=self.store.bucket, Key=self.key, Body=data)
            return
        record = {"key": self._run.key, "upload_id": self._run.upload_id, "etags": etags}
        key = (self.store.upload_prefix(self._for_upload or "")
               + _run_name(self._offset, self._written, first, len(etags)))
        self.store.client.put_object(Bucket=self.store.bucket, Key=key,
                                     Body=json.dumps(record).encode())
        self.store._wrote_record(self._for_upload or "", key, record)

    def _send_part(self, data: memoryview | bytes, wait: bool = True) -> None:
        if self._upload_id is None:
            self._upload_id = self.store.client.create_multipart_upload(
                Bucket=self.store.bucket, Key=self._mpu_key)["UploadId"]
            if self._last is not None:
                self.store.client.put_object(
                    Bucket=self.store.bucket, Key=self._last[0] + STAGING,
                    Body=json.dumps({"key": self._mpu_key, "upload_id": self._upload_id}).encode())
        number = len(self._parts) + 1 + (len(self._run.etags) if self._run is not None else 0)
        if number > MAX_PARTS:
            raise S3StoreError(f"a chunk may have at most {MAX_PARTS} parts of "
                               f"{self.store.part_size} bytes")
        if wait:
            # Keep at most max_inflight parts travelling; surface the first failure early.
            unfinished = [f for f in self._parts if not f.done()]
            for future in unfinished[:max(0, len(unfinished) - self.max_inflight + 1)]:
                future.result()
            for future in self._parts:
                if future.done() and future.exception() is not None:
                    future.result()
        self._parts.append(self.store.pool.submit(
            self.store._upload_part, self._mpu_key, self._upload_id, number, data))

    def _abort_upload(self) -> None:
        if self._upload_id is None:
            return
        for future in self._parts:  # let travelling parts land before the upload goes
            try:
                future.result()
            except BaseException:
                pass
        self._parts = []
        if self._run is not None:
            # The run's multipart upload holds the parts of earlier chunks: it stays. This
            # chunk's parts are not in any record; the next chunk overwrites or outnumbers
            # them, and completing the run names only recorded parts.
            return
        try:
            self.store.client.abort_multipart_upload(
                Bucket=self.store.bucket, Key=self._mpu_key, UploadId=self._upload_id)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not abort multipart upload of %s: %s", self._mpu_key, exc)
        self._upload_id = None


class S3BlobStore:
    """The BlobStore protocol on S3; safe to share between threads (boto3 clients are)."""

    # One S3 part per batch the core hands over: 8 MiB is above S3's 5 MiB minimum and
    # allows 80 GiB per chunk within the 10,000-part limit.
    write_batch = 8 * MiB
    # Chunks of a blob read held ready ahead of the reader (memory: this many per stream).
    read_ahead = 4  # of READ_CHUNK: 2 MiB

    def __init__(self, bucket: str, prefix: str = "", *, endpoint: str | None = None,
                 region: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None, redirect: bool = False,
                 public_endpoint: str | None = None, redirect_expires: int = 300,
                 part_size: int = 8 * MiB, max_pool: int = 32) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"part_size must be at least {MIN_PART}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.redirect = redirect
        self.redirect_expires = redirect_expires
        self.part_size = part_size
        # The core hands bytes over a MiB at a time: a streamed part (S3Chunk) sends them on
        # as they come; any other chunk gathers them into parts of part_size itself.
        self.write_batch = min(MiB, part_size)
        self.client = self._make_client(endpoint, region, access_key, secret_key, max_pool)
        # Streamed parts (see _PartBody) go through a client that does not sign payloads:
        # SigV4 puts the body's SHA-256 in a header sent before the body, which a body still
        # arriving cannot have (botocore would read it whole first). Over plain http, what
        # the bucket stored is checked instead against the MD5 of what was sent, when its
        # ETag is one (AWS, SeaweedFS, MinIO, Ceph); over https, TLS guards the bytes.
        self._streamer = self._make_client(endpoint, region, access_key, secret_key, max_pool,
                                           sign_payload=False)
        self.check_streamed_parts = not str(self._streamer.meta.endpoint_url).startswith(
            "https:")
        # A presigned URL embeds the host it was signed for, so a store reached on an
        # internal address presigns with a client pointed at the public one.
        self._presigner = (self._make_client(public_endpoint, region, access_key, secret_key, 2)
                           if public_endpoint else self.client)
        self.pool = ThreadPoolExecutor(max_workers=max(2, max_pool // 2),
                                       thread_name_prefix="moorage-s3")
        self._pointers: dict[str, str] = {}  # digest -> data key (see _remember_pointer)
        self._records: dict[str, tuple[str, dict[str, Any]]] = {}  # see _wrote_record
        self._scans: dict[str, tuple[float, _Upload]] = {}  # see _recent_scan
        self._urls: dict[tuple[str, int], tuple[float, str]] = {}  # see _signed
        self._pointers_lock = threading.Lock()

    @staticmethod
    def _make_client(endpoint: str | None, region: str | None, access_key: str | None,
                     secret_key: str | None, max_pool: int, sign_payload: bool = True) -> Any:
        s3: dict[str, Any] = {
            # Path style unless talking to AWS itself: most self-hosted stores have no
            # wildcard DNS for virtual-host buckets.
            "addressing_style": "path" if endpoint else "auto"}
        if not sign_payload:
            s3["payload_signing_enabled"] = False
        config = Config(
            signature_version="s3v4",
            s3=s3,
            # a streamed body cannot be sent again: its request fails, and with it the chunk
            retries={"mode": "standard", "max_attempts": 4 if sign_payload else 1},
            max_pool_connections=max_pool,
            connect_timeout=10,
            read_timeout=120,
            # boto3 >= 1.36 adds CRC checksums to every upload by default; several
            # S3-compatible stores reject or mishandle them. Bodies stay covered by SigV4's
            # payload hash over http and by TLS over https, and the core checks the digest.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        with _SESSION_LOCK:
            # parts, chunks and read-ahead buffers (1 MiB and up) go back to the system when
            # freed: pushes of 3 × 64 MiB kept 26-28 MiB each in the threads' heaps before
            keep_big_buffers_off_the_heap(MiB)
            return _session().create_client(
                "s3", endpoint_url=endpoint or None, region_name=region or None,
                aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
                config=config)

    def close(self) -> None:
        """Let parts in flight land, then release the connection pools."""
        self.pool.shutdown(wait=True)
        self.client.close()
        self._streamer.close()
        if self._presigner is not self.client:
            self._presigner.close()

    def check(self) -> None:
        """Fail fast at start-up when the bucket is missing or the keys are wrong."""
        self.client.head_bucket(Bucket=self.bucket)

    # -- keys --------------------------------------------------------------------------
    def _key(self, rest: str) -> str:
        return f"{self.prefix}/{rest}" if self.prefix else rest

    def blob_key(self, digest: str) -> str:
        algorithm, _, hexpart = digest.partition(":")
        return self._key(f"blobs/{algorithm}/{hexpart[:2]}/{hexpart}")

    def upload_prefix(self, upload_id: str) -> str:
        return self._key(f"uploads/{upload_id}/")

    # -- blobs -------------------------------------------------------------------------
    def local_path(self, digest: str) -> Path | None:
        return None

    def data_key(self, upload_id: str) -> str:
        """Where the run of an upload is completed: the bytes of the blob it becomes."""
        return self._key(f"data/{upload_id}")

    def size(self, digest: str) -> int | None:
        located = self._locate(digest)
        return None if located is None else located[1]

    def _locate(self, digest: str) -> tuple[str, int] | None:
        """(the key that holds the blob's bytes, its size), or None if there is no blob: the
        blob key itself, or the data object a pointer there names."""
        key = self.blob_key(digest)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                self._forget_pointer(digest)
                return None
            raise
        meta = head.get("Metadata") or {}
        if POINTER_KEY in meta:
            self._remember_pointer(digest, meta[POINTER_KEY])
            return meta[POINTER_KEY], int(meta[POINTER_SIZE])
        return key, int(head["ContentLength"])

    def _remember_pointer(self, digest: str, data_key: str) -> None:
        """A pointer names a data object that never changes (a fresh key per upload, written
        once, after the digest was checked), so what it names may be kept: at worst the
        object is gone (the blob was deleted), which a read notices and looks again."""
        with self._pointers_lock:
            if digest not in self._pointers and len(self._pointers) >= _POINTERS_KEPT:
                self._pointers.pop(next(iter(self._pointers)))
            self._pointers[digest] = data_key

    def _forget_pointer(self, digest: str) -> None:
        with self._pointers_lock:
            self._pointers.pop(digest, None)

    def read(self, digest: str, start: int = 0, end: int | None = None,
             chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """Bytes [start, end); more than one chunk's worth is read ahead (ReadAhead), so the
        next chunk comes from the bucket while the caller sends the last one on."""
        chunks = self._blob_chunks(digest, start, end, chunk_size)
        if end is not None and end - start <= chunk_size:
            return chunks
        return ReadAhead(chunks, self.read_ahead)

    def _blob_chunks(self, digest: str, start: int, end: int | None,
                     chunk_size: int) -> Iterator[bytes]:
        """The blob's bytes from wherever they are: a pointer found at the blob key (or
        remembered) sends the read to its data object, without a HEAD beforehand."""
        blob_key = self.blob_key(digest)
        with self._pointers_lock:
            key = self._pointers.get(digest, blob_key)
        for _ in range(3):
            sent = False
            try:
                for data in self._stream(key, start, end, chunk_size,
                                         at_blob_key=key == blob_key):
                    sent = True
                    yield data
                return
            except _PointerFound as found:
                self._remember_pointer(digest, found.key)
                key = found.key
            except FileNotFoundError:
                if sent or key == blob_key:
                    raise
                self._forget_pointer(digest)  # its data object went: look at the blob key
                key = blob_key
        raise S3StoreError(f"the blob {digest} keeps changing while being read")

    def put(self, digest: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.blob_key(digest), Body=data)

    def delete(self, digest: str) -> None:
        """The blob key first (the blob is gone at once), then a pointer's data object."""
        located = self._locate(digest)
        key = self.blob_key(digest)
        self.client.delete_object(Bucket=self.bucket, Key=key)
        self._forget_pointer(digest)
        if located is not None and located[0] != key:
            self.client.delete_object(Bucket=self.bucket, Key=located[0])

    def presigned_url(self, digest: str, expires: int | None = None, *,
                      size: int | None = None) -> str | None:
        """A URL anyone may GET (with Range) for `expires` seconds, for 307 redirects.

        A pointer's data object is presigned, not the pointer. With `size` (the blob's size
        as the database records it) below POINTER_MIN_SIZE the blob cannot be a pointer, so
        its key is signed without asking the bucket; otherwise one HEAD finds where the
        bytes are (no remembered pointer is trusted here: a stale one would send the client
        to an object that was deleted; the web layer keeps answers until the next commit,
        cache/redirects.py). Signing is local arithmetic, and a URL signed for a key is
        reused for a quarter of its expiry (_signed).
        """
        if size is not None and size < POINTER_MIN_SIZE:
            key = self.blob_key(digest)
        else:
            located = self._locate(digest)
            key = located[0] if located is not None else self.blob_key(digest)
        return self._signed(key, expires or self.redirect_expires)

    def _signed(self, key: str, expires: int) -> str:
        """A presigned GET of `key`, signed at most expires/4 seconds ago. A URL only says
        which key to GET, and which key holds a blob's bytes is decided afresh by the
        caller, so an earlier URL for the same key is as good as a fresh one while it has
        most of its validity left."""
        now = time.time()
        with self._pointers_lock:
            kept = self._urls.get((key, expires))
        if kept is not None and 0 <= now - kept[0] < expires * _URL_REUSE:
            return kept[1]
        url = str(self._presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires))
        with self._pointers_lock:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            self._urls[(key, expires)] = (now, url)
        return url

    # -- uploads -----------------------------------------------------------------------
    def upload_create(self, upload_id: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.upload_prefix(upload_id) + MARKER,
                               Body=b"")

    def upload_size(self, upload_id: str) -> int | None:
        upload = self._scan(upload_id)
        if upload is None:
            return None
        with self._pointers_lock:  # for the chunk the core is about to write (_recent_scan)
            self._scans.pop(upload_id, None)
            if len(self._scans) >= _RECORDS_KEPT:
                self._scans.pop(next(iter(self._scans)))
            self._scans[upload_id] = (time.monotonic(), upload)
        return sum(chunk.size for chunk in upload.chunks)

    def _recent_scan(self, upload_id: str, offset: int) -> _Upload | None:
        """The listing upload_size made for this chunk a moment ago (the core asks the size,
        then writes the chunk, under the upload's lock), if it shows a run the chunk may
        join; else None, and the caller lists again. Used once."""
        with self._pointers_lock:
            kept = self._scans.pop(upload_id, None)
        if kept is None or time.monotonic() - kept[0] > _SCAN_KEPT_SECONDS:
            return None
        upload = kept[1]
        if (upload.sealed or not upload.chunks or not all(c.run for c in upload.chunks)
                or sum(c.size for c in upload.chunks) != offset):
            return None
        return upload

    def upload_chunk(self, upload_id: str, offset: int, length: int | None = None) -> S3Chunk:
        """A writer for the chunk at `offset`, which must be the upload's current size (the
        core checks under its lock); nothing is sent before the first full part, unless the
        chunk's `length` is known and it joins the run: then its parts stream as it comes."""
        return S3Chunk(self, self.upload_prefix(upload_id) + _chunk_name(offset),
                       upload_id=upload_id, length=length)

    def upload_last_chunk(self, upload_id: str, offset: int, digest: str) -> S3Chunk:
        """A writer for the upload's last chunk, which must make the blob `digest`: staged at
        the blob's key and completed by upload_commit (no copy), if it is the whole upload.

        Only a chunk at offset 0 qualifies: after other chunks its parts would have to follow
        parts copied from them, and their sizes cannot always make valid parts."""
        if offset != 0:
            return self.upload_chunk(upload_id, offset)
        prefix = self.upload_prefix(upload_id)
        return S3Chunk(self, prefix + _chunk_name(offset), last=(prefix, self.blob_key(digest)))

    def upload_read(self, upload_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        upload = self._scan(upload_id)
        if upload is None:
            raise FileNotFoundError(f"upload {upload_id} does not exist")
        return self._read_chunks(self._readable(upload_id, upload), chunk_size)

    def _readable(self, upload_id: str, upload: _Upload) -> list[_Chunk]:
        """The upload's chunks as objects that can be read: its run, if it has one, is
        sealed (its multipart upload completed at the data key) and stands for one chunk.
        Later chunks no longer join it, so a commit then copies them after it."""
        runs = [chunk for chunk in upload.chunks if chunk.run]
        if not runs:
            return upload.chunks
        record = self._run_record(upload_id, runs[-1].key)
        run_size = sum(chunk.size for chunk in runs)
        if not upload.sealed:
            with self._pointers_lock:  # its listing no longer says where the next chunk goes
                self._scans.pop(upload_id, None)
            self._complete_run(record, runs[-1].last_part, [], run_size)
            self.client.put_object(Bucket=self.bucket, Body=b"",
                                   Key=self.upload_prefix(upload_id) + SEALED)
        return [_Chunk(str(record["key"]), 0, run_size), *upload.chunks[len(runs):]]

    def _read_chunks(self, listing: list[_Chunk], chunk_size: int) -> Iterator[bytes]:
        if any(chunk.staged for chunk in listing):
            # parts of an unfinished multipart upload cannot be read back
            raise S3UploadInconsistent("the upload's last chunk is staged for its digest "
                                       "and cannot be read back before commit")
        for chunk in listing:
            yield from self._stream(chunk.key, 0, chunk.size, chunk_size)

    def upload_commit(self, upload_id: str, digest: str, *, size: int | None = None) -> None:
        upload = self._scan(upload_id)
        if upload is None:
            raise FileNotFoundError(f"upload {upload_id} does not exist")
        listing = upload.chunks
        staged = sum(c.size for c in listing)
        if size is not None and staged != size:
            raise S3UploadInconsistent(f"upload {upload_id} holds {staged} bytes, not the "
                                       f"{size} that were verified")
        target = self.blob_key(digest)
        done = [self.upload_prefix(upload_id) + MARKER, *(c.key for c in listing)]
        if listing and listing[-1].staged:
            self._complete_staged(listing, digest, staged)
            done.append(self.upload_prefix(upload_id) + STAGING)
        elif any(chunk.run for chunk in listing):
            self._commit_run(upload_id, upload, digest, staged)
            done += [self.upload_prefix(upload_id) + RUN, self.upload_prefix(upload_id) + SEALED]
        elif self.size(digest) != staged:
            self._assemble(listing, target)
        self._delete_keys(done)
        with self._pointers_lock:
            self._records.pop(upload_id, None)

    # -- the run of an upload -------------------------------------------------------------
    def _record(self, key: str) -> dict[str, Any]:
        """A JSON record of the upload (`run`, `run-`, `last-`, `staging`); {} if not one."""
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            record = json.loads(body.read(4 * MiB))
        finally:
            body.close()
        return record if isinstance(record, dict) else {}

    def _wrote_record(self, upload_id: str, key: str, record: dict[str, Any]) -> None:
        """Keep the run record this process just wrote: the next chunk, usually on the same
        connection and so the same worker, reads it from here. A record is never rewritten
        (its name says its offset, size and parts), so a kept one is never stale."""
        with self._pointers_lock:
            self._records.pop(upload_id, None)
            if len(self._records) >= _RECORDS_KEPT:
                self._records.pop(next(iter(self._records)))
            self._records[upload_id] = (key, record)

    def _run_record(self, upload_id: str, key: str) -> dict[str, Any]:
        with self._pointers_lock:
            kept = self._records.get(upload_id)
        if kept is not None and kept[0] == key:
            return kept[1]
        return self._record(key)

    def _join_run(self, upload_id: str, offset: int, recent: bool = False) -> _Run | None:
        """The run the chunk at `offset` may join, started if need be; None when it must be
        an ordinary chunk object: the upload holds other chunks, its run was sealed, or the
        run has used half the parts S3 allows (the rest stays for the chunks after).
        `recent`: the listing upload_size just made may do (see S3Chunk._decide)."""
        upload = (self._recent_scan(upload_id, offset) if recent else None) or self._scan(
            upload_id)
        if upload is None or upload.sealed or any(not chunk.run for chunk in upload.chunks):
            return None
        if sum(chunk.size for chunk in upload.chunks) != offset:
            return None  # another writer got in first: the listing will refuse the upload
        prefix = self.upload_prefix(upload_id)
        if upload.chunks:
            record = self._run_record(upload_id, upload.chunks[-1].key)
            etags = record.get("etags")
            if (not isinstance(etags, list) or len(etags) != upload.chunks[-1].last_part
                    or not isinstance(record.get("key"), str)):
                raise S3UploadInconsistent(f"upload {upload_id}: unreadable run record")
            if len(etags) >= MAX_PARTS // 2:
                return None
            return _Run(record["key"], str(record["upload_id"]), [str(e) for e in etags])
        if upload.has_run:  # started by a chunk that did not make it: its parts get replaced
            record = self._record(prefix + RUN)
            return _Run(str(record["key"]), str(record["upload_id"]), [])
        key = self.data_key(upload_id)
        mpu = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        self.client.put_object(Bucket=self.bucket, Key=prefix + RUN,
                               Body=json.dumps({"key": key, "upload_id": mpu}).encode())
        return _Run(key, mpu, [])

    def _complete_run(self, record: dict[str, Any], last_part: int,
                      extra: list[dict[str, Any]], size: int) -> None:
        """Complete the run's multipart upload with its recorded parts (and `extra`, parts
        added at the end), naming each part's ETag, so a part replaced since it was recorded
        fails the completion. One completed before (a commit that died after it) counts as
        done when the data object has the size expected."""
        etags = record.get("etags")
        if not isinstance(etags, list) or len(etags) != last_part:
            raise S3UploadInconsistent(f"the run record of {record.get('key')} does not name "
                                       f"{last_part} parts")
        parts = [{"ETag": etag, "PartNumber": number}
                 for number, etag in enumerate(etags, 1)] + extra
        try:
            self._check_parts(record, parts)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=record["key"], UploadId=record["upload_id"],
                MultipartUpload={"Parts": parts})
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND and self._head_size(record["key"]) == size:
                return
            if _error_code(exc) in _NOT_FOUND or _error_code(exc) in ("InvalidPart",
                                                                      "InvalidPartOrder"):
                raise S3UploadInconsistent(f"the run of {record['key']} cannot be completed: "
                                           f"{exc}") from None
            raise

    def _check_parts(self, record: dict[str, Any], parts: list[dict[str, Any]]) -> None:
        """Each part of the run is there as recorded (its ETag). AWS refuses a completion
        that names a part by an ETag it no longer has; SeaweedFS keeps every upload of a
        part number and completes with the one whose ETag is named; a store that did
        neither would take whatever came last, so the parts are looked at first."""
        found: dict[int, set[str]] = {}
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=record["key"], UploadId=record["upload_id"])
        for page in pages:
            for part in page.get("Parts", []) or []:
                found.setdefault(int(part["PartNumber"]), set()).add(
                    str(part["ETag"]).strip('"'))
        for part in parts:
            if str(part["ETag"]).strip('"') not in found.get(part["PartNumber"], set()):
                raise S3UploadInconsistent(f"part {part['PartNumber']} of the run of "
                                           f"{record['key']} is not the one recorded")

    def _commit_run(self, upload_id: str, upload: _Upload, digest: str, staged: int) -> None:
        """Make the upload's run the blob without copying it: its multipart upload completed
        at the data key (a single chunk after the run joins it as a last part copied
        server-side, the only bytes copied), then a pointer at the blob key. More chunks
        after the run are copied after it, as ordinary chunks are."""
        runs = [chunk for chunk in upload.chunks if chunk.run]
        tail = upload.chunks[len(runs):]
        record = self._run_record(upload_id, runs[-1].key)
        key, run_size, last = str(record["key"]), sum(c.size for c in runs), runs[-1].last_part
        located = self._locate(digest)
        if located is not None and located[1] == staged:  # already there
            if located[0] != key:  # (else: ours, by a commit that died before cleaning up)
                self._drop_run(record)
            return
        if not upload.sealed and len(tail) <= 1 and last < MAX_PARTS and all(
                chunk.size <= MAX_PART for chunk in tail):
            extra = [self._copy_part(key, record["upload_id"], last + 1, chunk.key, 0,
                                     chunk.size) for chunk in tail]
            self._complete_run(record, last, extra, staged)
            self._point(upload_id, digest, key, staged)
            return
        if not upload.sealed:
            self._complete_run(record, last, [], run_size)
        if not tail:
            self._point(upload_id, digest, key, staged)
            return
        self._assemble([_Chunk(key, 0, run_size), *tail], self.blob_key(digest))
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def _point(self, upload_id: str, digest: str, data_key: str, size: int) -> None:
        """The blob appears: a pointer at its key names the completed data object. The `run`
        record goes first, so that from here on no upload_delete takes the data object (a
        commit that dies in between leaves an object no one names, never a broken blob)."""
        self.client.delete_object(Bucket=self.bucket, Key=self.upload_prefix(upload_id) + RUN)
        self.client.put_object(Bucket=self.bucket, Key=self.blob_key(digest), Body=b"",
                               Metadata={POINTER_KEY: data_key, POINTER_SIZE: str(size)})
        self._remember_pointer(digest, data_key)

    def _drop_run(self, record: dict[str, Any]) -> None:
        """Abort the run's multipart upload or delete its completed object; never raises for
        one already gone."""
        self._abort_staged(record)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=record["key"])
        except ClientError as exc:
            if _error_code(exc) not in _NOT_FOUND:
                raise

    def _staged_record(self, chunk: _Chunk) -> dict[str, Any]:
        body = self.client.get_object(Bucket=self.bucket, Key=chunk.key)["Body"]
        try:
            record = json.loads(body.read(1 << 20))
        finally:
            body.close()
        return record if isinstance(record, dict) else {}

    def _complete_staged(self, listing: list[_Chunk], digest: str, staged: int) -> None:
        """Complete the multipart upload a last chunk left at `target`. It holds the whole
        upload (only a chunk at offset 0 is staged) and was made for exactly this key."""
        target = self.blob_key(digest)
        record = self._staged_record(listing[-1])
        if len(listing) != 1 or record.get("key") != target:
            raise S3UploadInconsistent(f"the staged chunk {listing[-1].key} is not the whole "
                                       f"upload for {target}")
        if self.size(digest) == staged:  # already there: keep it, drop the copy
            self._abort_staged(record)
            return
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=target, UploadId=record["upload_id"],
            MultipartUpload={"Parts": record["parts"]})

    def _abort_staged(self, record: dict[str, Any]) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=record["key"],
                                               UploadId=record["upload_id"])
        except ClientError as exc:
            if _error_code(exc) not in _NOT_FOUND:
                raise

    def upload_delete(self, upload_id: str) -> None:
        """Remove everything under the upload, marker first so it stops existing at once;
        also aborts multipart uploads left by chunks whose replica died mid-stream."""
        prefix = self.upload_prefix(upload_id)
        with self._pointers_lock:
            self._records.pop(upload_id, None)
        self.client.delete_object(Bucket=self.bucket, Key=prefix + MARKER)
        objects = [o["Key"] for o in self._list(prefix)]
        for key in objects:  # a staged last chunk's multipart upload lives at its blob key
            name = key[len(prefix):]
            if name.startswith(LAST_PREFIX) or name == STAGING:
                try:
                    self._abort_staged(self._staged_record(_Chunk(key, 0, 0, True)))
                except (ClientError, KeyError, ValueError) as exc:
                    log.warning("could not abort the staged chunk of %s: %s", key, exc)
            elif name == RUN:  # the run: its multipart upload, or its completed object
                try:
                    self._drop_run(self._record(key))
                except (ClientError, KeyError, ValueError) as exc:
                    log.warning("could not drop the run of %s: %s", key, exc)
        self._delete_keys(objects)
        # multipart uploads of chunks, and a run's whose record was never written
        for swept in (prefix, self.data_key(upload_id)):
            try:
                pages = self.client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.bucket, Prefix=swept)
                for page in pages:
                    for upload in page.get("Uploads", []) or []:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            except ClientError as exc:  # not every S3-compatible store lists multipart uploads
                log.warning("could not sweep multipart uploads under %s: %s", swept, exc)

    # -- data objects no pointer names ---------------------------------------------------
    def sweep_unnamed(self, older_than: float, dry_run: bool = False) -> tuple[int, int]:
        """Delete the data objects (`data/<upload id>`) that no pointer names, last modified
        before `older_than` (epoch seconds); returns how many and their bytes.

        They are what two commits of one digest at once leave (the last pointer wins), or a
        commit that died between completing its run and writing its pointer. Never one a
        commit may still point to: a commit writes its pointer before it deletes its
        upload's marker, so the uploads still there are listed after the data objects, and
        the pointers after that; a data object whose upload is gone and that no pointer
        names then is named by nothing, now or later (a data key is never reused).
        """
        data_prefix = self._key("data/")
        old: dict[str, tuple[str, int]] = {}  # upload id -> (data key, size)
        for obj in self._list(data_prefix):
            if _modified_before(obj.get("LastModified"), older_than):
                old[obj["Key"][len(data_prefix):]] = (obj["Key"], int(obj.get("Size") or 0))
        if not old:
            return 0, 0
        for upload_id in self._upload_ids():
            old.pop(upload_id, None)
        if not old:
            return 0, 0
        named = self._named_data()
        unnamed = [(key, size) for key, size in old.values() if key not in named]
        if unnamed and not dry_run:
            self._delete_keys([key for key, _ in unnamed])
            log.info("deleted %d data objects no blob names", len(unnamed))
        return len(unnamed), sum(size for _, size in unnamed)

    def _upload_ids(self) -> set[str]:
        """The uploads that have any object in the bucket (a marker, records, chunks). Listed
        object by object: a filer-backed store (SeaweedFS) keeps an emptied upload's folder,
        which a listing by delimiter would still show."""
        prefix = self._key("uploads/")
        return {obj["Key"][len(prefix):].partition("/")[0] for obj in self._list(prefix)}

    def _named_data(self) -> set[str]:
        """Every data key a pointer names. Pointers are the empty objects under blobs/ (the
        empty blob is one too, and names nothing); each is asked for its metadata."""
        empty = [obj["Key"] for obj in self._list(self._key("blobs/"))
                 if int(obj.get("Size") or 0) == 0]

        def named(key: str) -> str | None:
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _NOT_FOUND:
                    return None
                raise
            return (head.get("Metadata") or {}).get(POINTER_KEY)

        return {key for key in self.pool.map(named, empty) if key}

    # -- assembling a blob ---------------------------------------------------------------
    def _assemble(self, listing: list[_Chunk], target: str) -> None:
        total = sum(c.size for c in listing)
        if not listing:
            self.client.put_object(Bucket=self.bucket, Key=target, Body=b"")
        elif len(listing) == 1 and total <= MAX_PART:
            self.client.copy_object(Bucket=self.bucket, Key=target,
                                    CopySource={"Bucket": self.bucket, "Key": listing[0].key})
        elif total <= self.part_size:
            # A few small chunks: one read and one PutObject beat a multipart upload.
            data = b"".join(self._read_chunks(listing, self.part_size))
            self.client.put_object(Bucket=self.bucket, Key=target, Body=data)
        else:
            self._assemble_multipart(listing, target)

    def _assemble_multipart(self, listing: list[_Chunk], target: str) -> None:
        """Concatenate the chunks into `target` as one multipart upload, following
        plan_parts(): copied parts never pass through the registry, read parts are gathered
        here (a few at a time, so memory stays bounded) and uploaded."""
        s3, bucket = self.client, self.bucket
        plan = plan_parts([c.size for c in listing], self.part_size)
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=target)["UploadId"]
        futures: list[Future[dict[str, Any]]] = []
        try:
            for number, part in enumerate(plan, 1):
                if isinstance(part, CopyPart):
                    futures.append(self.pool.submit(
                        self._copy_part, target, upload_id, number, listing[part.chunk].key,
                        part.start, part.end))
                    continue
                travelling = [f for f in futures if not f.done()]
                for future in travelling[:max(0, len(travelling) - 4)]:
                    future.result()  # at most a few read parts held in memory at once
                data = b"".join(b"".join(self._stream(listing[i].key, a, b, 8 * MiB))
                                for i, a, b in part.pieces)
                futures.append(self.pool.submit(
                    self._upload_part, target, upload_id, number, memoryview(data)))
            parts = [future.result() for future in futures]
            s3.complete_multipart_upload(Bucket=bucket, Key=target, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
        except BaseException:
            for future in futures:
                future.cancel()
            for future in futures:  # parts still travelling would outlive an early abort
                if not future.cancelled():
                    try:
                        future.result()
                    except BaseException:
                        pass
            try:
                s3.abort_multipart_upload(Bucket=bucket, Key=target, UploadId=upload_id)
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not abort multipart upload of %s: %s", target, exc)
            raise

    def _upload_part(self, key: str, upload_id: str, number: int,
                     data: memoryview | bytes) -> dict[str, Any]:
        body = data if isinstance(data, bytes) else bytes(data)  # a chunk's whole bytes: no copy
        response = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                           PartNumber=number, Body=body)
        return {"ETag": response["ETag"], "PartNumber": number}

    def _stream_part(self, key: str, upload_id: str, number: int,
                     body: _PartBody) -> dict[str, Any]:
        """One part sent as its bytes arrive (see _PartBody); its ETag, when an MD5, must be
        that of the bytes sent."""
        response = self._streamer.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              PartNumber=number, Body=body,
                                              ContentLength=body.size)
        etag = str(response["ETag"]).strip('"').lower()
        if body.md5 is not None and _MD5_ETAG.fullmatch(etag) and etag != body.md5.hexdigest():
            raise S3StoreError(f"part {number} of {key} was not stored as sent")
        return {"ETag": response["ETag"], "PartNumber": number}

    def _copy_part(self, key: str, upload_id: str, number: int, source: str, start: int,
                   end: int) -> dict[str, Any]:
        response = self.client.upload_part_copy(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": source},
            CopySourceRange=f"bytes={start}-{end - 1}")
        return {"ETag": response["CopyPartResult"]["ETag"], "PartNumber": number}

    # -- object helpers ------------------------------------------------------------------
    def _head_size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return None
            raise

    def _stream(self, key: str, start: int, end: int | None,
                chunk_size: int, *, at_blob_key: bool = False) -> Iterator[bytes]:
        """Bytes [start, end) of an object by ranged GETs; a body that breaks off mid-way is
        resumed from where it stopped (botocore retries requests, not body reads).

        `at_blob_key`: the object may be a pointer (see _commit_run); if so, _PointerFound
        says where the bytes are, before any is yielded."""
        pos, retries = start, 0
        while end is None or pos < end:
            range_header = f"bytes={pos}-" + ("" if end is None else str(end - 1))
            try:
                kwargs: dict[str, Any] = {} if pos == 0 and end is None else {"Range": range_header}
                response = self.client.get_object(Bucket=self.bucket, Key=key, **kwargs)
                body = response["Body"]
            except ClientError as exc:
                code = _error_code(exc)
                if code in _NOT_FOUND:
                    raise FileNotFoundError(key) from None
                if code == "InvalidRange":  # start at or beyond the end: nothing to read
                    if at_blob_key and pos == start:  # or a pointer's empty body
                        head = self.client.head_object(Bucket=self.bucket, Key=key)
                        target = (head.get("Metadata") or {}).get(POINTER_KEY)
                        if target:
                            raise _PointerFound(target) from None
                    return
                raise
            target = (response.get("Metadata") or {}).get(POINTER_KEY) if at_blob_key else None
            if target:
                body.close()
                if pos != start:
                    raise S3StoreError(f"{key} was replaced while being read")
                raise _PointerFound(target)
            try:
                for data in body.iter_chunks(chunk_size):
                    pos += len(data)
                    yield data
                return
            except _STREAM_ERRORS:
                retries += 1
                if retries > 3:
                    raise
                log.warning("reading %s broke off at %d; resuming", key, pos)
            finally:
                body.close()

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", []) or []

    def _listing(self, upload_id: str) -> list[_Chunk] | None:
        """The upload's chunks in offset order; None if it has no marker (does not exist)."""
        upload = self._scan(upload_id)
        return None if upload is None else upload.chunks

    def _scan(self, upload_id: str) -> _Upload | None:
        """The upload as its listing shows it; None if it has no marker (does not exist).

        Each chunk's name must equal the sum of the sizes before it: anything else means two
        writers raced on one upload, and its bytes are not to be trusted. Run chunks come
        first and name consecutive parts from 1 on; a staged last chunk comes last.
        """
        prefix = self.upload_prefix(upload_id)
        marker = has_run = sealed = False
        chunks: list[_Chunk] = []
        for obj in self._list(prefix):
            name = obj["Key"][len(prefix):]
            if name == MARKER:
                marker = True
            elif name == RUN:
                has_run = True
            elif name == SEALED:
                sealed = True
            elif name.startswith(CHUNK_PREFIX) and name[len(CHUNK_PREFIX):].isdigit():
                chunks.append(_Chunk(obj["Key"], int(name[len(CHUNK_PREFIX):]), int(obj["Size"])))
            elif name.startswith(LAST_PREFIX):
                offset, _, size = name[len(LAST_PREFIX):].partition("-")
                if offset.isdigit() and size.isdigit():
                    chunks.append(_Chunk(obj["Key"], int(offset), int(size), staged=True))
            elif name.startswith(RUN_PREFIX):
                fields = name[len(RUN_PREFIX):].split("-")
                if len(fields) == 4 and all(field.isdigit() for field in fields):
                    offset, size, first, last = map(int, fields)
                    chunks.append(_Chunk(obj["Key"], offset, size, run=True, first_part=first,
                                         last_part=last))
        if not marker:
            return None
        chunks.sort(key=lambda c: c.offset)
        expected, next_part, runs_over = 0, 1, False
        for chunk in chunks:
            if chunk.offset != expected:
                raise S3UploadInconsistent(f"upload {upload_id}: chunk at {chunk.offset}, expected "
                                   f"one at {expected}")
            expected += chunk.size
            if chunk.run:
                if runs_over or chunk.first_part != next_part or chunk.last_part < next_part:
                    raise S3UploadInconsistent(f"upload {upload_id}: run chunk at {chunk.offset} "
                                               f"does not follow the run")
                next_part = chunk.last_part + 1
            else:
                runs_over = True
        if any(chunk.staged for chunk in chunks[:-1]):
            raise S3UploadInconsistent(f"upload {upload_id}: chunks follow its staged last one")
        return _Upload(chunks, has_run, sealed)

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start:start + 1000]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = response.get("Errors") or []
            if errors:
                raise S3StoreError(f"could not delete {len(errors)} objects, e.g. "
                                   f"{errors[0].get('Key')}: {errors[0].get('Message')}")
