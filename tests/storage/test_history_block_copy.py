"""PostgreSQL bulk writes: blocks made by the client equal the server's, value by value.

Real PostgreSQL, two throw-away databases per test: the same writes go to one with the client
making the blocks (``witskit.storage.block_copy``, the default) and to the other with the server
making them from staged point rows (``client_blocks = False``, the reference). Every column of every
``point_blocks`` row is compared, before compaction (the summaries NULL in both) and after it (the
summaries then computed by the server, from the arrays each path stored). The data: text values,
null readings, a code only in some frames, several frames at one time, frames out of order, a NUL
in a text, writes that cut hours (the next write appends to a stored block), a span across
midnight and the end of a month; a replay stores nothing; two writers making the same block at
once both keep their points. Revision 0013 (LZ4 for the blocks' arrays) upgrades and downgrades a
filled database without changing a value.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from test_history_partitions import _blocks, _dump, _fill_as_0004, _upgrade_to, frames_at
from test_history_summaries import SECOND, assert_same_blocks, frame_text, readings

from support.databases import temporary_database
from witskit.storage import Store
from witskit.storage._postgres import PostgresBackend
from witskit.storage.block_copy import make_blocks
from witskit.storage.blocks import SUMMARY_COLUMNS

#: 22:40 on the last day of May: writes cross hours, midnight and the month.
T = datetime(2026, 5, 31, 22, 40, tzinfo=UTC)


@pytest.fixture
def reference_url(postgres_admin_url: str) -> Iterator[str]:
    """A second empty database, for the server-made blocks."""
    with temporary_database("postgresql", postgres_admin_url) as url:
        yield url


def dataset(stop: int) -> str:
    texts = [frame_text(T + i * SECOND, readings(i)) for i in range(0, stop, 2)]
    texts.insert(40, frame_text(T + 9 * SECOND, {"0108": "3.5", "0101": "NUL\x00IN"}))  # out of order
    for i in (1200, 4800 - 1):  # several frames at one time, at minute and hour edges
        texts.append(frame_text(T + i * SECOND, {"0108": f"{5000 + i}.5", "0113": "77.0"}))
    return "\n".join(texts)


async def blocks(url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT * FROM point_blocks ORDER BY source_id, code, hour")
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def write_both(urls: tuple[str, str], batches: list[list[Any]]) -> list[tuple[int, int]]:
    """Write each batch to both databases: (client-made points, server-made points) per batch."""
    out = []
    stores = [await Store.open(u, timeout=10) for u in urls]
    try:
        for batch in batches:
            counts = []
            for store, client in zip(stores, (True, False), strict=True):
                PostgresBackend.client_blocks = client
                counts.append(await store.write(batch))
            out.append((counts[0], counts[1]))
    finally:
        PostgresBackend.client_blocks = True
        for store in stores:
            await store.aclose()
    return out


async def compare(urls: tuple[str, str], *, summaries: bool = True) -> None:
    """The blocks of both databases equal; ``summaries=False``: but for the summaries, which the
    client path computes for its new blocks of numbers and the server path leaves to compaction."""
    got, want = await blocks(urls[0]), await blocks(urls[1])
    if not summaries:
        got, want = ([_without(b, SUMMARY_COLUMNS) for b in bs] for bs in (got, want))
    assert_same_blocks(got, want)


def _without(block: dict[str, Any], columns: Any) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k not in columns}


async def compact_both(urls: tuple[str, str], before: datetime) -> None:
    for url in urls:
        store = await Store.open(url, timeout=10)
        try:
            await store.compact(before)
        finally:
            await store.aclose()


async def test_client_blocks_equal_server_blocks(
    postgres_url: str, reference_url: str, wits_frames: Callable[[str, str | None], list[Any]]
) -> None:
    urls = (postgres_url, reference_url)
    frames = wits_frames(dataset(3 * 3600), "rig")
    assert len({tuple(f.codes) for f in frames}) > 1  # several layouts: the sorting path
    sim = frames_at(None, "sim", T, 2 * 3600)  # one layout, in order: the slicing path
    shuffled = frames_at(None, "sim2", T, 1000)
    random.Random(5).shuffle(shuffled)
    batches = [
        frames[:700],  # cuts an hour: the next write appends to its last block
        frames[700:2400],
        sim[:1500],
        sim[1500:],
        shuffled,
        sim[3000:3400] + frames[100:400],  # replays of both sources: nothing stored
        frames[2400:],
    ]
    counts = await write_both(urls, batches)
    assert [c for c, _ in counts] == [s for _, s in counts]
    assert counts[5] == (0, 0)
    await compare(urls, summaries=False)
    got = await blocks(postgres_url)
    assert any(b["texts"] and "NUL\ufffdIN" in b["texts"] for b in got)
    assert any(b["texts"] and None in b["nums"] for b in got)
    assert {b["hour"].month for b in got} == {5, 6}
    # New blocks of numbers have their summaries; the others wait for the compaction.
    assert any(b["m_offs"] for b in got)
    assert any(b["m_offs"] is None for b in got)
    assert all(b["m_offs"] is None for b in await blocks(reference_url))

    await compact_both(urls, T + timedelta(days=1))
    got = await blocks(postgres_url)
    assert sum(1 for b in got if b["m_offs"] and len(b["m_offs"]) == 61) > 10
    await compare(urls)


async def test_blocks_are_sliced_or_sorted_into_time_order() -> None:
    """Both ways of making blocks give points in (time, frame key, idx) order, each block one hour."""
    sim = frames_at(None, "sim", T, 200)
    from witskit.storage.store import _prepare

    pending = _prepare(sim, "rig")["sim"]
    mixed = list(reversed(pending))
    for made in (make_blocks(pending), make_blocks(mixed)):
        assert [(b.code, b.hour_us) for b in made] == sorted((b.code, b.hour_us) for b in made)
        for b in made:
            order = list(zip(b.times_us, b.keys, b.idxs, strict=True))
            assert order == sorted(order)
            assert {t - t % 3_600_000_000 for t in b.times_us} == {b.hour_us}
    assert [list(b.values) for b in make_blocks(pending)] == [list(b.values) for b in make_blocks(mixed)]


async def test_two_writers_making_the_same_block_both_keep_their_points(postgres_url: str) -> None:
    sim = frames_at(None, "rig", T, 1200)
    stores = [await Store.open(postgres_url, timeout=10) for _ in range(2)]
    try:
        # The source exists first: otherwise its new row would make the second writer wait for the
        # first to commit, and the blocks would not be made at the same time.
        await stores[0].write(frames_at(None, "rig", T - timedelta(days=3), 1))
        written = await asyncio.gather(stores[0].write(sim[::2]), stores[1].write(sim[1::2]))
        assert sum(written) == sum(len(f) for f in sim)
        # Both halves are in the same hours' blocks, each point once.
        got = [b for b in await blocks(postgres_url) if b["hour"] >= T - timedelta(hours=1)]
        assert sum(len(b["times"]) for b in got) == sum(written)
        assert len({(b["code"], b["hour"]) for b in got}) == len(got)
        assert await stores[0].write(sim) == 0
    finally:
        for store in stores:
            await store.aclose()


async def test_a_block_made_meanwhile_by_another_writer_makes_the_write_retry(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The block is created between the lookup and the COPY: the COPY fails on the key, the write
    is retried and then appends to it (simulated: the first lookup says no block is stored)."""
    sim = frames_at(None, "rig", T, 1200)
    real = PostgresBackend._stored_blocks
    calls = 0

    async def stale_once(self: Any, drv: Any, blocks: Any) -> set[tuple[int, str, int]]:
        nonlocal calls
        calls += 1
        return set() if calls == 1 else await real(self, drv, blocks)

    store = await Store.open(postgres_url, timeout=10)
    try:
        first = await store.write(sim[:600])
        monkeypatch.setattr(PostgresBackend, "_stored_blocks", stale_once)
        with caplog.at_level("INFO", logger="witskit.storage"):
            second = await store.write(sim[600:])
        assert calls == 2
        assert "concurrent writer" in caplog.text
        assert first + second == sum(len(f) for f in sim)
        got = await blocks(postgres_url)
        assert sum(len(b["times"]) for b in got) == first + second
        assert await store.write(sim) == 0
    finally:
        await store.aclose()


