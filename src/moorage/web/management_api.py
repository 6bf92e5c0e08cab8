"""The management API under /api/v1 (FastAPI): namespaces, repositories, accounts, rules.

Handlers are thin: they authenticate the caller, call AccessManager and shape the answer.
Secrets (passwords, tokens, robot secrets) appear in a response only once, at creation.
"""


from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from moorage import __version__
from moorage.access.authentication import parse_basic
from moorage.access.errors import AccessError, Unauthenticated
from moorage.access.principal import ANONYMOUS, Principal
from moorage.oci.errors import RegistryError

if TYPE_CHECKING:
    from moorage.app import Instance


def create_management_api(instance: "Instance") -> FastAPI:
    api = FastAPI(title="Moorage management API", version=__version__,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None)

    @api.exception_handler(AccessError)
    async def _access_error(_: Request, exc: AccessError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="moorage"'} if exc.status == 401 else None
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}},
                            status_code=exc.status, headers=headers)

    @api.exception_handler(RegistryError)
    async def _registry_error(_: Request, exc: RegistryError) -> JSONResponse:
        reason = exc.detail.get("reason") if isinstance(exc.detail, dict) else None
        code = {"quota": "QUOTA_EXCEEDED", "feature": "EDITION"}.get(reason or "", exc.code)
        return JSONResponse({"error": {"code": code, "message": exc.message}},
                            status_code=exc.status)

    def caller(request: Request) -> Principal:
        """Basic credentials (password, access token, robot secret) or a Bearer access token."""
        access = instance.access
        access.authorizer.check_instance_network(access.address(request.scope))
        raw = request.headers.get("authorization")
        if not raw:
            return ANONYMOUS
        kind, _, value = raw.partition(" ")
        if kind.lower() == "basic":
            creds = parse_basic(value)
            if creds is None:
                raise Unauthenticated("malformed Basic credentials")
            return instance.authenticator.login(*creds)
        if kind.lower() == "bearer":
            return instance.authenticator.login_token(value.strip())
        raise Unauthenticated("use Basic credentials or a Bearer access token")

    def user(principal: Annotated[Principal, Depends(caller)]) -> Principal:
        if principal.anonymous:
            raise Unauthenticated("authentication required")
        return principal

    Caller = Annotated[Principal, Depends(caller)]
    User = Annotated[Principal, Depends(user)]

    @api.get("/api/v1/info", tags=["instance"])
    def info(principal: Caller) -> dict[str, object]:
        """Version, edition, features, and quotas with their usage."""
        usage = instance.manager.usage()
        quotas = instance.edition.quotas()
        return {
            "version": __version__, "edition": instance.edition.name,
            "auth": instance.settings.auth,
            "features": instance.edition.features(),
            "quotas": {name: {"limit": limit, "used": usage.get(name)}
                       for name, limit in quotas.items()},
        }

    _ = User  # routes below use it
    return api
