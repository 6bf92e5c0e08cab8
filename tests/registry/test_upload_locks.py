"""The upload locks themselves: one holder per upload, across processes and replicas, and a
holder that knows when its Redis lease was lost."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from moorage.oci.errors import RegistryError
from moorage.registry.locks import (FileUploadLock, RedisUploadLock, UploadBusy, UploadLease,
                                    UploadLockLost)
from tests.registry.helpers import workers
from tests.support.redis_server import RedisServer

UPLOAD = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def redis_client() -> redis.Redis:
    """A Redis database of this module's own, on the server the test process shares."""
    from tests.support.backends import shared

    return redis.Redis.from_url(shared().redis_database().url)


def _hold_in_another_process(root: Path, held: "multiprocessing.synchronize.Event",
                             release: "multiprocessing.synchronize.Event") -> None:
    async def run() -> None:
        async with FileUploadLock(root).hold(UPLOAD):
            held.set()
            await asyncio.to_thread(release.wait, 60)

    asyncio.run(run())


def test_a_file_lock_held_by_another_process_keeps_others_out(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_in_another_process, args=(tmp_path, held, release))
    other.start()
    try:
        assert held.wait(60)

        async def attempt() -> None:
            async with FileUploadLock(tmp_path).hold(UPLOAD, wait=0):
                pass

        with pytest.raises(UploadBusy):
            asyncio.run(attempt())
    finally:
        release.set()
        other.join(60)
    asyncio.run(attempt())  # free once the other process let go


def test_a_file_lock_excludes_a_second_holder_in_the_same_process(tmp_path: Path) -> None:
    lock = FileUploadLock(tmp_path)

    async def run() -> None:
        async with lock.hold(UPLOAD):
            with pytest.raises(UploadBusy):
                async with lock.hold(UPLOAD, wait=0):
                    pass

    asyncio.run(run())


def test_an_ended_uploads_lock_file_goes_and_a_waiter_takes_a_fresh_one(tmp_path: Path) -> None:
    lock = FileUploadLock(tmp_path)
    order: list[str] = []

    async def first(started: asyncio.Event) -> None:
        async with lock.hold(UPLOAD) as lease:
            started.set()
            await asyncio.sleep(0.05)  # let the waiter open the file and start polling
            lease.end()
            order.append("ended")

    async def second(started: asyncio.Event) -> None:
        await started.wait()
        async with lock.hold(UPLOAD):
            order.append("second holds")
            assert (tmp_path / UPLOAD).exists()  # its own, new file

    async def run() -> None:
        started = asyncio.Event()
        await asyncio.gather(first(started), second(started))

    asyncio.run(run())
    assert order == ["ended", "second holds"]
    assert (tmp_path / UPLOAD).exists()  # the second did not end the upload: its file stays


def test_a_redis_lease_excludes_others_and_outlives_its_ttl_while_held(
        redis_client: redis.Redis) -> None:
    # Renewed every ttl/4: a TTL of 3 s leaves a loaded machine 2.25 s of slack per renewal.
    lock = RedisUploadLock(redis_client, prefix="t1:", ttl_ms=3000)

    async def run() -> None:
        async with lock.hold(UPLOAD) as lease:
            # Held through three renewals, each seen as the key's TTL going back up (not
            # timed: the loop waits for them however slow the machine is).
            renewals, left = 0, redis_client.pttl("t1:" + UPLOAD)
            while renewals < 3:
                with pytest.raises(UploadBusy):
                    async with lock.hold(UPLOAD, wait=0):
                        pass
                await asyncio.sleep(0.05)
                now = redis_client.pttl("t1:" + UPLOAD)
                assert now > 0 and not lease.lost, "the lease ran out while held"
                renewals, left = renewals + (now > left), now
            assert not lease.lost
        async with lock.hold(UPLOAD, wait=0):  # released
            pass

    asyncio.run(run())


def test_a_holder_learns_that_its_redis_lease_was_lost(redis_client: redis.Redis) -> None:
    lock = RedisUploadLock(redis_client, prefix="t2:", ttl_ms=300)

    async def run() -> UploadLease:
        async with lock.hold(UPLOAD) as lease:
            redis_client.set("t2:" + UPLOAD, "somebody else")  # as after an expiry
            deadline = time.monotonic() + 120
            while not lease.lost and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            with pytest.raises(UploadLockLost):
                lease.check()
            return lease

    assert asyncio.run(run()).lost
    assert redis_client.get("t2:" + UPLOAD) == b"somebody else"  # not released by the loser


class RenewalsSeen:
    """The real Redis client, noting what each lease renewal answered (the test waits for a
    refused one instead of for a span of time)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.refused = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)

    def eval(self, script: str, *args: object) -> object:
        result = self.client.eval(script, *args)  # type: ignore[arg-type]
        if script == RedisUploadLock._EXTEND and not result and self.loop is not None:
            self.loop.call_soon_threadsafe(self.refused.set)
        return result


def test_a_chunk_whose_lease_is_lost_is_cut_off_and_refused(tmp_path: Path,
                                                            redis_client: redis.Redis) -> None:
    [manager], _ = workers(tmp_path, 1)
    seen = RenewalsSeen(redis_client)
    manager.upload_lock = RedisUploadLock(seen, prefix="t3:", ttl_ms=300)

    async def run() -> int:
        seen.loop = asyncio.get_running_loop()
        upload_id = await manager.start("library/app")

        async def stolen_midway() -> AsyncIterator[bytes]:
            yield b"a" * (2 << 20)
            redis_client.set("t3:" + upload_id, "somebody else")  # as after an expiry
            await seen.refused.wait()
            yield b"b" * (2 << 20)

        with pytest.raises(RegistryError) as info:
            await manager.append("library/app", upload_id, stolen_midway())
        assert info.value.code == "BLOB_UPLOAD_INVALID" and info.value.status == 409
        redis_client.delete("t3:" + upload_id)
        return await manager.offset("library/app", upload_id)

    assert asyncio.run(run()) == 0  # nothing of the chunk stayed


def test_redis_gone_while_a_lease_is_held_is_a_503_and_no_lease_without_it() -> None:
    """A holder whose renewal fails because Redis is away stops with Unavailable (503, not a
    409 or a 500); while it is away no lease can be had (503); once it is back, one can."""
    from moorage.cache.outage import Unavailable

    server = RedisServer().start()
    client = redis.Redis(port=server.port)
    lock = RedisUploadLock(client, prefix="t9:", ttl_ms=300)
    try:
        async def run() -> None:
            async with lock.hold(UPLOAD) as lease:
                server.kill()
                deadline = time.monotonic() + 120
                while not lease.lost and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                with pytest.raises(Unavailable) as refused:
                    lease.check()
                assert refused.value.status == 503
            with pytest.raises(Unavailable):
                async with lock.hold(UPLOAD, wait=0):
                    pass
            server.start()
            async with lock.hold(UPLOAD, wait=0) as lease:
                lease.check()

        asyncio.run(run())
    finally:
        server.stop()
