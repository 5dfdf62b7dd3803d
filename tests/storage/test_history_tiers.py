"""One history over both tiers: every value read the same before archiving, after it, and after
retention removed the archived days from the database (SQLite and PostgreSQL, real DuckDB).

Data: two rigs, 40 record-1 frames at noon of 2026-01-30, 01-31, 02-01 and 02-02. The first three
days are archived; retention on 2026-02-03 with one day kept removes them from the database (the
January partitions on PostgreSQL, whole days on SQLite), so they are then read from Parquet only.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from witskit.storage import Store
from witskit.storage.archive import Archive, archive_days, is_archived
from witskit.storage.retention import RetentionPolicy

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

DAYS = [datetime(2026, 1, 30, 12, tzinfo=UTC) + timedelta(days=d) for d in range(4)]
NOW = datetime(2026, 2, 3, 6, tzinfo=UTC)


def frames_of(source: str, start: datetime, seed: int) -> list[Any]:
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator

    data = b"".join(DrillingSimulator(seed, records=(1,), start=start).frames(40))
    return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'w.db'}"
    return request.getfixturevalue("postgres_url")


async def everything(store: Store) -> dict[str, Any]:
    """Every way the store reads history, as plain values."""

    async def scan(*args: Any) -> list[tuple[Any, ...]]:
        s = await store.scan(*args)
        names = s.names
        return [(names[r[0]], *r[1:]) for batch in [b async for b in s] for r in batch]

    def series(s: Any) -> dict[str, Any]:
        return {
            code: (
                c.time,
                c.count,
                c.nulls,
                c.min,
                c.max,
                [round(v, 9) if v is not None else None for v in c.avg],
                c.first,
                c.last,
            )
            for code, c in s.codes.items()
        } | {"geometry": (s.start, s.end, s.width_us, s.buckets)}

    return {
        "all": await scan(),
        "one code, a window": await scan("rig-a", ["0108", "ROPA"], DAYS[0] + timedelta(seconds=10), DAYS[2]),
        "query rows": [(r.source, r.time, r.code, r.value, r.frame_key) async for r in store.query("rig-b")],
        "series": series(await store.series("rig-a", points=60)),
        "series, codes and range": series(
            await store.series("rig-b", ["DBTM", "0113"], DAYS[0], DAYS[3] + timedelta(hours=1), points=7)
        ),
    }


async def test_both_tiers_read_as_one_history_before_and_after_archiving(url: str, tmp_path: Path) -> None:
    store = await Store.open(url, timeout=10)
    try:
        for i, day in enumerate(DAYS):
            await store.write(frames_of("rig-a", day, seed=i) + frames_of("rig-b", day, seed=10 + i))
        before = await everything(store)
        assert len(before["all"]) == 2 * 4 * 40 * 30

        archive = Archive(str(tmp_path / "archive"))
        report = await archive_days(store, archive, until=DAYS[3].replace(hour=0))
        assert len(report.written) == 2 * 3
        store.attach_archive(archive)
        assert await everything(store) == before  # archived and still hot: each point once

        async def gate(source: str, lo: datetime, hi: datetime) -> bool:
            return await is_archived(store, archive, source, lo, hi)

        gone = await store.retention(RetentionPolicy(1), apply=True, now=NOW, archived=gate)
        assert gone.points >= 2 * 2 * 40 * 30  # at least January left the database
        store.attach_archive(None)
        assert len((await everything(store))["all"]) < len(before["all"])
        store.attach_archive(archive)
        assert await everything(store) == before
    finally:
        await store.aclose()


async def test_a_bad_archive_file_is_named_and_the_rest_stays_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        for i, day in enumerate(DAYS):
            await store.write(frames_of("rig-a", day, seed=i))
        archive = Archive(str(tmp_path / "archive"))
        await archive_days(store, archive, until=DAYS[3].replace(hour=0))
        store.attach_archive(archive)
        await store.retention(RetentionPolicy(1), apply=True, now=NOW)  # days 1-3 only in Parquet now
        bad = archive.data_path("rig-a", DAYS[0].date())
        Path(bad).write_bytes(b"garbage")
        caplog.set_level(logging.WARNING, logger="witskit.storage")
        rows = [r async for r in store.query("rig-a", codes=["0108"])]
        assert {r.time.date() for r in rows} == {d.date() for d in DAYS[1:]}
        assert bad in caplog.text
        # A manifest entry that cannot be read: the archive is left out, named; the database answers.
        manifest = archive.manifest_path("rig-a", DAYS[1].date())
        Path(manifest).write_text("{oops")
        rows = [r async for r in store.query("rig-a", codes=["0108"])]
        assert {r.time.date() for r in rows} == {DAYS[3].date()}
        assert manifest in caplog.text
        series = await store.series("rig-a", ["0108"], points=4)
        assert series is not None
        assert sum(series.codes["0108"].count) == 40
    finally:
        await store.aclose()


def test_witskit_query_reads_both_tiers(tmp_path: Path) -> None:
    import asyncio

    from typer.testing import CliRunner

    from witskit.cli import app

    db = f"sqlite:///{tmp_path / 'w.db'}"
    where = str(tmp_path / "archive")

    async def run(archive_and_expire: bool) -> None:
        store = await Store.open(db)
        try:
            if not archive_and_expire:
                for i, day in enumerate(DAYS):
                    await store.write(frames_of("rig-a", day, seed=i))
                return
            await archive_days(store, Archive(where), until=DAYS[3].replace(hour=0))
            await store.retention(RetentionPolicy(1), apply=True, now=NOW)
        finally:
            await store.aclose()

    runner = CliRunner()
    query = ["query", "--db", db, "--symbols", "DBTM,ROPA", "-f", "csv"]
    asyncio.run(run(False))
    before = runner.invoke(app, query)
    assert before.exit_code == 0, before.stderr
    assert before.stdout.count("\n") == 1 + 2 * 4 * 40
    asyncio.run(run(True))
    hot_only = runner.invoke(app, query)
    assert hot_only.stdout.count("\n") == 1 + 2 * 40
    both = runner.invoke(app, [*query, "--archive", where])
    assert both.exit_code == 0, both.stderr
    assert both.stdout == before.stdout
