"""The per-rule bandwidth limit: a token bucket on the streamed chunks. Asserted on the
bucket's own accounting under an injected clock, never on wall time."""

from __future__ import annotations

import asyncio

from moorage.replication.bandwidth import LimitedSource, TokenBucket
from moorage.replication.copy import Copier
from moorage.replication.endpoints import RemoteEndpoint
from tests.remote.helpers import PatternSource
from tests.replication.rules.helpers import ADMIN, client_for, manifest_digest, push_image, run
from tests.support.server import MoorageServer

MiB = 1 << 20


class FakeTime:
    """A clock that only moves when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_the_bucket_lets_through_at_most_its_rate_per_second() -> None:
    time = FakeTime()
    bucket = TokenBucket(MiB, clock=time.clock, sleep=time.sleep)
    source = LimitedSource(PatternSource(10 * MiB + 123, chunk=300_000), bucket)

    async def drain() -> int:
        return sum([len(c) async for c in source.open(0)])

    assert asyncio.run(drain()) == 10 * MiB + 123
    assert sum(bucket.granted.values()) == 10 * MiB + 123
    # a second of the clock never carries more than the rate plus the initial burst
    first = min(bucket.granted)
    for second, amount in bucket.granted.items():
        assert amount <= MiB + (MiB if second == first else 0) + 300_000, bucket.granted
    # and the whole took at least (size - burst) / rate seconds of the clock
    assert time.slept >= 9.0


def test_a_copy_between_two_registries_keeps_to_the_limit(primary: MoorageServer,
                                                         peer: MoorageServer) -> None:
    """The engine's blob streams pass the rule's bucket: 6 MiB at 2 MiB/s on an injected
    clock (the real transfer runs at loopback speed; the clock is what is limited)."""
    time = FakeTime()
    bucket = TokenBucket(2 * MiB, clock=time.clock, sleep=time.sleep)
    layer = PatternSource(6 * MiB, seed=7)

    async def copy() -> tuple[str, str | None, int]:
        async with client_for(primary, *ADMIN) as src, client_for(peer, *ADMIN) as dst:
            blob = b"".join([c async for c in layer.open(0)])
            image = await push_image(src, "limited/app", "amd64", blob, tag="1")
            copier = Copier(RemoteEndpoint(src), RemoteEndpoint(dst), bucket=bucket)
            result = await copier.copy("limited/app", "1", "limited/app", "1")
            return image["digest"], await manifest_digest(dst, "limited/app", "1"), \
                result.progress.bytes

    pushed, copied, sent = run(copy())
    assert copied == pushed
    assert sent >= 6 * MiB
    assert sum(bucket.granted.values()) == sent
    first = min(bucket.granted)
    for second, amount in bucket.granted.items():
        assert amount <= 2 * MiB + (2 * MiB if second == first else 0) + MiB, bucket.granted
    assert time.slept >= 2.0
