"""Personal access tokens (what scripts and the CLI log in with instead of a password) and the
OAuth2 refresh tokens that clients keep: listed and revoked by their owner."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Query, status

from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import Token, TokenCreate, TokenCreated, when

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], responses=ERROR_RESPONSES)


@router.get("")
def list_tokens(instance: InstanceDep, principal: User,
                username: str | None = Query(None, description="another account's tokens "
                                                               "(administrators)"),
                kind: Literal["personal", "refresh"] = Query(
                    "personal", description="personal: access tokens; refresh: the OAuth2 "
                                            "refresh tokens clients got with the password "
                                            "(named after the client_id that asked)")
                ) -> list[Token]:
    """The caller's tokens, revoked and expired ones included; never their secrets. Revoke
    either kind with DELETE /tokens/{id}; a password change revokes every refresh token."""
    now = time.time()
    return [Token.of(t, now) for t in instance.manager.list_tokens(principal, username, kind)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, instance: InstanceDep, principal: User) -> TokenCreated:
    """The response carries the token, this once; only a hash of its secret is kept."""
    created = instance.manager.create_token(principal, body.name, body.expires_in_days)
    return TokenCreated(id=created.id, name=created.name, expires_at=when(created.expires_at),
                        secret=created.secret)


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: str, instance: InstanceDep, principal: User) -> None:
    """Revoked at once: the next request that presents it is refused, and bearer tokens
    issued from it can no longer push or delete."""
    instance.manager.revoke_token(principal, token_id)