async def compressions(url: str) -> tuple[set[str], set[str | None]]:
    """(attcompression of point_blocks' arrays in every table of its tree, methods of stored times)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        declared = await conn.fetch(
            "SELECT DISTINCT a.attcompression::text FROM pg_partition_tree('point_blocks'::regclass) t "
            "JOIN pg_attribute a ON a.attrelid = t.relid WHERE a.attname IN ('times', 'nums', 'texts')"
        )
        stored = await conn.fetch("SELECT DISTINCT pg_column_compression(times) FROM point_blocks")
    finally:
        await conn.close()
    return {str(r[0]) for r in declared}, {r[0] for r in stored}


async def test_revision_0013_compresses_new_blocks_with_lz4_and_keeps_every_value(postgres_url: str) -> None:
    from witskit.storage.blocks import compact
    from witskit.storage.partitions import ensure_months, months_for
    from witskit.storage.schema import to_micros

    old = {"rig-a": frames_at(None, "rig-a", T, 1200), "rig-b": frames_at(None, "rig-b", T, 600, 3)}
    await _upgrade_to(postgres_url, "0012")
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        async with conn.transaction():
            await ensure_months(conn, months_for([(to_micros(T), to_micros(T + timedelta(days=1)))], now=T))
        await _fill_as_0004(postgres_url, old)
        assert await compact(conn, T + timedelta(days=1)) > 0  # blocks compressed with pglz
    finally:
        await conn.close()
    before, stored = await _dump(postgres_url), await _blocks(postgres_url)
    assert await compressions(postgres_url) == ({""}, {"pglz"})

    store = await Store.open(postgres_url, timeout=10)  # 0013
    try:
        assert (await _dump(postgres_url), await _blocks(postgres_url)) == (before, stored)
        assert (await compressions(postgres_url))[0] == {"l"}
        for batch in old.values():
            assert await store.write(batch) == 0
        # A bulk write into a month made after the upgrade: its new partitions and blocks are LZ4.
        assert await store.write(frames_at(None, "rig-a", T + timedelta(days=40), 600)) > 0
        assert await compressions(postgres_url) == ({"l"}, {"pglz", "lz4"})
        after = await _blocks(postgres_url)
    finally:
        await store.aclose()
    await _upgrade_to(postgres_url, "0012", down=True)
    assert (await compressions(postgres_url))[0] == {""}
    assert await _blocks(postgres_url) == after  # LZ4 values stay readable after the downgrade


async def test_a_bulk_writes_frames_stored_meanwhile_make_it_retry_through_the_stage(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bulk write COPYs its frames straight into ``frames``, trusting the lookup: frames another
    writer stores between the lookup and the COPY fail it on the key; the write is retried through
    the stage, which skips them (simulated: the first lookup says nothing is stored)."""
    sim = frames_at(None, "rig", T, 900)
    real = PostgresBackend.existing_many
    calls = 0

    async def stale_once(self: Any, drv: Any, wanted: Any, spans: Any) -> Any:
        nonlocal calls
        calls += 1
        return {} if calls == 1 else await real(self, drv, wanted, spans)

    store = await Store.open(postgres_url, timeout=10)
    try:
        first = await store.write(sim[:600])
        monkeypatch.setattr(PostgresBackend, "existing_many", stale_once)
        with caplog.at_level("INFO", logger="witskit.storage"):
            second = await store.write(sim)  # 600 of its 900 frames are stored already
        assert calls == 2
        assert "concurrent writer" in caplog.text
        assert first + second == sum(len(f) for f in sim)
        got = await blocks(postgres_url)
        assert sum(len(b["times"]) for b in got) == first + second
        [info] = await store.sources()
        assert info.frame_count == len(sim)
    finally:
        await store.aclose()


