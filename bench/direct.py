"""Fast seeding of many tags and repositories, straight into each registry's own storage.

Through the API, 10,000 tags or 10,000 repositories cost 10,000–30,000 small writes, each
committed durably (fsync) — minutes on two busy cores, and seeding is not what we measure.
So the bulk of that content is written the way each registry would have written it:

* Distribution: link files in its filesystem layout (`_manifests/tags/<tag>/current/link`,
  `…/index/sha256/<hex>/link`, `_layers/…/link`, `_manifests/revisions/…/link`), exactly what
  its PUT and mount handlers write; it keeps no other state for them.
* Moorage: its own `MetadataStore.link_blob` / `put_manifest` (the calls the registry service
  makes for a mount and a manifest PUT), on a connection with `synchronous=OFF` so that each
  row is not fsynced one by one. Only metadata is written; the blobs themselves are already in
  the store from an earlier push through the API.

The first item of each batch always goes through the API (creating the namespace and
repository the normal way); the caller checks the result through the API afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable


def _link(path: Path, digest: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "link").write_text(digest)


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def distribution_repos_root(root: Path) -> Path:
    return root / "docker" / "registry" / "v2" / "repositories"


def distribution_tags(root: Path, repo: str, manifest_digest: str, tags: Iterable[str]) -> int:
    """Point `tags` of `repo` at a manifest the repository already holds."""
    base = distribution_repos_root(root) / repo / "_manifests" / "tags"
    n = 0
    for tag in tags:
        _link(base / tag / "current", manifest_digest)
        _link(base / tag / "index" / "sha256" / _hex(manifest_digest), manifest_digest)
        n += 1
    return n


def distribution_repos(root: Path, names: Iterable[str], manifest_digest: str,
                       blob_digests: list[str], tag: str) -> int:
    """New repositories holding (links to) an image whose blobs are already stored."""
    repos = distribution_repos_root(root)
    n = 0
    for name in names:
        repo = repos / name
        for digest in blob_digests:
            _link(repo / "_layers" / "sha256" / _hex(digest), digest)
        _link(repo / "_manifests" / "revisions" / "sha256" / _hex(manifest_digest),
              manifest_digest)
        distribution_tags(root, name, manifest_digest, [tag])
        n += 1
    return n


def moorage_repos(data_dir: Path, names: list[str], manifest: bytes, media_type: str,
                  blob_sizes: dict[str, int], tag: str) -> float:
    """New repositories holding an image whose blobs are already stored; returns seconds."""
    from sqlalchemy import event

    from moorage.db.metadata import MetadataStore, NewManifest, open_engine, sqlite_url
    from moorage.oci.digest import digest_of
    from moorage.oci.manifest import parse_manifest

    started = time.perf_counter()
    engine = open_engine(sqlite_url(data_dir))

    def fast(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")  # after Moorage's own pragmas (FULL)
        cursor.close()

    event.listen(engine, "connect", fast)
    db = MetadataStore(engine)
    parsed = parse_manifest(manifest, media_type)
    new = NewManifest(digest=digest_of(manifest), media_type=parsed.media_type, content=manifest,
                      subject=parsed.subject.digest if parsed.subject else None,
                      artifact_type=parsed.artifact_type,
                      annotations=parsed.annotations or None,
                      blob_digests=tuple(d.digest for d in parsed.blobs),
                      child_digests=tuple(d.digest for d in parsed.children))
    try:
        for name in names:
            for digest in new.blob_digests:
                db.link_blob(name, digest, blob_sizes[digest])
            db.put_manifest(name, new, [tag])
    finally:
        engine.dispose()
    return time.perf_counter() - started
