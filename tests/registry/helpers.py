"""UploadManagers over one SQLite database and one blob folder, as granian workers share them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from moorage.db.metadata import MetadataStore, open_engine, sqlite_url
from moorage.registry.locks import FileBlobLock, FileUploadLock
from moorage.registry.uploads import UploadManager
from moorage.store.filesystem import FilesystemBlobStore


async def body(data: bytes) -> AsyncIterator[bytes]:
    """A request body that arrives in one piece."""
    yield data


def workers(tmp_path: Path, count: int, store: type[FilesystemBlobStore] = FilesystemBlobStore
            ) -> tuple[list[UploadManager], MetadataStore]:
    db = MetadataStore(open_engine(sqlite_url(tmp_path)))
    db.create_schema()
    managers = [UploadManager(db, store(tmp_path / "blobs"), FileBlobLock(tmp_path / "lock"),
                              FileUploadLock(tmp_path / "upload-locks"))
                for _ in range(count)]
    return managers, db
