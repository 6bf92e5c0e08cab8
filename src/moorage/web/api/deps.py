"""Who is calling the management API, as FastAPI dependencies.

The API takes the same credentials as the registry: Basic with a password, a personal access
token or a robot secret, or a personal access token as a Bearer credential (what the CLI
sends). Network allowlists apply here as on /v2, so an address the registry refuses cannot
manage it either.

The caller is established once per request, by `RequestGuard` (guard.py), before the body is
read; the dependencies below hand out what it found.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBasic, HTTPBearer
from starlette.concurrency import run_in_threadpool

from moorage.access.authentication import parse_basic
from moorage.access.errors import LoginFailed, Unauthenticated
from moorage.access.network import address_text
from moorage.access.principal import ANONYMOUS, Principal
from moorage.web.api.parts import ApiParts
from moorage.web.auth import OPEN
from moorage.web.http import Scope, header

# Where RequestGuard leaves the principal it established, or the refusal it decided on.
CALLER_KEY = "moorage.api.caller"
REFUSAL_KEY = "moorage.api.refusal"
# Where an in-process caller (the console, acting for a signed-in user) puts the principal it
# established itself. Only code in this process can set a scope key: no request can.
ACTING_KEY = "moorage.api.acting_for"


class _DocumentedBasic(HTTPBasic):
    """Declares the Basic scheme in the OpenAPI document; `caller` does the parsing, so that a
    malformed header gets our message rather than a generic one."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


class _DocumentedBearer(HTTPBearer):
    """Declares the Bearer scheme (a personal access token) in the OpenAPI document."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


_basic = _DocumentedBasic(scheme_name="basic", realm="moorage", auto_error=False,
                          description="username and password, access token or robot secret")
_bearer = _DocumentedBearer(scheme_name="bearer", auto_error=False,
                            description="a personal access token (mrg_p_…)")


def get_instance(request: Request) -> ApiParts:
    return request.app.state.instance  # type: ignore[no-any-return]


InstanceDep = Annotated[ApiParts, Depends(get_instance)]
# Where `caller` leaves what may be recorded of a refused username (changes.py announces it).
FAILED_ACTOR_KEY = "moorage.failed_actor"


def resolve_caller(instance: ApiParts, scope: Scope) -> Principal:
    """The principal behind a request, or ANONYMOUS when it carries no credentials; raises
    AccessError for refused credentials or addresses. Blocking (argon2, the database): run it
    in a worker thread."""
    access = instance.access
    access.authorizer.check_instance_network(access.address(scope))
    if not access.enabled:
        return OPEN  # auth off: anyone may do anything, as on /v2
    raw = header(scope, b"authorization")
    if not raw:
        return ANONYMOUS
    kind, _, value = raw.partition(" ")
    if kind.lower() == "basic":
        creds = parse_basic(value)
        if creds is None:
            raise Unauthenticated("malformed Basic credentials")
        try:
            return instance.authenticator.login(
                *creds, address=address_text(access.address(scope)) or None)
        except LoginFailed as exc:
            scope[FAILED_ACTOR_KEY] = exc.actor  # what the audit log may record
            raise
    if kind.lower() == "bearer":
        return instance.authenticator.login_token(value.strip())
    raise Unauthenticated("use Basic credentials or a Bearer access token")


async def caller(request: Request, instance: InstanceDep,
                 _b: Annotated[None, Depends(_basic)],
                 _t: Annotated[None, Depends(_bearer)]) -> Principal:
    """The principal RequestGuard established; or the refusal it decided on, raised here so
    that it is answered as this endpoint's."""
    refused = request.scope.get(REFUSAL_KEY)
    if refused is not None:
        raise refused
    found = request.scope.get(CALLER_KEY)
    if isinstance(found, Principal):
        return found
    # Only an app assembled without the guard gets here; resolve the same way.
    principal = await run_in_threadpool(resolve_caller, instance, request.scope)
    request.scope[CALLER_KEY] = principal
    return principal


def require_user(principal: Principal) -> Principal:
    """Anonymous callers are refused with 401 (with auth off everyone is OPEN, not them)."""
    if principal.anonymous and principal is not OPEN:
        raise Unauthenticated("authentication required")
    return principal


def user(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """Like `caller`, but anonymous callers are refused with 401."""
    return require_user(principal)


def one_value_each(request: Request) -> None:
    """Each query parameter of the API takes one value: a repeated one is refused, rather
    than silently reduced to its last value."""
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key in seen:
            raise RequestValidationError([{"type": "repeated", "loc": ("query", key[:64]),
                                           "msg": "given more than once"}])
        seen.add(key)


Caller = Annotated[Principal, Depends(caller)]
User = Annotated[Principal, Depends(user)]
