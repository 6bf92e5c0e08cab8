"""Harbor scanner adapters: external scanners (Trivy's adapter, ...) that scans may use as
engines (instance administrators; editions with vulnerability scanning). Registering one
fetches its metadata first and refuses an adapter that cannot scan OCI or Docker images into
the v1.1 vulnerability report. The secret Moorage calls an adapter with goes in, never out.

Served on every edition, as the other scan routes are: an edition without `scanning` answers
403 naming the edition that has it. The service `install` builds is kept on
`api.state.scanners`; scans read the enabled adapters through their own (app.py), from the
same table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Request, Response, status
from pydantic import BaseModel, Field

from moorage.scan.engines.harbor import ScannerService
from moorage.scan.engines.harbor import install as install_service
from moorage.scan.engines.harbor.service import MAX_SECRET, UNCHANGED
from moorage.scan.engines.harbor.store import AdapterRow
from moorage.web.api.deps import User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import RequestBody, when
from moorage.web.api.parts import ApiParts

router = APIRouter(prefix="/api/v1/scanners", tags=["scanners"], responses=ERROR_RESPONSES)
NamePath = Annotated[str, Path(max_length=64, description="the adapter's name")]
AuthKind = Literal["none", "bearer", "basic", "apikey"]


class ScannerInfo(BaseModel):
    name: str
    vendor: str
    version: str


class Scanner(BaseModel):
    name: str = Field(description="the engine is named harbor:<name> in findings")
    url: str = Field(description="the adapter's base URL (its API is under /api/v1)")
    auth: AuthKind = Field(description="how Moorage authenticates to the adapter")
    has_secret: bool = Field(description="whether a secret is stored (it is never returned)")
    enabled: bool = Field(description="used by scans")
    scanner: ScannerInfo = Field(description="the scanner behind the adapter, from its "
                                             "metadata")
    consumes_mime_types: list[str]
    produces_mime_types: list[str]
    health: Literal["healthy", "unhealthy"]
    health_detail: str = Field(description="why the last check failed")
    checked_at: datetime | None = Field(description="the last metadata fetch (registration, "
                                                    "change or ping)")
    created_at: datetime | None
    updated_at: datetime | None
    updated_by: str

    @classmethod
    def of(cls, row: AdapterRow) -> Scanner:
        meta: dict[str, Any] = row.metadata
        info = meta.get("scanner") or {}
        return cls(name=row.name, url=row.url, auth=row.auth_kind,  # type: ignore[arg-type]
                   has_secret=row.has_secret, enabled=row.enabled,
                   scanner=ScannerInfo(name=str(info.get("name", "")),
                                       vendor=str(info.get("vendor", "")),
                                       version=str(info.get("version", ""))),
                   consumes_mime_types=list(meta.get("consumes_mime_types") or []),
                   produces_mime_types=list(meta.get("produces_mime_types") or []),
                   health=row.health,  # type: ignore[arg-type]
                   health_detail=row.health_detail, checked_at=when(row.checked_at),
                   created_at=when(row.created_at), updated_at=when(row.updated_at),
                   updated_by=row.updated_by)


class ScannerCreate(RequestBody):
    name: str = Field(max_length=64, examples=["trivy"])
    url: str = Field(max_length=2048, examples=["http://trivy-adapter:8080"])
    auth: AuthKind = "none"
    secret: str | None = Field(default=None, max_length=MAX_SECRET,
                               description="the bearer token, user:password or API key "
                               "(X-ScannerAdapter-API-Key); stored sealed with the master key "
                               "when encryption at rest is on, and never returned")
    enabled: bool = True


class ScannerChange(RequestBody):
    url: str | None = Field(default=None, max_length=2048)
    auth: AuthKind | None = None
    secret: str | None = Field(default=None, max_length=MAX_SECRET,
                               description="a new secret; leave it out to keep the stored one")
    enabled: bool | None = None


def _service(request: Request) -> ScannerService:
    service: ScannerService | None = getattr(request.app.state, "scanners", None)
    if service is None:  # an edition without scanning
        request.app.state.scanners_edition.require("scanning")  # 403 naming the edition
        raise RuntimeError("scanning is on but its adapters are not installed")
    return service


@router.get("")
async def list_scanners(request: Request, principal: User) -> list[Scanner]:
    """The registered scanner adapters."""
    return [Scanner.of(r) for r in await _service(request).list(principal)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_scanner(body: ScannerCreate, request: Request, principal: User) -> Scanner:
    """Register an adapter: its metadata is fetched and checked first."""
    row = await _service(request).add(principal, body.name, body.url, body.auth, body.secret,
                                      body.enabled)
    return Scanner.of(row)


@router.get("/{name}")
async def get_scanner(name: NamePath, request: Request, principal: User) -> Scanner:
    return Scanner.of(await _service(request).get(principal, name))


@router.patch("/{name}")
async def change_scanner(name: NamePath, body: ScannerChange, request: Request,
                         principal: User) -> Scanner:
    """Change the URL, the credential or whether scans use it; a new URL or credential is
    checked against the adapter's metadata before it is stored."""
    secret = body.secret if "secret" in body.model_fields_set else UNCHANGED
    row = await _service(request).change(principal, name, body.url, body.auth, secret,
                                         body.enabled)
    return Scanner.of(row)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_scanner(name: NamePath, request: Request, principal: User) -> Response:
    await _service(request).remove(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/ping")
async def ping_scanner(name: NamePath, request: Request, principal: User) -> Scanner:
    """Fetch the adapter's metadata now; `health` says whether it answered as it must."""
    return Scanner.of(await _service(request).ping(principal, name))


def install(api: FastAPI, instance: ApiParts) -> ScannerService | None:
    """Serve /api/v1/scanners; the adapters' service only when the edition has
    vulnerability scanning (else every route answers 403 naming the edition)."""
    api.include_router(router)
    if not instance.edition.has("scanning"):
        api.state.scanners = None
        api.state.scanners_edition = instance.edition
        return None
    service = install_service(instance.settings, instance.registry.db.engine, instance.edition,
                              instance.access.issuer, instance.registry)
    api.state.scanners = service
    return service
