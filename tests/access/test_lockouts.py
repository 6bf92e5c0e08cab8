"""The lockout schedule, on each place the counts can live, with a clock the test moves.

The HTTP tests (test_login_throttle.py) show lockouts happen on every door and are shared by
processes; these show the schedule itself (exponential, capped, reset by a success, forgotten
after the window) without waiting for it: the throttle takes its clock as a parameter. And
that a login for an account that does not exist costs one argon2 check, as a real one does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import extract_parameters

from moorage.access import secrets
from moorage.access.authentication import Authenticator
from moorage.access.errors import LoginFailed, Throttled
from moorage.access.secrets import dummy_password_hash, hash_password
from moorage.access.throttle import FailureCounter, Lockout, LoginThrottle, ThrottlePolicy
from moorage.db.access import AccessStore, LoginFailureStore
from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.migrate import upgrade
from tests.conftest import BACKENDS

PLACES = ["database"] + (["postgresql", "redis"] if "scaleout" in BACKENDS else [])


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """A database of this module's own, on the PostgreSQL cluster the test process shares."""
    from tests.support.backends import shared

    return shared().database().url()


@pytest.fixture(scope="module")
def redis_url() -> str:
    """A Redis database of this module's own, on the server the test process shares."""
    from tests.support.backends import shared

    return shared().redis_database().url


@pytest.fixture(params=PLACES)
def counter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FailureCounter]:
    if request.param == "redis":
        import redis

        from moorage.cache.login_failures import RedisLoginFailures

        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        client.flushdb()
        yield RedisLoginFailures(client)
        return
    if request.param == "postgresql":
        engine = open_engine(request.getfixturevalue("postgres_url"))
        upgrade(engine)
        from sqlalchemy import text

        with engine.begin() as conn:
            conn.execute(text("DELETE FROM login_failures"))
    else:
        engine = open_engine(sqlite_url(tmp_path))
        upgrade(engine)
    yield LoginFailureStore(engine)
    engine.dispose()


def locked_for(throttle: LoginThrottle, account: str, address: str | None = None) -> int:
    try:
        throttle.check(account, address)
    except Throttled as refused:
        return refused.retry_after
    return 0


def test_lockouts_double_up_to_the_cap(counter: FailureCounter) -> None:
    clock = Clock()
    throttle = LoginThrottle(counter, ThrottlePolicy(3, 0, 10, 60), clock)
    assert throttle.failed("alice", None) == []
    assert throttle.failed("alice", None) == []
    assert locked_for(throttle, "alice") == 0
    assert throttle.failed("alice", None) == [Lockout("account", 3, 10)]
    assert locked_for(throttle, "alice") == 10
    clock.now += 9.5
    assert locked_for(throttle, "alice") == 1
    assert locked_for(throttle, "bob") == 0, "one account's lockout is its own"
    clock.now += 0.5
    assert locked_for(throttle, "alice") == 0
    for failures, seconds in ((4, 20), (5, 40), (6, 60), (7, 60)):
        assert throttle.failed("alice", None) == [Lockout("account", failures, seconds)]
        assert locked_for(throttle, "alice") == seconds
        clock.now += seconds


def test_a_success_resets_the_account_but_not_the_address(counter: FailureCounter) -> None:
    clock = Clock()
    throttle = LoginThrottle(counter, ThrottlePolicy(3, 4, 10, 60), clock)
    throttle.failed("alice", "192.0.2.1")
    throttle.failed("alice", "192.0.2.1")
    throttle.succeeded("alice", throttle.check("alice", "192.0.2.1"))
    assert throttle.failed("alice", "192.0.2.1") == [], "the account starts again from 0"
    assert throttle.failed("alice", "192.0.2.1") == [Lockout("address", 4, 10)]
    assert locked_for(throttle, "carol", "192.0.2.1") == 10, "every account, from there"
    assert locked_for(throttle, "carol", "192.0.2.2") == 0


def test_counts_are_forgotten_after_the_window(counter: FailureCounter) -> None:
    clock = Clock()
    policy = ThrottlePolicy(3, 0, 10, 60)
    throttle = LoginThrottle(counter, policy, clock)
    throttle.failed("alice", None)
    throttle.failed("alice", None)
    clock.now += policy.window + 1
    assert throttle.failed("alice", None) == [], "a count from the last window starts at 1"
    assert throttle.failed("alice", None) == []
    assert throttle.failed("alice", None) == [Lockout("account", 3, 10)]


def test_concurrent_failures_are_all_counted(counter: FailureCounter) -> None:
    clock = Clock()
    throttle = LoginThrottle(counter, ThrottlePolicy(1000, 0, 10, 60), clock)
    threads = [threading.Thread(target=lambda: [throttle.failed("alice", None)
                                                for _ in range(5)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.failures(["u:alice"], clock(), 3600)["u:alice"][0] == 40


def test_an_unknown_user_costs_one_argon2_check_like_a_real_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert extract_parameters(dummy_password_hash()) == extract_parameters(hash_password("x"))
    engine = open_engine(sqlite_url(tmp_path))
    upgrade(engine)
    store = AccessStore(engine)
    store.create_user("alice", hash_password("the-password"))
    checks: list[str] = []

    class Counting:
        """The real hasher, noting what each verification was checked against."""

        def __init__(self, real: object) -> None:
            self.real = real

        def verify(self, stored: str, password: str) -> bool:
            checks.append(stored)
            return self.real.verify(stored, password)  # type: ignore[attr-defined,no-any-return]

        def hash(self, password: str) -> str:
            return self.real.hash(password)  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(secrets, "_hasher", Counting(secrets._hasher))
    authenticator = Authenticator(store)
    for username in ("alice", "nobody"):
        checks.clear()
        with pytest.raises(LoginFailed) as refused:
            authenticator.login(username, "a-wrong-password")
        assert refused.value.message == "invalid username or password"
        assert len(checks) == 1
        assert extract_parameters(checks[0]) == extract_parameters(hash_password("x"))
    assert refused.value.actor.startswith("unknown:") and "nobody" not in refused.value.actor
