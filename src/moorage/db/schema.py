"""The metadata schema, shared by SQLite (embedded) and PostgreSQL (scale-out).

The database is the source of truth for what exists; the blob store holds bytes only. Blobs
and manifests are stored once per instance and linked to the repositories that may read them.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer,
                        LargeBinary, MetaData, String, Table, Text, UniqueConstraint, func)

metadata = MetaData()

# A namespace is the first component of a repository name ("team" in "team/app"); a name
# with a single component is its own namespace. Access, quotas and rules attach to it.
namespaces = Table(
    "namespaces", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("visibility", String(16), nullable=False, default="private"),
    Column("description", Text, nullable=False, default=""),
    Column("credential_free_pull", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

repositories = Table(
    "repositories", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=False),
    Column("visibility", String(16), nullable=False, default="private"),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)
Index("ix_repositories_namespace", repositories.c.namespace_id)

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


# -- accounts and access -----------------------------------------------------------------
users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("kind", String(16), nullable=False, default="user"),  # "user" | "robot"
    Column("is_admin", Boolean, nullable=False, default=False),
    # Robots belong to one namespace and vanish with it.
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("expires_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
)

# Personal access tokens and OAuth2 refresh tokens: only a hash of the secret is kept.
access_tokens = Table(
    "access_tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # "personal" | "refresh"
    Column("name", String(255), nullable=False, default=""),
    Column("secret_hash", String(128), nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_access_tokens_user", access_tokens.c.user_id)

memberships = Table(
    "memberships", metadata,
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),
)
Index("ix_memberships_user", memberships.c.user_id)

# CIDR rules: "allow" rules form allowlists (instance-wide when namespace_id is NULL);
# "trusted" rules mark networks whose clients may pull without credentials.
network_rules = Table(
    "network_rules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=True),
    Column("cidr", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("namespace_id", "cidr", "kind", name="uq_network_rules"),
)
