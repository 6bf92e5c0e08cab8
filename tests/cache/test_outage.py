"""RedisHealth: a failure makes fallback callers skip Redis for a moment, writes always try,
the outage is logged once a minute (not per request), and the return is said once. The clock
is injected: nothing here waits."""

from __future__ import annotations

import logging

import pytest
import redis

from moorage.cache.outage import RedisDown, RedisHealth, Unavailable, where


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failing() -> None:
    raise redis.ConnectionError("Connection refused")


def test_skips_logs_once_a_minute_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    health = RedisHealth("redis://:pw@cache.example:6380/0", clock=clock)
    caplog.set_level(logging.WARNING, logger="moorage.redis")
    for _ in range(50):
        with pytest.raises(RedisDown):
            health.call("a read", failing, may_skip=False)
    assert len(caplog.records) == 1
    assert "cache.example:6380" in caplog.text and "pw" not in caplog.text
    calls: list[int] = []
    with pytest.raises(RedisDown):  # a fallback caller skips Redis right after a failure
        health.call("a read", lambda: calls.append(1))
    assert calls == []
    clock.now += 61
    with pytest.raises(RedisDown):
        health.call("a read", failing)
    assert len(caplog.records) == 2 and "49 more failures" in caplog.records[1].getMessage()
    clock.now += 2  # past the skip window: the next call tries, and it answers
    assert health.call("a read", lambda: 7) == 7
    assert "answers again" in caplog.records[-1].getMessage()
    assert not health.down
    assert health.call("a read", lambda: 8) == 8
    assert len(caplog.records) == 3


def test_unavailable_is_a_503_with_retry_after() -> None:
    error = Unavailable("locks are unavailable; try again later")
    assert error.status == 503 and error.code == "UNKNOWN"
    assert int(error.headers["retry-after"]) > 0
    assert where("redis://user:secret@10.0.0.1/0") == "10.0.0.1:6379"
