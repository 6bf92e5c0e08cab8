"""Who is calling the management API, as FastAPI dependencies.

The API takes the same credentials as the registry: Basic with a password, a personal access
token or a robot secret, or a personal access token as a Bearer credential (what the CLI
sends). Network allowlists apply here as on /v2, so an address the registry refuses cannot
manage it either.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBearer

from moorage.access.authentication import parse_basic
from moorage.access.errors import LoginFailed, Unauthenticated
from moorage.access.network import address_text
from moorage.access.principal import ANONYMOUS, Principal
from moorage.app import Instance
from moorage.web.auth import OPEN


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


def get_instance(request: Request) -> Instance:
    return request.app.state.instance  # type: ignore[no-any-return]


InstanceDep = Annotated[Instance, Depends(get_instance)]
# Where `caller` leaves what may be recorded of a refused username (changes.py announces it).
FAILED_ACTOR_KEY = "moorage.failed_actor"


def caller(request: Request, instance: InstanceDep,
           _b: Annotated[None, Depends(_basic)], _t: Annotated[None, Depends(_bearer)]) -> Principal:
    """The principal behind the request, or ANONYMOUS when it carries no credentials."""
    access = instance.access
    access.authorizer.check_instance_network(access.address(request.scope))
    if not access.enabled:
        return OPEN  # auth off: anyone may do anything, as on /v2
    raw = request.headers.get("authorization")
    if not raw:
        return ANONYMOUS
    kind, _, value = raw.partition(" ")
    if kind.lower() == "basic":
        creds = parse_basic(value)
        if creds is None:
            raise Unauthenticated("malformed Basic credentials")
        try:
            return instance.authenticator.login(
                *creds, address=address_text(access.address(request.scope)) or None)
        except LoginFailed as exc:
            request.scope[FAILED_ACTOR_KEY] = exc.actor  # what the audit log may record
            raise
    if kind.lower() == "bearer":
        return instance.authenticator.login_token(value.strip())
    raise Unauthenticated("use Basic credentials or a Bearer access token")


def user(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """Like `caller`, but anonymous callers are refused with 401."""
    if principal.anonymous and principal is not OPEN:
        raise Unauthenticated("authentication required")
    return principal


Caller = Annotated[Principal, Depends(caller)]
User = Annotated[Principal, Depends(user)]
