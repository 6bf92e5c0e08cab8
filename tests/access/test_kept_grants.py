"""A push granted to a bearer token is kept in the worker (web/auth.py, `granted`) only until
the next commit on the database or the first expiry the grant depends on: driven in-process,
with the real database and a real token, the access layer's clock moved past the robot
account's expiry. Whether the grounds were looked up again shows in the calls to
`holder_until`, the one lookup of a push's recheck. Over HTTP, every worker and replica
dropping a kept grant at a revocation is tests/access/test_token_revocation.py's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from moorage.access.principal import Principal
from moorage.access.scopes import parse_scopes
from moorage.app import build_instance
from moorage.oci.errors import RegistryError
from moorage.settings import load_settings

ADMIN = Principal(None, "admin", "user", is_admin=True)


def _scope(token: str) -> dict[str, object]:
    return {"type": "http", "method": "POST", "path": "/v2/team/app/blobs/uploads/",
            "query_string": b"", "scheme": "http", "client": ("192.0.2.10", 4000),
            "server": ("127.0.0.1", 5000),
            "headers": [(b"host", b"registry.test"), (b"authorization",
                                                      b"Bearer " + token.encode())]}


def test_a_kept_push_grant_ends_at_the_accounts_expiry_and_at_any_commit(
        tmp_path: Path) -> None:
    instance = build_instance(load_settings(environ={}, overrides={"data_dir": tmp_path}))
    manager, access = instance.manager, instance.access
    manager.create_namespace(ADMIN, "team")
    robot, _secret = manager.create_robot(ADMIN, "team", "ci", expires_in_days=1)
    assert robot.expires_at is not None
    token = instance.issuer.issue(robot.username, parse_scopes(["repository:team/app:pull,push"]),
                                  user_id=robot.id, account_created=robot.created_at).token

    lookups: list[Any] = []
    real = access.authenticator.holder_until

    def counted(*args: Any) -> Any:
        lookups.append(args)
        return real(*args)

    access.authenticator.holder_until = counted  # type: ignore[method-assign]

    def push() -> str:
        caller = asyncio.run(access.authorize(_scope(token), "team/app", "push"))
        assert caller.principal is not None
        return caller.principal.username

    assert push() == robot.username and len(lookups) == 1
    assert push() == robot.username and len(lookups) == 1  # kept: no lookup

    # Past the account's expiry the kept grant is never served: decided again each time.
    access.clock = lambda: robot.expires_at + 1  # type: ignore[operator]
    push()
    push()
    assert len(lookups) == 3
    access.clock = lambda: robot.expires_at  # type: ignore[assignment,return-value]
    push()
    assert len(lookups) == 3  # up to the expiry itself, kept again

    # Any commit drops it: here one that has nothing to do with the robot.
    manager.create_namespace(ADMIN, "elsewhere")
    push()
    assert len(lookups) == 4
    push()
    assert len(lookups) == 4

    # And a commit that ends the grant ends it at once.
    manager.delete_robot(ADMIN, "team", "ci")
    with pytest.raises(RegistryError) as refused:
        push()
    assert refused.value.status == 401 and "no longer exists" in refused.value.message
