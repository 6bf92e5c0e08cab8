"""The metadata schema, shared by SQLite (embedded) and PostgreSQL (scale-out).

The database is the source of truth for what exists; the blob store holds bytes only. Blobs
and manifests are stored once per instance and linked to the repositories that may read them.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Column, func, Float, ForeignKey, Index, Integer, LargeBinary,
                        MetaData, String, Table, Text)

metadata = MetaData()

repositories = Table(
    "repositories", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

blobs = Table(
    "blobs", metadata,
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Which repository may read which blob: pushed into it, mounted into it, or referenced by it.
repository_blobs = Table(
    "repository_blobs", metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"),
           primary_key=True),
    Column("digest", String(200), ForeignKey("blobs.digest"), primary_key=True),
    Column("created_at", Float, nullable=False),
)

manifests = Table(
    "manifests", metadata,
    Column("digest", String(200), primary_key=True),
    Column("media_type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("subject", String(200), nullable=True),
    Column("artifact_type", String(255), nullable=True),
    Column("annotations", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_manifests_subject", manifests.c.subject)

repository_manifests = Table(
    "repository_manifests", metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"),
           primary_key=True),
    Column("digest", String(200), ForeignKey("manifests.digest"), primary_key=True),
    Column("pushed_at", Float, nullable=False),
)
Index("ix_repository_manifests_digest", repository_manifests.c.digest)

# What each manifest points at: blobs (config, layers) and child manifests (indexes).
manifest_references = Table(
    "manifest_references", metadata,
    Column("manifest_digest", String(200), ForeignKey("manifests.digest"), primary_key=True),
    Column("target_digest", String(200), primary_key=True),
    Column("kind", String(16), nullable=False),  # "blob" | "manifest"
)
Index("ix_manifest_references_target", manifest_references.c.target_digest)

tags = Table(
    "tags", metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"),
           primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("digest", String(200), nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_tags_repository_digest", tags.c.repository_id, tags.c.digest)
Index("ix_tags_repository_folded", tags.c.repository_id, func.lower(tags.c.name), tags.c.name)

uploads = Table(
    "uploads", metadata,
    Column("id", String(64), primary_key=True),
    Column("repository", String(255), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
