"""An upload in progress is never expired, though its activity is recorded sparingly.

Each chunk used to commit a new `updated_at`; now a chunk refreshes it only once it is
TOUCH_EVERY old (a committed write per 5 MiB chunk was a third of a chunk's time). What a user
relies on is unchanged: expiry drops uploads left idle past the TTL, never one still moving.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import update

from moorage.db.metadata import MetadataStore
from moorage.db.schema import uploads
from moorage.registry.uploads import TOUCH_EVERY
from tests.registry.helpers import body, workers

HOUR = 3600.0


def age(db: MetadataStore, upload_id: str, seconds: float) -> None:
    """Make the upload's recorded activity `seconds` old, as if time had passed."""
    with db.engine.begin() as conn:
        conn.execute(update(uploads).where(uploads.c.id == upload_id)
                     .values(updated_at=time.time() - seconds))


def test_a_chunk_keeps_an_old_upload_alive_and_idle_ones_expire(tmp_path: Path) -> None:
    [manager], db = workers(tmp_path, 1)

    async def run() -> tuple[str, str]:
        moving = await manager.start("library/app")
        idle = await manager.start("library/app")
        await manager.append("library/app", moving, body(b"a" * 1000))
        await manager.append("library/app", idle, body(b"b" * 1000))
        age(db, moving, 2 * HOUR)
        age(db, idle, 2 * HOUR)
        await manager.append("library/app", moving, body(b"c" * 1000))  # still in progress
        return moving, idle

    moving, idle = asyncio.run(run())
    assert asyncio.run(manager.expire(HOUR)) == 1
    assert db.upload(idle) is None
    kept = db.upload(moving)
    assert kept is not None and time.time() - kept.updated_at < TOUCH_EVERY
    assert asyncio.run(manager.offset("library/app", moving)) == 2000


def test_recent_activity_is_not_rewritten_on_every_chunk(tmp_path: Path) -> None:
    [manager], db = workers(tmp_path, 1)

    async def run() -> str:
        upload_id = await manager.start("library/app")
        age(db, upload_id, TOUCH_EVERY / 2)
        await manager.append("library/app", upload_id, body(b"a" * 1000))
        return upload_id

    upload_id = asyncio.run(run())
    recorded = db.upload(upload_id)
    assert recorded is not None
    assert time.time() - recorded.updated_at >= TOUCH_EVERY / 2 - 1
