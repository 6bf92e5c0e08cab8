"""The token endpoint's bounds: scopes per request, and logins that never stall the others."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.access.conftest import Secured, from_address, new_address
from tests.access.helpers import ADMIN, admin_push, bearer, token, unique

MAX_SCOPES = 100


def test_scopes_per_request_are_capped(secured: Secured) -> None:
    server = secured.next()
    scopes = [("scope", f"repository:cap/repo{n}:pull") for n in range(MAX_SCOPES)]
    allowed = httpx.get(f"{server.url}/auth/token", auth=ADMIN,
                        params=[("service", "moorage"), *scopes])
    assert allowed.status_code == 200, allowed.text[:300]

    too_many = [*scopes, ("scope", "repository:cap/one-more:pull")]
    resp = httpx.get(f"{server.url}/auth/token", auth=ADMIN,
                     params=[("service", "moorage"), *too_many])
    assert resp.status_code == 400, resp.text[:300]
    assert resp.json()["errors"][0]["message"] == \
        f"at most {MAX_SCOPES} scopes per token request, not {MAX_SCOPES + 1}"
    # Several scopes in one parameter count one by one.
    packed = " ".join(s for _, s in too_many)
    resp = httpx.post(f"{server.url}/auth/token", data={
        "grant_type": "password", "username": ADMIN[0], "password": ADMIN[1],
        "service": "moorage", "client_id": "tests", "scope": packed})
    assert resp.status_code == 400, resp.text[:300]
    assert resp.json()["error"] == "invalid_scope"


def test_a_login_stuck_in_the_database_does_not_hold_up_pulls(secured: Secured) -> None:
    """A login waits on a lock the test holds on the accounts table; meanwhile pulls on the
    same process are answered. No clock is involved: the login cannot finish before the test
    lets go of the lock, and PostgreSQL itself says when the login is waiting on it (SQLite
    has no such view, so this runs on the scale-out backend)."""
    if secured.backend != "scaleout":
        pytest.skip("needs PostgreSQL's pg_locks to see the login waiting")
    from sqlalchemy import create_engine, text

    server = secured.servers[0]
    repo = unique("stuck") + "/app"
    admin_push(server, repo)
    pull = bearer(token(server, f"repository:{repo}:pull", ADMIN))
    engine = create_engine(secured.database_url.replace("postgresql://", "postgresql+psycopg://"))
    waiting = text("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                   "WHERE c.relname = 'users' AND NOT l.granted")
    locker = engine.connect()
    pool = ThreadPoolExecutor(1)
    try:
        locker.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
        login = pool.submit(httpx.get, f"{server.url}/auth/token",
                            auth=(unique("stuck"), "whatever"), timeout=300,
                            headers=from_address(new_address()))
        with engine.connect() as watcher:
            deadline = time.monotonic() + 60
            while not watcher.execute(waiting).scalar():
                assert time.monotonic() < deadline, "the login never reached the database"
                time.sleep(0.05)
        for _ in range(3):
            # A failure here is a hang (the loop is blocked), turned into an error.
            resp = httpx.get(f"{server.url}/v2/{repo}/manifests/v1", headers=pull, timeout=60)
            assert resp.status_code == 200
        assert not login.done(), "the login went past a lock the test still holds"
        locker.rollback()
        assert login.result().status_code == 401
    finally:
        locker.rollback()  # whatever happened, let the login (and the server) go on
        locker.close()
        pool.shutdown(wait=True)
        engine.dispose()
