"""Proxy cache namespaces (replication/proxy): a namespace bound to an upstream registry that
serves pulls through and caches what it serves. Instance administrators only; editions
without proxy caches answer 403 naming the edition that has them. The upstream password goes
in, never out (`has_password` says whether one is stored).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from moorage.web.api.deps import User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import RequestBody, when

if TYPE_CHECKING:
    from moorage.replication.proxy import ProxyService
    from moorage.replication.proxy.store import ProxyRow

router = APIRouter(prefix="/api/v1/proxy-caches", tags=["proxy caches"],
                   responses=ERROR_RESPONSES)
NamespacePath = Annotated[str, Path(max_length=64, description="the proxy namespace")]


class ProxyCache(BaseModel):
    namespace: str
    upstream_url: str = Field(description="the upstream registry's base URL")
    username: str | None
    has_password: bool = Field(description="whether a password is stored (never returned)")
    has_ca: bool = Field(description="whether a CA bundle replaces the system's for TLS")
    insecure: bool = Field(description="no TLS verification, plain http allowed")
    rewrite_library: bool = Field(description="one-segment names get Docker Hub's library/")
    ttl_seconds: int
    enabled: bool = Field(description="when off, only cached content is served")
    check_ok: bool | None = Field(description="the last check's outcome; null: never checked")
    check_detail: str
    checked_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    updated_by: str

    @classmethod
    def of(cls, row: ProxyRow) -> ProxyCache:
        return cls(namespace=row.namespace, upstream_url=row.upstream_url,
                   username=row.username, has_password=row.has_password,
                   has_ca=bool(row.ca_pem), insecure=row.insecure,
                   rewrite_library=row.rewrite_library, ttl_seconds=row.ttl_seconds,
                   enabled=row.enabled, check_ok=row.check_ok, check_detail=row.check_detail,
                   checked_at=when(row.checked_at), created_at=when(row.created_at),
                   updated_at=when(row.updated_at), updated_by=row.updated_by)


class ProxyCacheCreate(RequestBody):
    namespace: str = Field(max_length=64, examples=["hub"],
                           description="made when it does not exist")
    upstream_url: str = Field(max_length=2048, examples=["https://registry-1.docker.io"])
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=4096,
                                 description="stored sealed with the master key when "
                                 "encryption at rest is on; never returned")
    ca_pem: str | None = Field(default=None, max_length=65536,
                               description="PEM certificates to trust for the upstream")
    insecure: bool = False
    rewrite_library: bool = False
    ttl_seconds: int = Field(default=300, ge=10, le=7 * 24 * 3600,
                             description="seconds between two checks of a tag upstream (a "
                             "HEAD); within it a tag is answered from the cache")
    enabled: bool = True


class ProxyCacheChange(RequestBody):
    upstream_url: str | None = Field(default=None, max_length=2048)
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=4096,
                                 description="a new password; leave it out to keep the "
                                 "stored one, null to remove it")
    ca_pem: str | None = Field(default=None, max_length=65536)
    insecure: bool | None = None
    rewrite_library: bool | None = None
    ttl_seconds: int | None = Field(default=None, ge=10, le=7 * 24 * 3600)
    enabled: bool | None = None


def _service(request: Request) -> ProxyService:
    instance = request.app.state.instance
    service = getattr(instance, "proxy", None)
    if service is None:
        instance.edition.require("proxy_cache")  # 403 naming the edition
        raise RuntimeError("proxy caches are on but not installed")
    return service  # type: ignore[no-any-return]


@router.get("")
async def list_proxy_caches(request: Request, principal: User) -> list[ProxyCache]:
    """The proxy cache namespaces."""
    rows = await run_in_threadpool(_service(request).list, principal)
    return [ProxyCache.of(r) for r in rows]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_proxy_cache(body: ProxyCacheCreate, request: Request,
                             principal: User) -> ProxyCache:
    """Bind a namespace to an upstream registry (the namespace is made if needed)."""
    row = await run_in_threadpool(
        _service(request).create, principal, body.namespace, body.upstream_url, body.username,
        body.password, body.ca_pem, body.insecure, body.rewrite_library, body.ttl_seconds,
        body.enabled)
    return ProxyCache.of(row)


@router.get("/{namespace}")
async def get_proxy_cache(namespace: NamespacePath, request: Request,
                          principal: User) -> ProxyCache:
    return ProxyCache.of(await run_in_threadpool(_service(request).get, principal, namespace))


@router.patch("/{namespace}")
async def change_proxy_cache(namespace: NamespacePath, body: ProxyCacheChange,
                             request: Request, principal: User) -> ProxyCache:
    """Change what is given; what is left out stays."""
    given = {k: getattr(body, k) for k in body.model_fields_set}
    if "upstream_url" in given:
        given["url"] = given.pop("upstream_url")
    row = await run_in_threadpool(lambda: _service(request).change(principal, namespace,
                                                                   **given))
    return ProxyCache.of(row)


@router.delete("/{namespace}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_proxy_cache(namespace: NamespacePath, request: Request,
                             principal: User) -> Response:
    """Unbind: the namespace and what was cached stay, as ordinary content."""
    await run_in_threadpool(_service(request).delete, principal, namespace)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{namespace}/check")
async def check_proxy_cache(namespace: NamespacePath, request: Request,
                            principal: User) -> ProxyCache:
    """Reach the upstream now with the stored credentials; `check_ok` says how it went."""
    return ProxyCache.of(await _service(request).check(principal, namespace))
