"""Every refusal of the management API has one shape: {"error": {"code", "message"}}.

Clients (the CLI first) print `message` as it is, so each handler keeps the core's words and
never echoes request input back: a validation error on a body with a password in it must not
return the password.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from moorage.access.errors import AccessError
from moorage.oci.errors import RegistryError
from moorage.web.api.models import ErrorBody
from moorage.web.http import Scope

log = logging.getLogger("moorage.api")

# Documented on every route, so that the OpenAPI document shows the real error shape
# (FastAPI would otherwise advertise its own 422 body, which we never send).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "invalid request"},
    401: {"model": ErrorBody, "description": "authentication required or credentials refused"},
    403: {"model": ErrorBody, "description": "denied: role, network, quota (QUOTA_EXCEEDED), "
                                             "edition (EDITION) or an immutable tag "
                                             "(IMMUTABLE)"},
    404: {"model": ErrorBody, "description": "not found, or not visible to the caller"},
    409: {"model": ErrorBody, "description": "already exists"},
    413: {"model": ErrorBody, "description": "the request body is larger than 1 MiB "
                                             "(TOO_LARGE)"},
    422: {"model": ErrorBody, "description": "the request body or parameters do not validate"},
    429: {"model": ErrorBody, "description": "too many failed logins, or requests, from this "
                                             "account or address (TOOMANYREQUESTS); see "
                                             "Retry-After"},
}

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_HTTP_CODES = {400: "INVALID", 401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND",
               405: "UNSUPPORTED", 409: "CONFLICT", 413: "TOO_LARGE", 422: "INVALID"}


def error(status: int, code: str, message: str,
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def refusal(exc: AccessError | RegistryError) -> JSONResponse:
    """The answer to a refusal of the core, shared by the handlers below and RequestGuard
    (which answers before the endpoint runs)."""
    if isinstance(exc, AccessError):
        headers = {"WWW-Authenticate": 'Basic realm="moorage"'} if exc.status == 401 else {}
        return error(exc.status, exc.code, exc.message, {**headers, **exc.headers})
    reason = exc.detail.get("reason") if isinstance(exc.detail, dict) else None
    code = {"quota": "QUOTA_EXCEEDED", "feature": "EDITION", "immutable": "IMMUTABLE",
            "unavailable": "UNAVAILABLE", "tag": "TAG_INVALID"}.get(reason or "", exc.code)
    return error(exc.status, code, exc.message, exc.headers)


def allowed_methods(scope: Scope) -> list[str]:
    """Every method some route of the app takes on this path, found by asking the routes
    themselves (the same matching the router does), in a stable order."""
    routes = scope["app"].router.routes
    return [method for method in _METHODS
            if any(route.matches({**scope, "method": method})[0] is Match.FULL
                   for route in routes)]


def install_handlers(api: FastAPI) -> None:
    @api.exception_handler(AccessError)
    async def _access_error(_: Request, exc: AccessError) -> JSONResponse:
        return refusal(exc)

    @api.exception_handler(RegistryError)
    async def _registry_error(_: Request, exc: RegistryError) -> JSONResponse:
        return refusal(exc)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Pydantic's messages name the expectation, not the value; `input` is left out.
        problems = ["the request body is not valid JSON" if e.get("type") == "json_invalid"
                    else f"{_where(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}"
                    for e in exc.errors()]
        return error(422, "INVALID", "; ".join(problems) or "invalid request")

    @api.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 404 and message == "Not Found":
            message = "no such API endpoint"
        if exc.status_code == 405:
            # The router names the methods of the first route on the path only.
            allowed = allowed_methods(request.scope)
            headers["Allow"] = ", ".join(allowed)
            message = f"method {request.method[:20]} is not allowed here; use " \
                      f"{', '.join(m for m in allowed if m != 'HEAD')}"
        return error(exc.status_code, _HTTP_CODES.get(exc.status_code, "INVALID"), message,
                     headers or None)

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error in %s %s", request.method, request.url.path,
                  exc_info=(type(exc), exc, exc.__traceback__))
        return error(500, "UNKNOWN", "internal error; the server log has the details")