async def test_concurrent_bulk_writers_of_overlapping_frames_store_each_once(postgres_url: str) -> None:
    """Four writers, each writing overlapping halves of 3 rigs' 700 frames in its own order: bulk
    writes (blocks, frames COPYed straight) race for the same keys; none deadlocks or fails, and
    every frame and point is stored once."""
    rigs = {f"rig-{i}": frames_at(None, f"rig-{i}", T, 700, seed=i) for i in range(3)}
    everything = [f for frames in rigs.values() for f in frames]
    stores = [await Store.open(postgres_url, timeout=20) for _ in range(4)]
    try:
        await stores[0].write([f for frames in rigs.values() for f in frames[:1]])  # the sources

        async def writer(n: int) -> int:
            rng = random.Random(n)
            total = 0
            for _ in range(3):
                total += await stores[n].write(rng.sample(everything, k=len(everything) // 2))
            return total

        written = await asyncio.gather(*(writer(n) for n in range(4)))
        rest = await stores[0].write(everything)
        infos = {s.name: s for s in await stores[0].sources()}
    finally:
        for store in stores:
            await store.aclose()
    points = sum(len(f) for f in everything)
    assert sum(written) + rest + sum(len(frames[0]) for frames in rigs.values()) == points
    for name, frames in rigs.items():
        assert infos[name].frame_count == len(frames)
        assert infos[name].point_count == sum(len(f) for f in frames)
    got = await blocks(postgres_url)
    assert sum(len(b["times"]) for b in got) + await _row_points(postgres_url) == points


async def _row_points(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM points"))
    finally:
        await conn.close()


async def test_client_summaries_equal_the_servers(postgres_url: str) -> None:
    """A bulk write's new blocks of numbers carry the per-minute summaries the server's SQL makes
    (``summarize_sql``, run here over the same arrays); a block of text, or with a null reading,
    is left to the next compaction (NULL, pending). So do a backlog bundle's blocks, which fill a
    few minutes of their hour (here minutes 5 and 9-10: NULL before, between and after)."""
    from witskit.storage.blocks import SUMMARY_COLUMNS, summarize_sql

    sim = frames_at(None, "rig", T - timedelta(minutes=17, seconds=3), 3 * 3600)
    bundle = frames_at(None, "bundle", T.replace(minute=5), 20)
    bundle += frames_at(None, "bundle", T.replace(minute=9, second=50), 20)
    store = await Store.open(postgres_url, timeout=10)
    try:
        await store.write(sim)
        await store.write(bundle)
    finally:
        await store.aclose()
    cols = ", ".join(SUMMARY_COLUMNS)
    conn = await asyncpg.connect(postgres_url)
    try:
        query = f"SELECT source_id, code, hour, {cols} FROM point_blocks ORDER BY source_id, code, hour"
        client = {(r["source_id"], r["code"], r["hour"]): dict(r) for r in await conn.fetch(query)}
        await conn.execute(summarize_sql("true"))
        server = {(r["source_id"], r["code"], r["hour"]): dict(r) for r in await conn.fetch(query)}
    finally:
        await conn.close()
    text_codes = {c for _, c, _ in client if any(type(f.values[f.codes.index(c)]) is str for f in sim[:1])}
    assert text_codes  # the simulator's well id (0101) is text
    # 30 channels, 4 hours (3 of them partly) of "rig"; 30 channels, one hour of "bundle".
    assert len(client) == len(server) == 4 * 30 + 30
    last = max(k[0] for k in client)
    bundled = [b for (sid, c, _), b in client.items() if sid == last and c not in text_codes]
    assert len(bundled) == 29
    assert all(b["m_offs"] for b in bundled)  # summarized by the client
    for key, mine in client.items():
        theirs = server[key]
        if key[1] in text_codes:
            assert mine["m_offs"] is None  # pending: the next compaction summarizes it
            continue
        assert theirs["m_offs"], key  # the server can summarize it too
        for col in SUMMARY_COLUMNS:
            if col == "m_sum":  # the same numbers, maybe added in another order
                assert [m is None for m in mine[col]] == [t is None for t in theirs[col]], key
                pairs = [(m, t) for m, t in zip(mine[col], theirs[col], strict=True) if m is not None]
                assert [m for m, _ in pairs] == pytest.approx([t for _, t in pairs], rel=1e-12), key
            else:
                assert mine[col] == theirs[col], (key, col)


def test_blocks_with_a_null_text_or_repeated_time_are_left_for_the_server_to_summarize() -> None:
    from witskit.storage.block_copy import Block, summary_fields

    hour = 1_780_000_000_000_000 // 3_600_000_000 * 3_600_000_000
    times = [hour + i * 1_000_000 for i in range(5)]
    assert summary_fields(Block("0108", hour, times, [1] * 5, [0] * 5, [1.0, 2, 3.5, 4.0, 5.0])) is not None
    assert summary_fields(Block("0108", hour, times, [1] * 5, [0] * 5, [1.0, None, 3.0, 4.0, 5.0])) is None
    assert summary_fields(Block("0108", hour, times, [1] * 5, [0] * 5, [1.0, "x", 3.0, 4.0, 5.0])) is None
    again = [*times[:2], times[1], *times[3:]]
    huge = [1.0, 1e308, 1e308, 4.0, 5.0]  # finite readings whose sum is not
    assert summary_fields(Block("0108", hour, times, [1] * 5, [0] * 5, huge)) is None
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert summary_fields(Block("0108", hour, again, [1, 2, 3, 4, 5], [0] * 5, values)) is None


async def statistics_targets(url: str) -> set[tuple[bool, int]]:
    """(is an array column, statistics target) over point_blocks' columns in every table of its tree."""
    from witskit.storage.partitions import _NO_STATISTICS

    arrays = list(_NO_STATISTICS["point_blocks"])
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT a.attname = ANY($1::text[]), a.attstattarget "
            "FROM pg_partition_tree('point_blocks'::regclass) t JOIN pg_attribute a ON a.attrelid = t.relid "
            "WHERE a.attname = ANY($1::text[] || ARRAY['source_id', 'code', 'hour'])",
            arrays,
        )
    finally:
        await conn.close()
    return {(bool(r[0]), int(r[1])) for r in rows}


async def test_revision_0014_turns_off_the_block_arrays_statistics_everywhere(postgres_url: str) -> None:
    """ANALYZE sampled the arrays for statistics no query uses (127 s of a rig-month's import)."""
    from witskit.storage.partitions import ensure_months, months_for
    from witskit.storage.schema import to_micros

    await _upgrade_to(postgres_url, "0013")
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        async with conn.transaction():
            await ensure_months(conn, months_for([(to_micros(T), to_micros(T + timedelta(days=1)))], now=T))
    finally:
        await conn.close()
    # Partitions made today get target 0 at once: the downgrade makes them as before 0014.
    await _upgrade_to(postgres_url, "0014")
    await _upgrade_to(postgres_url, "0013", down=True)
    assert await statistics_targets(postgres_url) == {(True, -1), (False, -1)}

    store = await Store.open(postgres_url, timeout=10)  # 0014
    try:
        assert await statistics_targets(postgres_url) == {(True, 0), (False, -1)}
        # A month's partitions made after the upgrade, a source's own leaf among them: the same.
        assert await store.write(frames_at(None, "rig-a", T + timedelta(days=40), 600)) > 0
        assert await statistics_targets(postgres_url) == {(True, 0), (False, -1)}
    finally:
        await store.aclose()
    await _upgrade_to(postgres_url, "0013", down=True)
    assert await statistics_targets(postgres_url) == {(True, -1), (False, -1)}
