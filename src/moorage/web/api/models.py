"""Request and response bodies of the management API, as Pydantic models.

They exist so that the OpenAPI document describes every field with its type, and so that a
response can only ever carry the fields listed here: password hashes and secret hashes live on
the database rows and have no field to travel in. Secrets appear only in the `*Created` models,
returned once by the creation endpoints.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from moorage.access.editions import FEATURE_NAMES, QUOTA_NAMES
from moorage.db.access import (GroupRoleRow, NamespaceRow, NetworkRuleRow, RepositoryRow,
                               TokenRow, UserRow)
from moorage.units import parse_duration

Visibility = Literal["private", "public"]
Role = Literal["owner", "maintainer", "developer", "guest"]
RobotRole = Literal["maintainer", "developer", "guest"]
RuleKind = Literal["allow", "trusted"]


# -- ranges ---------------------------------------------------------------------------------
# Every number the API takes has one. Row ids, and the cursors and counts compared with them,
# fit the INTEGER columns they live in: 32 bits on PostgreSQL, which refuses to compare a
# larger number with such a column ("integer out of range"), so the same bound holds on both
# backends. Byte counts live in BIGINT columns: below 2**63, written `lt=2**63` because
# FastAPI's OpenAPI document carries bounds as floats (2**63 - 1 would come out as 2**63;
# 2**63 itself is exact). Lifetimes end well before datetime's last day, in the year 9999.
INT64_LIMIT = 2**63
INT32_MAX = 2**31 - 1
MAX_LIFETIME_DAYS = 36500  # a hundred years
MAX_DURATION_SECONDS = INT32_MAX  # about 68 years
_FIRST_MOMENT = datetime.min.replace(tzinfo=timezone.utc)
_LAST_MOMENT = datetime.max.replace(tzinfo=timezone.utc)


def when(timestamp: float | None) -> datetime | None:
    """Epoch seconds from the database as an aware UTC datetime (ISO 8601 in JSON).

    Total: a row stored by older code with a time beyond datetime's range (an expiry a
    billion days out) shows as the first or last representable moment, so that listing it
    never fails."""
    if timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return _LAST_MOMENT if timestamp > 0 else _FIRST_MOMENT


def _seconds(value: str | int) -> int:
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError):
        raise ValueError("expected seconds, or a number with a unit: 45s, 30m, 12h, 7d, 2w") \
            from None
    if not 0 <= seconds <= MAX_DURATION_SECONDS:
        raise ValueError(f"at most {MAX_DURATION_SECONDS} seconds (about 68 years)")
    return seconds


# A duration as people write it ("30d") or in seconds; validated into seconds.
Duration = Annotated[
    Annotated[int, Field(ge=0, le=MAX_DURATION_SECONDS)]
    | Annotated[str, Field(pattern=r"^\s*[0-9]+(\.[0-9]+)?\s*[smhdwSMHDW]?\s*$",
                           max_length=32)],
    AfterValidator(_seconds),
]
# A number of days something lives: more than none, at most a hundred years.
Lifetime = Annotated[float, Field(gt=0, le=MAX_LIFETIME_DAYS, allow_inf_nan=False)]
# Row ids in paths, and the cursors that page through them.
IdPath = Annotated[int, Path(ge=1, le=INT32_MAX)]
CursorQuery = Annotated[int | None, Query(ge=1, le=INT32_MAX,
                                          description="only rows with a smaller id")]


class RequestBody(BaseModel):
    """Request bodies refuse unknown fields: a typo ("admin" for "is_admin") must not pass
    silently as a no-op. And they are strict: `false` is not the number 0, nor `"7"` the
    number 7, nor `0` a boolean."""

    model_config = ConfigDict(extra="forbid", strict=True)


# -- errors -------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(description="stable code: INVALID, UNAUTHORIZED, DENIED, NOT_FOUND, "
                                  "CONFLICT, QUOTA_EXCEEDED, EDITION, …")
    message: str = Field(description="what went wrong, in words a person can act on")


class ErrorBody(BaseModel):
    error: ErrorDetail


# -- instance -----------------------------------------------------------------------------
class QuotaUsage(BaseModel):
    limit: int | None = Field(description="null means unlimited, 0 means not available")
    used: int | None = Field(description="null when this instance does not count it")


# The names this version builds (access/editions.py), so that the OpenAPI document lists
# exactly what `info` can answer and nothing of the plan that is still to come.
FeatureName = Literal[FEATURE_NAMES]  # type: ignore[valid-type]
QuotaName = Literal[QUOTA_NAMES]  # type: ignore[valid-type]


class SignInMethod(BaseModel):
    kind: Literal["oidc"] = Field(description="oidc: OpenID Connect single sign-on")
    display_name: str = Field(description="what the console's button says: Sign in with …")
    url: str = Field(description="the console path a browser is sent to to sign in this way")


class ScanningInfo(BaseModel):
    engines: list[str] = Field(description="the vulnerability engines of a scan now: osv "
                               "(built in) and harbor:<name> for each enabled scanner adapter")
    harbor_adapters: int = Field(description="enabled Harbor scanner adapters")
    syft: bool = Field(description="whether Syft runs as the second inventory engine "
                                   "(scan_syft, and a binary found)")


class InstanceInfo(BaseModel):
    version: str
    edition: Literal["personal", "basic", "advanced"]
    auth: Literal["token", "off"]
    features: dict[FeatureName, bool] = Field(  # type: ignore[valid-type]
        description="each feature this version implements, and whether the edition has it")
    quotas: dict[QuotaName, QuotaUsage] = Field(  # type: ignore[valid-type]
        description="each quota this version enforces")
    sign_in: list[Literal["local", "ldap", "oidc"]] = Field(
        default_factory=lambda: ["local"],
        description="where accounts may sign in on this instance: local passwords, an LDAP "
                    "directory, an OpenID provider (only those configured)")
    single_sign_on: list[SignInMethod] = Field(
        default_factory=list, description="ways to sign in to the console besides a "
        "password (OpenID Connect), only those configured; their accounts use a personal "
        "access token (CLI secret) as the password with docker and podman")
    scanning: ScanningInfo | None = Field(
        None, description="what vulnerability scans run with; null on editions without "
                          "scanning")


# -- namespaces ---------------------------------------------------------------------------
class Namespace(BaseModel):
    name: str
    visibility: Visibility
    description: str
    credential_free_pull: bool
    created_at: datetime
    role: Role | None = Field(None, description="the caller's role in this namespace, if any")
    storage_used: int = Field(0, description="bytes of the distinct blobs its manifests "
                                             "reference")
    storage_quota: int | None = Field(None, description="bytes; null means no limit")

    @classmethod
    def of(cls, row: NamespaceRow, role: str | None = None) -> Namespace:
        return cls(name=row.name, visibility=row.visibility,  # type: ignore[arg-type]
                   description=row.description, credential_free_pull=row.credential_free_pull,
                   created_at=when(row.created_at), role=role,  # type: ignore[arg-type]
                   storage_used=row.storage_used, storage_quota=row.storage_quota)


class NamespaceCreate(RequestBody):
    name: str = Field(description="lowercase letters, digits and separators (. _ -)",
                      examples=["team"])
    visibility: Visibility = "private"
    description: str = ""
    credential_free_pull: bool = Field(
        False, description="clients on trusted networks may pull without credentials")


class NamespaceUpdate(RequestBody):
    visibility: Visibility | None = None
    description: str | None = None
    credential_free_pull: bool | None = None
    storage_quota: int | None = Field(None, ge=0, lt=INT64_LIMIT,
                                      description="bytes; null removes the limit "
                                                  "(administrators only)")


# -- members ------------------------------------------------------------------------------
class Member(BaseModel):
    username: str
    kind: Literal["user", "robot"]
    role: Role


class MemberSet(RequestBody):
    role: Role


# -- robots -------------------------------------------------------------------------------
class Robot(BaseModel):
    name: str = Field(description="the robot's short name within its namespace")
    username: str = Field(description="what the robot logs in with: robot$<namespace>+<name>")
    namespace: str
    role: Role | None
    description: str
    expires_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: UserRow, namespace: str, role: str | None) -> Robot:
        return cls(name=row.username.rpartition("+")[2], username=row.username,
                   namespace=namespace, role=role or None,  # type: ignore[arg-type]
                   description=row.description, expires_at=when(row.expires_at),
                   created_at=when(row.created_at))  # type: ignore[arg-type]


class RobotCreate(RequestBody):
    name: str = Field(examples=["ci"])
    role: RobotRole = "developer"
    description: str = ""
    expires_in_days: Lifetime | None = Field(None, description="null: never expires")


class RobotCreated(Robot):
    secret: str = Field(description="the robot's password; shown this once, never again")


# -- repositories -------------------------------------------------------------------------
class Repository(BaseModel):
    name: str
    namespace: str
    visibility: Visibility = Field(description="the visibility that applies: the "
                                               "repository's own, or its namespace's")
    visibility_inherited: bool = Field(
        description="true: it follows its namespace's visibility, whenever that changes")
    description: str
    tag_count: int
    created_at: datetime
    last_pushed_at: datetime | None = Field(None, description="when a manifest was last "
                                                              "pushed into it")

    @classmethod
    def of(cls, row: RepositoryRow) -> Repository:
        return cls(name=row.name, namespace=row.namespace,
                   visibility=row.visibility,  # type: ignore[arg-type]
                   visibility_inherited=row.inherited,
                   description=row.description, tag_count=row.tag_count,
                   created_at=when(row.created_at),  # type: ignore[arg-type]
                   last_pushed_at=when(row.last_pushed_at))


class RepositoryUpdate(RequestBody):
    visibility: Literal["private", "public", "inherit"] | None = Field(
        None, description="its own visibility, or inherit: follow the namespace's")
    description: str | None = None


ManifestKind = Literal["image", "index", "artifact", "unknown"]
ReferrerKind = Literal["signature", "sbom", "attestation", "artifact"]


class Platform(BaseModel):
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None


class TagPlatform(Platform):
    digest: str = Field(description="the index's manifest for this platform")
    size: int | None = Field(description="bytes of its config and layers; null when that "
                                         "manifest is not stored here")


class Tag(BaseModel):
    name: str
    digest: str
    updated_at: datetime = Field(description="when it was last pushed (moved)")
    pulled_at: datetime | None = Field(
        None, description="when its manifest was last pulled by this tag, recorded at most "
                          "once a minute; null: no pull recorded")
    media_type: str | None = Field(None, description="of its manifest")
    artifact_type: str | None = None
    kind: ManifestKind = "unknown"
    size: int | None = Field(None, description="bytes: an image's config and layers; an "
                                               "index's distinct blobs over its images")
    platforms: list[TagPlatform] = Field([], description="an index's platforms (attestation "
                                                         "manifests left out)")
    immutable: bool = Field(False, description="an enabled immutability rule protects it")
    immutable_rule: int | None = Field(None, description="the id of that rule")
    referrer: bool = Field(False, description="its manifest refers to another (a signature, "
                                              "an SBOM…)")
    vulnerabilities: dict[str, int | str] | None = Field(
        None, description="its last scan: status, and counts by severity (critical, high, "
                          "medium, low, unknown; an index's images added up); null when "
                          "never scanned or the edition has no scanning")
    signature: Literal["verified", "not verified", "unsigned"] | None = Field(
        None, description="its stored signature verification: verified by a trusted key or "
                          "identity, signed but not verified, unsigned; null when the edition "
                          "has no signing")


class Layer(BaseModel):
    digest: str
    media_type: str
    size: int
    title: str | None = Field(None, description="org.opencontainers.image.title, if any")
    foreign: bool = Field(False, description="stored elsewhere by design; not held here")


class HistoryEntry(BaseModel):
    created: str | None
    created_by: str | None
    comment: str | None
    empty_layer: bool


class ImageConfig(BaseModel):
    digest: str
    media_type: str
    size: int
    read: bool = Field(description="whether the fields below were read from the blob")
    note: str | None = Field(None, description="why they were not")
    created: str | None = None
    author: str | None = None
    architecture: str | None = None
    os: str | None = None
    variant: str | None = None
    os_version: str | None = None
    user: str | None = None
    working_dir: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = []
    labels: dict[str, str] = {}
    exposed_ports: list[str] = []
    volumes: list[str] = []
    stop_signal: str | None = None
    history: list[HistoryEntry] = []
    truncated: bool = Field(False, description="a list was longer than shown")


class ManifestChild(BaseModel):
    digest: str
    media_type: str
    size: int = Field(description="bytes of the child manifest itself")
    platform: Platform | None
    image_size: int | None = Field(description="bytes of its config and layers, when stored")
    attestation: bool = Field(False, description="an attestation manifest (buildx) rather "
                                                 "than a platform's image")


class Referrer(BaseModel):
    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    kind: ReferrerKind
    tag: str | None = Field(None, description="found under the tag scheme "
                                              "(sha256-<hex>.sig), rather than by its subject")
    created: str | None = None
    annotations: dict[str, str] = {}
    referrers: list[Referrer] = Field([], description="what refers to this one in turn")


Referrer.model_rebuild()


class ManifestDetails(BaseModel):
    repository: str
    digest: str
    media_type: str
    size: int = Field(description="bytes of the manifest itself")
    kind: ManifestKind
    artifact_type: str | None
    pushed_at: datetime | None = Field(description="when it was last pushed here")
    tags: list[str] = Field(description="this repository's tags on it (at most 100)")
    annotations: dict[str, str]
    subject: str | None = Field(description="the manifest this one refers to, if any")
    total_size: int | None = Field(description="bytes of the config and layers (an index: "
                                               "its images' distinct blobs)")
    config: ImageConfig | None = None
    layers: list[Layer] = []
    children: list[ManifestChild] = Field([], description="an index's manifests")
    indexes: list[str] = Field([], description="indexes here that list this manifest")
    referrers: list[Referrer] = Field([], description="signatures, SBOMs, attestations and "
                                                      "other artifacts referring to it")
    referrers_truncated: bool = Field(False, description="the tree was deeper or larger "
                                                         "than shown")
    truncated: bool = Field(False, description="more layers or children than shown")


# -- users --------------------------------------------------------------------------------
class User(BaseModel):
    username: str
    is_admin: bool
    disabled: bool = Field(False, description="disabled by an administrator: it can neither "
                                              "log in nor refresh tokens")
    source: Literal["local", "ldap", "oidc"] = Field(
        "local", description="where the account signs in: its password here, the LDAP "
                             "directory, or single sign-on through the OpenID provider")
    created_at: datetime

    @classmethod
    def of(cls, row: UserRow) -> User:
        return cls(username=row.username, is_admin=row.is_admin,
                   disabled=row.disabled_at is not None, source=row.source,  # type: ignore[arg-type]
                   created_at=when(row.created_at))  # type: ignore[arg-type]


class UserCreate(RequestBody):
    username: str = Field(examples=["alice"])
    password: str = Field(description="at least 8 characters")
    is_admin: bool = False


class UserUpdate(RequestBody):
    password: str | None = Field(None, description="a new password, at least 8 characters")
    is_admin: bool | None = None
    disabled: bool | None = Field(None, description="disable the account (administrators "
                                                    "only): its refresh tokens end, and it "
                                                    "can log in again only once enabled")
    source: Literal["local", "ldap", "oidc"] | None = Field(
        None, description="switch where the account signs in (administrators only; to a "
                          "configured source; `local` needs `password` too). Its refresh "
                          "tokens and console sessions end")


class Me(BaseModel):
    username: str
    kind: Literal["user", "robot", "anonymous"]
    is_admin: bool
    robot_namespace: str | None = None
    roles: dict[str, Role] = Field(description="namespace -> role held there")
    source: Literal["local", "ldap", "oidc"] = Field(
        "local", description="where the account signs in; an oidc account uses a personal "
                             "access token (CLI secret) as its password with clients")


# -- personal access tokens ---------------------------------------------------------------
class Token(BaseModel):
    id: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool = Field(description="neither revoked nor expired")

    @classmethod
    def of(cls, row: TokenRow, now: float) -> Token:
        active = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
        return cls(id=row.id, name=row.name, created_at=when(row.created_at),  # type: ignore[arg-type]
                   expires_at=when(row.expires_at), last_used_at=when(row.last_used_at),
                   revoked_at=when(row.revoked_at), active=active)


class TokenCreate(RequestBody):
    name: str = Field(examples=["laptop"])
    expires_in_days: Lifetime | None = Field(90, description="null: never expires")


class TokenCreated(BaseModel):
    id: str
    name: str
    expires_at: datetime | None
    secret: str = Field(description="the token: use it as the password (Basic) or as a Bearer "
                                    "credential; shown this once, never again")


# -- network rules ------------------------------------------------------------------------
class NetworkRule(BaseModel):
    id: int
    cidr: str
    kind: RuleKind
    namespace: str | None = Field(description="null: the rule is instance-wide")
    description: str
    created_at: datetime

    @classmethod
    def of(cls, row: NetworkRuleRow) -> NetworkRule:
        return cls(id=row.id, cidr=row.cidr, kind=row.kind,  # type: ignore[arg-type]
                   namespace=row.namespace, description=row.description,
                   created_at=when(row.created_at))  # type: ignore[arg-type]


class NetworkRuleCreate(RequestBody):
    cidr: str = Field(examples=["10.0.0.0/8"])
    kind: RuleKind = Field("allow", description="allow: an allowlist entry; trusted: clients "
                                                "there may pull credential-free")
    namespace: str | None = Field(None, description="limit an allow rule to one namespace")
    description: str = ""


# -- single sign-on: roles from directory groups ------------------------------------------
class GroupRole(BaseModel):
    id: int
    group: str = Field(description="an LDAP group DN as the directory spells it, or a value "
                                   "of the OpenID provider's groups claim")
    namespace: str
    role: Role
    created_at: datetime

    @classmethod
    def of(cls, row: GroupRoleRow) -> GroupRole:
        return cls(id=row.id, group=row.group_name, namespace=row.namespace,
                   role=row.role, created_at=when(row.created_at))  # type: ignore[arg-type]


class GroupRoleCreate(RequestBody):
    group: str = Field(min_length=1, max_length=1024,
                       examples=["cn=developers,ou=groups,dc=example,dc=com"])
    namespace: str = Field(min_length=1, max_length=255)
    role: Role = Field(description="given to the group's members at each sign-in, taken back "
                                   "at the first sign-in without the group")
