"""The machine's limits for `make bench`: what bounds a row, whatever the registry does.

    python bench/limits.py bare --listen 127.0.0.1:PORT --workers N --manifest FILE
    python bench/limits.py sendfile --listen 127.0.0.1:PORT --workers N --file BLOB
    PYTHONPATH=src python bench/limits.py hashwrite --dir DIR --mib 256 --chunk-mib 5

`bare` is granian (ASGI, the same options `moorage serve` gives it, the same worker count)
running a handler that answers every GET or HEAD with the manifest's bytes and the headers a
registry sends (Content-Type, Docker-Content-Digest, Content-Length): the most a Python
handler on granian can answer on this machine, with no routing, auth, database or audit.

With `--file`, `bare` answers paths holding /blobs/ with that file through granian's own file
response (ASGI `http.response.pathsend`, what Moorage uses for whole blobs): the limit of
Moorage's way of sending a blob.

`sendfile` is N forked asyncio processes on one SO_REUSEPORT port that answer every GET with
the blob file through os.sendfile, called from a worker thread until the whole file is sent
(the kernel copies the page cache to the socket, no bytes pass through Python), with
keep-alive: the plain-sendfile limit of a blob GET. asyncio's own `loop.sendfile` was tried
first: it returns to the event loop after every socket buffer's worth and reached about half
of this rate on the same machine. Neither is a registry; each answers only what the bench asks of it.

`hashwrite` is the upload rows' bound: one Python process that hashes (SHA-256) and writes the
same number of bytes to a staging file in DIR (give it a folder on the registry's filesystem),
with Moorage's file store's own writer (moorage.store.filesystem.FileChunk: O_DIRECT from an
aligned buffer where the filesystem takes it, else buffered with its writeback started), and
prints {"seconds", "mbps"} as JSON. The bytes are made in memory first (not timed); then, per
chunk of --chunk-mib (one PATCH; a monolithic upload is one chunk of everything): a writer is
opened at the chunk's offset and the chunk is handed to it in --batch-mib pieces (the store's
write_batch), each written, then hashed, as registry/uploads.py does; at the end the file is
fsynced, renamed to its digest and its folder fsynced, as FilesystemBlobStore.upload_commit
does. One upload, one thread handing the bytes over (the store's writer thread writes while
it hashes): no network, no HTTP, no lock, no database, so a registry can only come near it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import select
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MAX_HEAD = 16 << 10  # request heads bigger than this are refused (the bench sends ~300 bytes)


# -- bare granian handler -----------------------------------------------------------------------
def create_bare_app() -> Any:
    """ASGI app answering with the manifest named by $BENCH_BARE_MANIFEST (granian factory)."""
    body = Path(os.environ["BENCH_BARE_MANIFEST"]).read_bytes()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    headers = [(b"content-type", b"application/vnd.oci.image.manifest.v1+json"),
               (b"docker-content-digest", digest.encode()),
               (b"content-length", str(len(body)).encode())]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    full = {"type": "http.response.body", "body": body}
    empty = {"type": "http.response.body", "body": b""}
    blob = os.environ.get("BENCH_BARE_BLOB")
    blob_start = {"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(Path(blob).stat().st_size if blob else 0).encode())]}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if blob and "/blobs/" in scope["path"]:  # granian's file response, as Moorage sends blobs
            await send(blob_start)
            await send({"type": "http.response.pathsend", "path": blob})
            return
        await send(start)
        await send(empty if scope["method"] == "HEAD" else full)

    return app


def serve_bare(host: str, port: int, workers: int, manifest: Path, blob: Path | None) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    os.environ["BENCH_BARE_MANIFEST"] = str(manifest)
    if blob is not None:
        os.environ["BENCH_BARE_BLOB"] = str(blob)
    Granian("bench.limits:create_bare_app", factory=True, interface=Interfaces.ASGI,
            address=host, port=port, workers=workers, log_enabled=False, log_access=False,
            backlog=2048, websockets=False).serve()


# -- hash-and-write limit ----------------------------------------------------------------------
def hash_and_write(folder: Path, size: int, chunk: int, batch: int) -> dict[str, float]:
    """Seconds and MB/s (10^6 bytes/s) to hash and durably store `size` bytes (see above)."""
    from moorage.store.filesystem import FileChunk

    data = memoryview(os.urandom(size))
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / f"hashwrite-{os.getpid()}.staged"
    started = time.perf_counter()
    hasher = hashlib.sha256()
    staged.touch()
    for offset in range(0, size, chunk):
        writer = FileChunk(staged, offset)  # one PATCH: the store opens a writer per chunk
        end = min(offset + chunk, size)
        for at in range(offset, end, batch):
            piece = data[at:min(at + batch, end)]
            writer.write_parts([piece])  # as registry/uploads.py: write, then hash
            hasher.update(piece)
        writer.commit()
    with open(staged, "rb+") as f:
        os.fsync(f.fileno())
    final = folder / hasher.hexdigest()
    os.replace(staged, final)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - started
    final.unlink()
    return {"seconds": seconds, "mbps": size / seconds / 1e6}


# -- plain sendfile server ----------------------------------------------------------------------
def _send_all(sock: int, head: bytes, fd: int, size: int) -> None:
    """The answer's head, then the file by os.sendfile until it is all sent (a worker thread).

    The socket is non-blocking (the event loop owns it), so a full send buffer is waited out
    with poll() here, in the thread: one sendfile call per buffer's worth, and no event-loop
    round trip between them (loop.sendfile takes one per call and was about half as fast).
    """
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    view, sent = memoryview(head), 0
    while view:
        try:
            view = view[os.write(sock, view):]
        except BlockingIOError:
            poller.poll(10_000)
    while sent < size:
        try:
            n = os.sendfile(sock, fd, sent, size - sent)
        except BlockingIOError:
            poller.poll(10_000)
            continue
        if n == 0:
            raise ConnectionError("peer gone")
        sent += n


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  path: Path, size: int) -> None:
    loop = asyncio.get_running_loop()
    sock = writer.get_extra_info("socket").fileno()
    head_ok = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Length: %d\r\n\r\n" % size)
    try:
        with open(path, "rb") as f:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    return
                body = head.split(b" ", 1)[0] == b"GET"
                await loop.run_in_executor(None, _send_all, sock, head_ok, f.fileno(),
                                           size if body else 0)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _sendfile_worker(sock: socket.socket, path: Path) -> None:
    size = path.stat().st_size
    # one thread per stream: SO_REUSEPORT may hand all 8 streams of a row to one process
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(64))
    server = await asyncio.start_server(lambda r, w: _answer(r, w, path, size), sock=sock,
                                        limit=MAX_HEAD)
    async with server:
        await server.serve_forever()


def serve_sendfile(host: str, port: int, workers: int, path: Path) -> None:
    """Fork `workers` processes, each accepting on its own SO_REUSEPORT socket."""
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(2048)
            try:
                asyncio.run(_sendfile_worker(sock, path))
            finally:
                os._exit(0)
        children.append(pid)

    def stop(*_: Any) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in children:
        os.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["bare", "sendfile", "hashwrite"])
    p.add_argument("--listen", help="HOST:PORT")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--manifest", type=Path, help="bare: the manifest bytes to answer with")
    p.add_argument("--file", type=Path, help="the blob to send (bare: at paths with /blobs/, "
                   "through granian's file response, ASGI pathsend)")
    p.add_argument("--dir", type=Path, help="hashwrite: a folder on the registry's filesystem")
    p.add_argument("--mib", type=int, default=256, help="hashwrite: MiB to hash and write")
    p.add_argument("--chunk-mib", type=float, default=5,
                   help="hashwrite: MiB per PATCH (the whole size for a monolithic upload)")
    p.add_argument("--batch-mib", type=float, default=1,
                   help="hashwrite: MiB per write (FilesystemBlobStore.write_batch)")
    a = p.parse_args(argv)
    if a.kind == "hashwrite":
        if a.dir is None:
            p.error("hashwrite needs --dir")
        size = a.mib << 20
        print(json.dumps(hash_and_write(a.dir, size, int(min(a.chunk_mib * (1 << 20), size)),
                                        int(a.batch_mib * (1 << 20)))))
        return
    if a.listen is None:
        p.error(f"{a.kind} needs --listen")
    host, _, port = a.listen.rpartition(":")
    if a.kind == "bare":
        if a.manifest is None:
            p.error("bare needs --manifest")
        serve_bare(host, int(port), a.workers, a.manifest, a.file)
    else:
        if a.file is None:
            p.error("sendfile needs --file")
        serve_sendfile(host, int(port), a.workers, a.file)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
