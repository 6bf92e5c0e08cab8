"""The metadata schema, shared by SQLite (embedded) and PostgreSQL (scale-out).

The database is the source of truth for what exists; the blob store holds bytes only. Blobs
and manifests are stored once per instance and linked to the repositories that may read them.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer,
                        LargeBinary, MetaData, String, Table, Text, UniqueConstraint, func, true)

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
    # Bytes of the distinct blobs its manifests reference; kept exact by the push and delete
    # transactions themselves (see namespace_blobs).
    Column("storage_used", BigInteger, nullable=False, default=0),
    Column("storage_quota", BigInteger, nullable=True),
    Column("created_at", Float, nullable=False),
)

repositories = Table(
    "repositories", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=False),
    # Set on the repository itself, or NULL: the namespace's visibility applies, as it is now.
    Column("visibility", String(16), nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)
# A namespace's repositories in name order: its listing reads one page, not the whole namespace.
Index("ix_repositories_namespace_name", repositories.c.namespace_id, repositories.c.name)

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
    # Last push, mount or existence check: GC leaves links touched within its grace period,
    # so a client that saw a blob exist can still reference it in the manifest it pushes next.
    Column("touched_at", Float, nullable=False, default=0),
)
# Who links a blob, whatever the repository: GC's "is it linked anywhere?" is a lookup, not a
# scan of every link for every blob (quadratic in the number of blobs), and so are mounts.
Index("ix_repository_blobs_digest", repository_blobs.c.digest)

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
    # When a client last pulled the manifest by this tag (NULL: not since it was recorded).
    # Written at most once a minute per tag (registry/pulls.py), never on every pull.
    Column("pulled_at", Float, nullable=True),
)
Index("ix_tags_repository_digest", tags.c.repository_id, tags.c.digest)
Index("ix_tags_repository_folded", tags.c.repository_id, func.lower(tags.c.name), tags.c.name)
# The console's tag list, newest first, a page at a time.
Index("ix_tags_repository_updated", tags.c.repository_id, tags.c.updated_at)

uploads = Table(
    "uploads", metadata,
    Column("id", String(64), primary_key=True),
    Column("repository", String(255), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # who opened it ("user:NAME", or "address:IP" for anonymous requests), for the cap on
    # uploads open at once (max_open_uploads); NULL for uploads started before it existed
    Column("owner", String(320), nullable=True),
)
Index("ix_uploads_owner", uploads.c.owner)


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
    # When an administrator disabled the account (NULL: enabled); it cannot log in or refresh
    # until enabled again.
    Column("disabled_at", Float, nullable=True),
    # Where the account signs in: "local" (its password here), "ldap" (a bind against the
    # directory) or "oidc" (the OpenID provider, through the console). An administrator may
    # switch it (access/identity.py).
    Column("source", String(16), nullable=False, default="local", server_default="local"),
    # The directory's or provider's name for the account (an LDAP DN, an OIDC `iss sub`),
    # found again at each sign-in whatever the username; NULL for local accounts and for an
    # account switched to a source it has not signed in through yet.
    Column("external_id", String(1024), nullable=True),
)
Index("ux_users_external", users.c.source, users.c.external_id, unique=True)

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

# Failed logins, per account (a keyed hash of the name tried: it may be a password typed into
# the wrong field) and per client address, for the lockouts of access/throttle.py when no Redis
# is configured. Rows older than the throttle's window are ignored and swept by later failures.
login_failures = Table(
    "login_failures", metadata,
    Column("key", String(128), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", Float, nullable=False),
)
Index("ix_login_failures_last", login_failures.c.last_failure_at)

memberships = Table(
    "memberships", metadata,
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),
    # "": given by a namespace owner or an administrator; "sso": given at sign-in from the
    # account's directory groups (group_roles), and taken back when the groups no longer give it
    Column("granted_by", String(16), nullable=False, default="", server_default=""),
)
Index("ix_memberships_user", memberships.c.user_id)

# Single sign-on: the members of a directory group (LDAP group DN, OIDC groups-claim value)
# get this role in this namespace when they sign in.
group_roles = Table(
    "group_roles", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_name", String(1024), nullable=False),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("group_name", "namespace_id", name="uq_group_roles"),
)

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


# -- jobs ----------------------------------------------------------------------------------
# The durable queue: a row per job, claimed atomically by one worker of one replica.
jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("payload", Text, nullable=False, default="{}"),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False, default=5),
    Column("timeout_seconds", Integer, nullable=False, default=600),
    Column("run_at", Float, nullable=False),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_at", Float, nullable=True),
    Column("heartbeat_at", Float, nullable=True),
    Column("progress", Text, nullable=True),
    Column("result", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("log", Text, nullable=False, default=""),
    Column("dedupe_key", String(255), nullable=True, unique=True),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
)
Index("ix_jobs_claim", jobs.c.status, jobs.c.run_at)
Index("ix_jobs_type_status", jobs.c.type, jobs.c.status)

schedules = Table(
    "schedules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("cron", String(128), nullable=False),
    Column("job_type", String(64), nullable=False),
    Column("payload", Text, nullable=False, default="{}"),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("next_run_at", Float, nullable=False),
    Column("last_job_id", Integer, nullable=True),
)


# How many manifest links in a namespace reference each blob; a blob counts toward the
# namespace's storage while this is above zero.
namespace_blobs = Table(
    "namespace_blobs", metadata,
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           primary_key=True),
    Column("digest", String(200), primary_key=True),
    Column("refs", Integer, nullable=False),
)

# -- policies ------------------------------------------------------------------------------
immutability_rules = Table(
    "immutability_rules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=False),
    Column("repository_pattern", String(255), nullable=False, default="**"),
    Column("tag_pattern", String(255), nullable=False),
    Column("exclude_pattern", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
    # A disabled rule stays listed and protects nothing until it is enabled again.
    Column("enabled", Boolean, nullable=False, default=True, server_default=true()),
)

retention_rules = Table(
    "retention_rules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=False),
    Column("repository_pattern", String(255), nullable=False, default="**"),
    Column("tag_pattern", String(255), nullable=False, default="*"),
    Column("keep_last", Integer, nullable=True),
    Column("older_than_seconds", Integer, nullable=True),
    Column("untagged", Boolean, nullable=False, default=False),
    Column("always_keep", String(255), nullable=True),
    Column("schedule", String(128), nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
)


# -- instance secrets ----------------------------------------------------------------------
# Secrets every replica must share (the token signing key), kept in the shared database so a
# scale-out deployment needs no shared files. The embedded instance keeps them in keys/.
instance_secrets = Table(
    "instance_secrets", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Switches an administrator flips at runtime that every worker and replica must see at once
# (the read-only mode of ops/maintenance.py): one row per switch, read where it applies.
instance_settings = Table(
    "instance_settings", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False, default=""),
)

# -- webhooks ------------------------------------------------------------------------------
# Event notifications: a subscription per namespace (or instance-wide when namespace_id is
# NULL) and a delivery row per event and subscription, written in the same transaction as
# its job so that a crash between an event and its delivery loses nothing.
webhook_subscriptions = Table(
    "webhook_subscriptions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=True),
    Column("url", Text, nullable=False),
    Column("events", String(255), nullable=False),  # comma-separated: push,delete,…
    Column("format", String(16), nullable=False, default="moorage"),
    # Kept as written: HMAC signing needs the secret itself, not a hash. Never sent back.
    Column("secret", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_by", String(255), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_webhook_subscriptions_namespace", webhook_subscriptions.c.namespace_id)

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", String(32), primary_key=True),  # random: receivers dedupe on it
    Column("subscription_id", Integer,
           ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(32), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("format", String(16), nullable=False),
    Column("payload", Text, nullable=False),  # the exact body, rendered once at event time
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_response_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("response_excerpt", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
)
Index("ix_webhook_deliveries_subscription", webhook_deliveries.c.subscription_id,
      webhook_deliveries.c.created_at)

# One row per HTTP attempt, so that the history shows every response code, not only the last.
webhook_attempts = Table(
    "webhook_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(32),
           ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("response_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("at", Float, nullable=False),
)
Index("ix_webhook_attempts_delivery", webhook_attempts.c.delivery_id)

# -- audit ---------------------------------------------------------------------------------
# The tamper-evident audit log (moorage.audit): append-only, each entry chained to the one
# before it by `hash` = sha256(prev_hash + canonical JSON of the entry). Ids are assigned by
# the writer inside its write transaction, so they are contiguous and follow the chain.
audit_log = Table(
    "audit_log", metadata,
    # 64-bit: an instance auditing 1,000 pulls a second passes 2^31 entries within a month.
    # SQLite keeps INTEGER, which is 64-bit there and the rowid itself (a BIGINT key is not).
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=False),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False, default=""),
    Column("address", String(64), nullable=False, default=""),
    Column("action", String(64), nullable=False),
    Column("target", String(1024), nullable=False, default=""),
    Column("repository", String(255), nullable=True),
    Column("result", String(16), nullable=False),
    Column("detail", Text, nullable=False, default="{}"),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_audit_log_actor", audit_log.c.actor, audit_log.c.id)
Index("ix_audit_log_action", audit_log.c.action, audit_log.c.id)
Index("ix_audit_log_repository", audit_log.c.repository, audit_log.c.id)
Index("ix_audit_log_at", audit_log.c.at)

# -- vulnerability scanning ------------------------------------------------------------------
# What cataloguing one layer found (its files' packages, its whiteouts and the paths it
# writes; zlib-compressed JSON), under the layer's digest: a layer shared by many images is
# read once. `cache_key` names the record format and limits it was read under; a row of
# another key is read again. Layers are immutable, so a row is never stale, only orphaned.
scan_layer_cache = Table(
    "scan_layer_cache", metadata,
    Column("digest", String(200), primary_key=True),
    Column("cache_key", String(64), nullable=False),
    Column("result", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("used_at", Float, nullable=False),
)

# -- advisories (scan) -------------------------------------------------------------------------
# The vulnerability advisories the scanner matches against (moorage.scan.advisories), imported
# from OSV dumps and Alpine's secdb. One row per record, kept as imported (`record`, OSV JSON)
# with what a re-import compares (`modified`, `content_hash`) and what lists show; the
# packages it names are rows of their own, indexed by (ecosystem, name) for matching.
advisories = Table(
    "advisories", metadata,
    Column("id", String(255), primary_key=True),
    Column("modified", String(64), nullable=False, default=""),
    Column("content_hash", String(64), nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("severity_level", String(16), nullable=False),
    Column("severity_score", Float, nullable=True),
    Column("severity_vector", String(512), nullable=True),
    Column("ecosystems", Text, nullable=False),  # the affected ecosystems, comma-separated
    Column("record", Text, nullable=False),
    Column("imported_at", Float, nullable=False),
)

advisory_packages = Table(
    "advisory_packages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("advisory_id", String(255), ForeignKey("advisories.id", ondelete="CASCADE"),
           nullable=False),
    Column("ecosystem", String(255), nullable=False),  # as the record says: "Debian:12"
    Column("name", String(512), nullable=False),  # normalised (PEP 503 for PyPI)
)
Index("ix_advisory_packages_lookup", advisory_packages.c.ecosystem, advisory_packages.c.name)
Index("ix_advisory_packages_advisory", advisory_packages.c.advisory_id)

# Every id a record is also known by (CVE-…, GHSA-…), so that `show CVE-…` finds it.
advisory_aliases = Table(
    "advisory_aliases", metadata,
    Column("alias", String(255), nullable=False, primary_key=True),
    Column("advisory_id", String(255), ForeignKey("advisories.id", ondelete="CASCADE"),
           nullable=False, primary_key=True),
)
Index("ix_advisory_aliases_advisory", advisory_aliases.c.advisory_id)

advisory_imports = Table(
    "advisory_imports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("summary", Text, nullable=False),  # JSON: the counts and skipped reasons
)

# -- custom domain names ---------------------------------------------------------------------
# A hostname served with a certificate of its own, chosen by SNI (moorage.domains). Kept here
# so that every replica's TLS front serves the same set. `key_pem` is the private key, sealed
# with the instance's master key when encryption at rest is on (see domains/store.py).
domains = Table(
    "domains", metadata,
    Column("host", String(253), primary_key=True),
    Column("cert_pem", Text, nullable=False),
    Column("key_pem", LargeBinary, nullable=False),
    Column("subject", String(255), nullable=False),
    Column("names", Text, nullable=False),  # JSON list of the certificate's DNS names
    Column("not_before", Float, nullable=False),
    Column("not_after", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False, default=""),
)

# -- CVE allowlist (scan) --------------------------------------------------------------------
# Advisories a namespace has accepted, with the reason, who accepted them and until when
# (moorage.scan.allowlist). An expired entry stays listed (marked expired) and accepts
# nothing. Removed with its namespace.
cve_allowlist = Table(
    "cve_allowlist", metadata,
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           primary_key=True),
    Column("advisory_id", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=False, default=""),
)

# -- Harbor scanner adapters (scan) ------------------------------------------------------------
# External scanners speaking Harbor's pluggable scanner API (moorage.scan.engines.harbor).
# `auth_secret` is how Moorage authenticates to the adapter (a token, "user:password" or an
# API key), sealed with the master key when encryption at rest is on (see harbor/store.py);
# `metadata` is the adapter's last GET /api/v1/metadata answer as checked (JSON).
scanner_adapters = Table(
    "scanner_adapters", metadata,
    Column("name", String(64), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("auth_kind", String(16), nullable=False, default="none"),
    Column("auth_secret", LargeBinary, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("metadata", Text, nullable=False),
    Column("health", String(16), nullable=False, default="healthy"),  # healthy | unhealthy
    Column("health_detail", Text, nullable=False, default=""),
    Column("checked_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False, default=""),
)

# -- scan results ----------------------------------------------------------------------------
# One row per scanned image (an image manifest: one platform of an index has its own row),
# removed with its manifest (ON DELETE CASCADE when GC deletes the manifest row). `findings`
# and `problems` are JSON; the summary counts are columns so that tag listings read them
# without parsing. Its packages are rows of their own (scan_packages), indexed by the keys
# advisories are stored under, so that "which images hold package X" is an index lookup and a
# rescan after an advisory import reads no layer.
scan_results = Table(
    "scan_results", metadata,
    Column("digest", String(200), ForeignKey("manifests.digest", ondelete="CASCADE"),
           primary_key=True),
    Column("repository", String(255), nullable=False),  # scanned through (for events, SBOM)
    Column("platform", String(100), nullable=False, default=""),
    Column("status", String(16), nullable=False),  # queued | running | done | failed
    Column("job_id", BigInteger, nullable=True),
    Column("queued_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("engines", String(255), nullable=False, default=""),
    Column("distro", Text, nullable=True),  # JSON {id, version_id, pretty_name}
    Column("layers", Text, nullable=False, default="[]"),  # JSON list of digests
    Column("problems", Text, nullable=False, default="[]"),
    Column("findings", Text, nullable=False, default="[]"),
    Column("error", Text, nullable=True),
    Column("critical", Integer, nullable=False, default=0),
    Column("high", Integer, nullable=False, default=0),
    Column("medium", Integer, nullable=False, default=0),
    Column("low", Integer, nullable=False, default=0),
    Column("unknown", Integer, nullable=False, default=0),
)

scan_packages = Table(
    "scan_packages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest", String(200), ForeignKey("scan_results.digest", ondelete="CASCADE"),
           nullable=False),
    Column("ecosystem", String(100), nullable=False),  # normalised, with the release
    Column("base", String(100), nullable=False),  # the ecosystem without its release
    Column("name", String(512), nullable=False),  # the advisory name, normalised
    Column("data", Text, nullable=False),  # JSON of the Package
)
Index("ix_scan_packages_key", scan_packages.c.ecosystem, scan_packages.c.name)
Index("ix_scan_packages_base", scan_packages.c.base, scan_packages.c.name)
Index("ix_scan_packages_digest", scan_packages.c.digest)

# Per-namespace scan settings; a namespace without a row scans on push.
scan_settings = Table(
    "scan_settings", metadata,
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           primary_key=True),
    Column("scan_on_push", Boolean, nullable=False, default=True),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False, default=""),
)

# -- image signing (signing) -------------------------------------------------------------------
# Trusted keys of a namespace (namespace_id set, scope = its name) or of the instance
# (namespace_id NULL, scope = ""): a cosign public key, and optionally a server-held private
# key, always sealed with the master key (moorage.store.sealed; never stored in the clear).
# A revoked key stays listed for history and is no longer trusted. Removed with its namespace.
signing_keys = Table(
    "signing_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(255), nullable=False),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=True),
    Column("name", String(64), nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("key_id", String(64), nullable=False),  # base64 SHA-256 of the DER (bundle hint)
    Column("fingerprint", String(80), nullable=False),  # sha256:<hex> of the DER
    Column("public_pem", Text, nullable=False),
    Column("private_sealed", LargeBinary, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=False, default=""),
    Column("revoked_at", Float, nullable=True),
    Column("revoked_by", String(255), nullable=True),
    UniqueConstraint("scope", "name", name="uq_signing_keys_scope_name"),
)

# Trusted keyless signers (a certificate's subject and its OIDC issuer, matched exactly).
signing_identities = Table(
    "signing_identities", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(255), nullable=False),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           nullable=True),
    Column("subject", String(512), nullable=False),
    Column("issuer", String(512), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=False, default=""),
    UniqueConstraint("scope", "subject", "issuer", name="uq_signing_identities"),
)

# The stored verification of a manifest in a repository (moorage.signing.service): whether
# a trusted key or identity signed it, and every verdict (JSON). Recomputed when a signature
# or a trusted key changes, never per request; removed with its manifest.
signature_results = Table(
    "signature_results", metadata,
    Column("repository", String(255), primary_key=True),
    Column("digest", String(200), ForeignKey("manifests.digest", ondelete="CASCADE"),
           primary_key=True),
    Column("verified", Boolean, nullable=False),
    Column("signers", Text, nullable=False, default="[]"),  # JSON list of names
    Column("verdicts", Text, nullable=False, default="[]"),  # JSON list of verdicts
    Column("signatures", Integer, nullable=False, default=0),
    Column("computed_at", Float, nullable=False),
)
Index("ix_signature_results_digest", signature_results.c.digest)
# Threat blocking (blocking/): the pull policy of a namespace; no row: nothing is blocked.
pull_policies = Table(
    "pull_policies", metadata,
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           primary_key=True),
    Column("severity", String(16), nullable=True),  # block findings at or above; NULL: off
    Column("block_unscanned", Boolean, nullable=False, default=False),
    Column("block_unsigned", Boolean, nullable=False, default=False),
    # before migration 0022, a JSON list of robot names; now unused (pull_policy_exempt)
    Column("exempt", Text, nullable=False, default="[]"),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False, default=""),
)

# The robot accounts a namespace's pull policy exempts, by account: deleting the robot drops
# its exemption, so one created again under the same name is not exempted.
pull_policy_exempt = Table(
    "pull_policy_exempt", metadata,
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

# What a pull decision needs of an image's scan, written when its scan completes: the
# status and the findings that a severity rule can block on, worst first (blocking/facts.py).
pull_scan_facts = Table(
    "pull_scan_facts", metadata,
    Column("digest", String(200), ForeignKey("manifests.digest", ondelete="CASCADE"),
           primary_key=True),
    Column("status", String(16), nullable=False),  # done | failed
    Column("findings", Text, nullable=False, default="[]"),
    Column("updated_at", Float, nullable=False),
)

# Manifests a stored verification says are signed by a trusted key or identity (written on
# `signature.verified`); no row: unsigned.
pull_signed = Table(
    "pull_signed", metadata,
    Column("repository", String(255), primary_key=True),
    Column("digest", String(200), ForeignKey("manifests.digest", ondelete="CASCADE"),
           primary_key=True),
    Column("signers", Text, nullable=False, default="[]"),
    Column("updated_at", Float, nullable=False),
)
Index("ix_pull_signed_digest", pull_signed.c.digest)

# When a blocked pull was last recorded per (repository, digest, actor): at most one audit
# entry and event a minute each, across every worker and replica.
pull_block_marks = Table(
    "pull_block_marks", metadata,
    Column("repository", String(255), primary_key=True),
    Column("digest", String(200), primary_key=True),
    Column("actor", String(255), primary_key=True),
    Column("at", Float, nullable=False),
)
Index("ix_pull_block_marks_at", pull_block_marks.c.at)

# -- replication: proxy cache namespaces (replication/proxy) --------------------------------
# A namespace served from an upstream registry. The password is sealed with the master key
# when encryption at rest is on (replication/proxy/store.py).
proxy_caches = Table(
    "proxy_caches", metadata,
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"),
           primary_key=True),
    Column("upstream_url", String(2048), nullable=False),
    Column("username", String(255), nullable=True),
    Column("password", LargeBinary, nullable=True),
    Column("ca_pem", Text, nullable=True),
    Column("insecure", Boolean, nullable=False, default=False),
    Column("rewrite_library", Boolean, nullable=False, default=False),
    Column("ttl_seconds", Integer, nullable=False, default=300),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("check_ok", Boolean, nullable=True),
    Column("check_detail", Text, nullable=False, default=""),
    Column("checked_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False, default=""),
)

# When a proxied tag was last checked upstream, and the digest it named then: every worker
# and replica agrees on "at most one HEAD per TTL" through this row.
proxy_tags = Table(
    "proxy_tags", metadata,
    Column("repository", String(255), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Column("digest", String(200), nullable=False),
    Column("checked_at", Float, nullable=False),
)

# Manifests fetched from upstream whose blobs are not all cached yet, so the normal put path
# cannot store them: served from here until it can (then they leave this table).
proxy_pending = Table(
    "proxy_pending", metadata,
    Column("repository", String(255), primary_key=True),
    Column("digest", String(200), primary_key=True),
    Column("media_type", String(255), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("fetched_at", Float, nullable=False),
)

# One upstream fetch per uncached blob across workers and replicas: the row is the claim.
proxy_fetches = Table(
    "proxy_fetches", metadata,
    Column("digest", String(200), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("beat_at", Float, nullable=False),
)

# Replication rules (replication/): copy artifacts to (push) or from (pull) another registry.
# The remote's password is sealed with the master key when encryption at rest is on.
replication_rules = Table(
    "replication_rules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("mode", String(8), nullable=False),  # push | pull
    Column("url", String(2048), nullable=False),
    Column("username", String(255), nullable=True),
    Column("secret", LargeBinary, nullable=True),
    Column("ca_pem", Text, nullable=True),
    Column("insecure", Boolean, nullable=False, default=False),
    Column("repositories", String(255), nullable=False, default="**"),  # glob
    Column("tags", String(255), nullable=False, default="*"),  # glob
    Column("destination_namespace", String(255), nullable=False, default=""),
    Column("on_event", Boolean, nullable=False, default=True),
    Column("cron", String(128), nullable=False, default=""),
    Column("propagate_deletes", Boolean, nullable=False, default=False),
    Column("bandwidth", BigInteger, nullable=True),  # bytes/s; NULL: unlimited
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False, default=""),
)

# One row per run of a rule; its log is the job's (jobs.log).
replication_executions = Table(
    "replication_executions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, ForeignKey("replication_rules.id", ondelete="CASCADE"),
           nullable=False),
    Column("trigger", String(16), nullable=False),  # manual | event | schedule
    Column("status", String(16), nullable=False),  # pending|running|succeeded|failed|stopped
    Column("job_id", Integer, nullable=True),
    Column("scope", Text, nullable=False, default="{}"),  # what an event run copies (JSON)
    Column("artifacts_done", Integer, nullable=False, default=0),
    Column("artifacts_total", Integer, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("copied", Integer, nullable=False, default=0),
    Column("errors", Text, nullable=False, default="[]"),  # [{artifact, error}]
    Column("message", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
)
Index("ix_replication_executions_rule", replication_executions.c.rule_id,
      replication_executions.c.id)

# Unfinished blob uploads of a rule at its destination, so that the next attempt (after a
# crash or a timeout) resumes them: the remote upload location, or the local upload id.
replication_uploads = Table(
    "replication_uploads", metadata,
    Column("rule_id", Integer, ForeignKey("replication_rules.id", ondelete="CASCADE"),
           primary_key=True),
    Column("repository", String(255), primary_key=True),
    Column("digest", String(200), primary_key=True),
    Column("location", Text, nullable=False),
    Column("at", Float, nullable=False),
)

# Artifact subscriptions (replication/subscriptions/): follow one upstream repository into a
# local one, with a tag filter, on a schedule. The password is sealed like a rule's.
subscriptions = Table(
    "subscriptions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("url", String(2048), nullable=False),
    Column("upstream", String(255), nullable=False),  # the repository followed there
    Column("username", String(255), nullable=True),
    Column("secret", LargeBinary, nullable=True),
    Column("ca_pem", Text, nullable=True),
    Column("insecure", Boolean, nullable=False, default=False),
    Column("repository", String(255), nullable=False),  # the local namespace/name
    Column("filter_kind", String(8), nullable=False, default="glob"),  # glob | regex | semver
    Column("filter", String(255), nullable=False, default="*"),
    Column("cron", String(128), nullable=False, default=""),
    Column("keep_newest", Integer, nullable=True),  # NULL: keep all
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False, default=""),
)

# One row per run of a subscription, the same shape as a replication rule's executions.
subscription_executions = Table(
    "subscription_executions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", Integer, ForeignKey("subscriptions.id", ondelete="CASCADE"),
           nullable=False),
    Column("trigger", String(16), nullable=False),  # manual | schedule
    Column("status", String(16), nullable=False),  # pending|running|succeeded|failed|stopped
    Column("job_id", Integer, nullable=True),
    Column("scope", Text, nullable=False, default="{}"),
    Column("artifacts_done", Integer, nullable=False, default=0),
    Column("artifacts_total", Integer, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("copied", Integer, nullable=False, default=0),
    Column("errors", Text, nullable=False, default="[]"),
    Column("message", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
)
Index("ix_subscription_executions_subscription", subscription_executions.c.subscription_id,
      subscription_executions.c.id)

# The local tags a subscription brought in, with the digest it set: only these are ever
# removed by keep-newest-N, and only while they still name that digest (a user's push since
# makes the tag the user's). `seq` orders them by when they came in (newest: highest).
subscription_tags = Table(
    "subscription_tags", metadata,
    Column("subscription_id", Integer, ForeignKey("subscriptions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("tag", String(128), primary_key=True),
    Column("digest", String(200), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", Float, nullable=False),
)


# Imports (replication/imports/): one row an import from another registry, with the source's
# sealed password; its plan in import_items (one row a repository with tag '', then one a
# tag), each item marked done once its copy is verified, so a restart resumes the plan.
imports = Table(
    "imports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", String(2048), nullable=False),
    Column("kind", String(16), nullable=False),  # distribution | harbor
    Column("scope", Text, nullable=False, default="{}"),  # {namespace} | {repositories}
    Column("prefix", String(255), nullable=False, default=""),  # of the local names (--into)
    Column("username", String(255), nullable=True),
    Column("secret", LargeBinary, nullable=True),
    Column("ca_pem", Text, nullable=True),
    Column("insecure", Boolean, nullable=False, default=False),
    Column("bandwidth", BigInteger, nullable=True),
    Column("status", String(16), nullable=False),  # pending|running|succeeded|failed|cancelled
    Column("job_id", Integer, nullable=True),
    Column("planned", Boolean, nullable=False, default=False),  # the repositories are listed
    Column("message", Text, nullable=False, default=""),
    Column("created_by", String(255), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
)

import_items = Table(
    "import_items", metadata,
    Column("import_id", Integer, ForeignKey("imports.id", ondelete="CASCADE"),
           primary_key=True),
    Column("repository", String(255), primary_key=True),
    Column("tag", String(128), primary_key=True),  # '' for the repository itself
    Column("state", String(8), nullable=False),  # pending | listed | done | failed
    Column("digest", String(200), nullable=True),
    Column("bytes", BigInteger, nullable=False, default=0),  # fetched for this item
    Column("attempt", Integer, nullable=False, default=0),  # the job attempt that finished it
    Column("error", Text, nullable=True),
)
Index("ix_import_items_state", import_items.c.import_id, import_items.c.state)

# Helm charts (moorage.helm): the metadata of each chart version held as an OCI artifact in
# repository NAMESPACE/NAME under the tag of its version, written when the chart's manifest is
# pushed (by `helm push` or the chart repository API) and removed when it goes. index.yaml is
# generated from these rows; the artifact stays the one storage.
helm_charts = Table(
    "helm_charts", metadata,
    Column("namespace", String(255), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("version", String(255), primary_key=True),
    Column("repository", String(255), nullable=False),
    Column("manifest_digest", String(200),
           ForeignKey("manifests.digest", ondelete="CASCADE"), nullable=False),
    Column("chart_digest", String(200), nullable=False),  # the .tgz layer: index.yaml's digest
    Column("chart_size", BigInteger, nullable=False),
    Column("prov_digest", String(200), nullable=True),
    Column("api_version", String(8), nullable=False),
    Column("app_version", String(255), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("icon", Text, nullable=False, default=""),
    Column("keywords", Text, nullable=False, default="[]"),  # JSON
    Column("maintainers", Text, nullable=False, default="[]"),  # JSON
    Column("dependencies", Text, nullable=False, default="[]"),  # JSON
    Column("metadata", Text, nullable=False, default="{}"),  # the whole config, JSON
    Column("created", Float, nullable=False),
)
Index("ix_helm_charts_repository", helm_charts.c.repository)
Index("ix_helm_charts_manifest", helm_charts.c.manifest_digest)

# One row per namespace with charts: a value that changes with every change to its charts,
# so that each worker's cached index.yaml is served only while it is still the namespace's
# (and is the ETag clients revalidate with).
helm_index_state = Table(
    "helm_index_state", metadata,
    Column("namespace", String(255), primary_key=True),
    Column("generation", String(32), nullable=False),
    Column("updated_at", Float, nullable=False),
)

# A chart version being uploaded through the chart repository API (moorage.helm): written in
# its own transaction before the push and deleted after it, so that two uploads of the same
# new version cannot both go ahead (the primary key), and so that a new chart repository or
# namespace takes its place in the helm_repositories / helm_namespaces quotas at once (the
# quotas count these rows with helm_charts'). A claim whose upload died expires.
helm_claims = Table(
    "helm_claims", metadata,
    Column("namespace", String(255), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("version", String(255), primary_key=True),
    Column("repository", String(255), nullable=False),
    Column("owner", String(32), nullable=False),  # the upload holding it (random)
    Column("expires_at", Float, nullable=False),
)

# The commit signal of a shared (PostgreSQL) database: one row (id 1) whose random value every
# write transaction that a cached pull-path answer may depend on replaces just before its
# COMMIT, on its own connection (db/changes.py). Each request reads it once; a worker serves
# an answer only while the value it was filed under is still the one read. Unused on SQLite,
# whose signal is a shared memory map beside the database file.
commit_signal = Table(
    "commit_signal", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", LargeBinary, nullable=False),
)
