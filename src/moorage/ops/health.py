"""`/healthz` and `/readyz`.

`/healthz` says the process is alive: it answers 200 as long as the event loop runs, and looks
at nothing else (a liveness probe that fails when the database is down would make an
orchestrator restart every replica at once, which helps nobody).

`/readyz` says whether this replica can serve: the metadata database, the blob store and Redis
(when configured) each answer within `timeout` seconds. It answers 503 naming each dependency
that failed and why, so that a load balancer takes the replica out of rotation while, say,
its database is away, and puts it back when it answers again.

The checks run in threads, at most one round at a time per process: probes that arrive while
a round is in flight share its result, and a result is reused for `reuse_seconds`, so that a
probe storm cannot pile threads onto a hung dependency.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from moorage.web.http import Receive, Scope, Send, respond

Check = Callable[[], None]


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    seconds: float
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"ok": self.ok, "seconds": round(self.seconds, 4)}
        if self.error:
            found["error"] = self.error
        return found


def database_check(engine: Engine) -> Check:
    def check() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    return check


def store_check(store: Any) -> Check:
    def check() -> None:
        probe = getattr(store, "check", None)
        if probe is not None:
            probe()
    return check


def redis_check(client: Any) -> Check:
    def check() -> None:
        if not client.ping():
            raise ConnectionError("no PONG")
    return check


def _reason(exc: BaseException) -> str:
    """One line, without a URL's password (drivers name the host, not the secret)."""
    text_ = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
    return text_.splitlines()[0][:300]


class Readiness:
    def __init__(self, checks: dict[str, Check], timeout: float = 2.0,
                 reuse_seconds: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.checks = checks
        self.timeout = timeout
        self.reuse_seconds = reuse_seconds
        self.clock = clock
        self._last: tuple[float, list[Outcome]] | None = None
        self._round: asyncio.Task[list[Outcome]] | None = None

    async def _one(self, name: str, check: Check) -> Outcome:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.to_thread(check), self.timeout)
        except asyncio.TimeoutError:
            return Outcome(name, False, time.perf_counter() - start,
                           f"no answer within {self.timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return Outcome(name, False, time.perf_counter() - start, _reason(exc))
        return Outcome(name, True, time.perf_counter() - start)

    async def _run(self) -> list[Outcome]:
        return list(await asyncio.gather(*(self._one(n, c) for n, c in self.checks.items())))

    async def outcomes(self) -> list[Outcome]:
        if self._last is not None and self.clock() - self._last[0] < self.reuse_seconds:
            return self._last[1]
        if self._round is None or self._round.done():
            self._round = asyncio.ensure_future(self._run())
        found = await asyncio.shield(self._round)
        self._last = (self.clock(), found)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = await self.outcomes()
        failed = [o for o in found if not o.ok]
        body = {"status": "unready" if failed else "ready",
                "checks": {o.name: o.as_dict() for o in found}}
        if failed:
            body["failed"] = [f"{o.name}: {o.error}" for o in failed]
        await respond(send, 503 if failed else 200, json.dumps(body).encode(),
                      {"content-type": "application/json", "cache-control": "no-store"},
                      head=scope["method"] == "HEAD")


async def alive(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, 200, b'{"status":"alive"}',
                  {"content-type": "application/json", "cache-control": "no-store"},
                  head=scope["method"] == "HEAD")
