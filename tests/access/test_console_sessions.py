"""Console sessions: lifetime, idle time, sign-out, and what ends them, on a real database
with an injected clock (no waiting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.access.authentication import Authenticator
from moorage.access.errors import Unauthenticated
from moorage.access.secrets import hash_password
from moorage.access.sessions import ConsoleSessions, csrf_matches
from moorage.db.access import AccessStore
from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.migrate import upgrade


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> tuple[AccessStore, ConsoleSessions, Clock]:
    engine = open_engine(sqlite_url(tmp_path))
    upgrade(engine)
    store = AccessStore(engine)
    store.create_user("alice", hash_password("alice-password"))
    clock = Clock()
    sessions = ConsoleSessions(store, Authenticator(store), b"k" * 32, lifetime_seconds=3600,
                               idle_seconds=600, clock=clock)
    return store, sessions, clock


def start(store: AccessStore, sessions: ConsoleSessions) -> str:
    auth = Authenticator(store)
    return sessions.start(auth.principal_for("alice"))  # type: ignore[arg-type]


def test_a_session_names_its_user_until_signed_out(setup) -> None:
    store, sessions, _ = setup
    cookie = start(store, sessions)
    session = sessions.resolve(cookie)
    assert session.principal.username == "alice" and session.principal.origin.startswith("s:")
    assert csrf_matches(session.csrf, sessions.csrf_for(cookie))
    sessions.end(cookie)
    with pytest.raises(Unauthenticated):
        sessions.resolve(cookie)


def test_idle_time_and_lifetime_end_a_session(setup) -> None:
    store, sessions, clock = setup
    cookie = start(store, sessions)
    for _ in range(6):  # used every 9 minutes, so never idle for 10, up to 54 minutes in
        clock.now += 540
        sessions.resolve(cookie)
    clock.now += 540
    with pytest.raises(Unauthenticated):  # 63 minutes after sign-in: past its hour
        sessions.resolve(cookie)
    fresh = start(store, sessions)
    clock.now += 601
    with pytest.raises(Unauthenticated, match="sign in again"):
        sessions.resolve(fresh)


def test_a_password_change_or_disabling_ends_every_session(setup) -> None:
    store, sessions, _ = setup
    first, second = start(store, sessions), start(store, sessions)
    store.change_password("alice", hash_password("new-password-here"))
    for cookie in (first, second):
        with pytest.raises(Unauthenticated):
            sessions.resolve(cookie)
    third = start(store, sessions)
    store.set_disabled("alice", True)
    with pytest.raises(Unauthenticated):
        sessions.resolve(third)
    store.set_disabled("alice", False)
    with pytest.raises(Unauthenticated):  # enabling again does not bring it back
        sessions.resolve(third)


@pytest.mark.parametrize("forged", ["", "mrg_s_", "mrg_s_0123456789abcdef_nope",
                                    "mrg_p_0123456789abcdef_x", "garbage", "mrg_s_" + "a" * 400])
def test_forged_cookies_name_no_session(setup, forged: str) -> None:
    store, sessions, _ = setup
    start(store, sessions)
    with pytest.raises(Unauthenticated):
        sessions.resolve(forged)
    sessions.end(forged)  # signing out a forged cookie ends nothing and raises nothing


def test_a_session_cookie_is_no_access_token(setup) -> None:
    """The cookie's secret is not a credential anywhere else (Basic, Bearer)."""
    store, sessions, _ = setup
    cookie = start(store, sessions)
    with pytest.raises(Unauthenticated):
        Authenticator(store).login_token(cookie)
