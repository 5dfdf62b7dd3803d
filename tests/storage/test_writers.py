"""Several processes writing one database: PostgreSQL takes them safely; SQLite takes one.

Each writer here is its own :class:`Store` (its own engine and connections), as separate
``witskit worker`` processes are. The batches overlap and come in different orders, as a fleet's
redeliveries do; nothing may deadlock, no frame or source row may be stored twice, and a fresh
database is migrated once whoever starts first.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from witskit.storage import Store

WRITERS = 4
SOURCES = 24
ROUNDS = 6


async def test_concurrent_writers_on_postgresql_never_deadlock_nor_duplicate(
    postgres_url: str, sim_frames: Any
) -> None:
    names = [f"rig-{i:02d}" for i in range(SOURCES)]
    per_source = {name: sim_frames(name, 12, seed=i, records=(1,)) for i, name in enumerate(names)}
    everything = [f for frames in per_source.values() for f in frames]
    stores = [await Store.open(postgres_url, timeout=20) for _ in range(WRITERS)]
    try:

        async def writer(n: int) -> None:
            rng = random.Random(n)
            for _ in range(ROUNDS):
                batch = rng.sample(everything, k=len(everything) // 2)  # overlapping, in its own order
                await stores[n].write(batch)

        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        await stores[0].write(everything)  # whatever no sample held
        infos = {s.name: s for s in await stores[0].sources()}
    finally:
        for store in stores:
            await store.aclose()
    assert sorted(infos) == sorted(per_source)  # one row per source, however many raced for it
    for name, frames in per_source.items():
        assert infos[name].frame_count == len(frames)
        assert infos[name].point_count == sum(len(f) for f in frames)


async def test_a_fresh_database_is_migrated_once_by_concurrent_starts(postgres_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(postgres_url, timeout=20) for _ in range(WRITERS)))
    for store in stores:
        await store.aclose()
    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    try:
        versions = await conn.fetch("SELECT version_num FROM witskit_alembic_version")
    finally:
        await conn.close()
    assert len(versions) == 1
