"""Retention on every backend: what goes, what stays, exact counters, the archive gate, the CLI.

Data: five record-1 frames on the 10th of January, February and March 2026 for two rigs; "now" is
2026-04-05. With 30 days for every source (cut-off 2026-03-06) January and February go: whole
partitions on PostgreSQL (their months ended before the cut-off), whole days elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from witskit.cli import app
from witskit.errors import UsageError
from witskit.storage import Store
from witskit.storage.retention import RetentionPolicy, scheduled_retention
from witskit.storage.schema import frames, points, sources

NOW = datetime(2026, 4, 5, tzinfo=UTC)
MONTHS = (1, 2, 3)


def month_frames(source: str, month: int, steps: int = 5, year: int = 2026) -> list[Any]:
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator

    start = datetime(year, month, 10, tzinfo=UTC)
    data = b"".join(DrillingSimulator(month, records=(1,), start=start).frames(steps))
    return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]


async def fill(store: Store) -> None:
    for name in ("rig-a", "rig-b"):
        for month in MONTHS:
            await store.write(month_frames(name, month))


async def months_of(store: Store, source: str) -> list[int]:
    return sorted({r.time.month async for r in store.query(source, codes=["0108"])})


async def counters_are_exact(store: Store) -> None:
    async with store._engine.connect() as conn:
        for sid, fc, pc, first in await conn.execute(
            select(sources.c.id, sources.c.frame_count, sources.c.point_count, sources.c.first_time)
        ):
            n_frames = (
                await conn.execute(select(func.count()).where(frames.c.source_id == sid))
            ).scalar_one()
            n_points = (
                await conn.execute(select(func.count()).where(points.c.source_id == sid))
            ).scalar_one()
            oldest = (
                await conn.execute(select(func.min(frames.c.frame_time)).where(frames.c.source_id == sid))
            ).scalar_one()
            assert (fc, pc, first) == (n_frames, n_points, oldest)


def test_a_policy_says_which_days_each_source_keeps() -> None:
    policy = RetentionPolicy.parse(30, ["rig-b=90", "odd=name=7"])
    assert (policy.days_for("rig-a"), policy.days_for("rig-b"), policy.days_for("odd=name")) == (30, 90, 7)
    assert RetentionPolicy().days_for("x") is None
    for bad in (["rig"], ["rig=ten"], ["=5"]):
        with pytest.raises(UsageError, match="NAME=DAYS"):
            RetentionPolicy.parse(None, bad)
    with pytest.raises(UsageError, match=">= 1"):
        RetentionPolicy(0)


async def test_retention_removes_whole_months_or_days_and_keeps_counters_exact(fresh_url: str) -> None:
    store = await Store.open(fresh_url, timeout=10)
    try:
        await fill(store)
        policy = RetentionPolicy(30, {"rig-b": 90})

        plan = await store.retention(policy, now=NOW)
        assert not plan.applied
        assert {r.source for r in plan.removed} == {"rig-a"}
        assert await months_of(store, "rig-a") == [1, 2, 3]  # a dry run changes nothing

        done = await store.retention(policy, apply=True, now=NOW)
        assert done.kept == []
        assert done.points == 2 * 5 * 30
        assert await months_of(store, "rig-a") == [3]
        assert await months_of(store, "rig-b") == [1, 2, 3]  # 90 days: cut-off 2026-01-05
        await counters_are_exact(store)
        if store.backend == "postgresql":
            # Written before rig-b had its own retention: both rigs share the months' buckets, which
            # stay for rig-b; rig-a's rows are deleted from them.
            assert {r.target for r in done.removed} == {
                f"rows of rig-a in frames_p20260{m}_d, point_blocks_p20260{m}_d, points_p20260{m}_d"
                for m in (1, 2)
            }

        again = await store.retention(policy, apply=True, now=NOW)
        assert again.removed == []
        assert again.kept == []
    finally:
        await store.aclose()


async def test_nothing_leaves_before_the_archive_has_it(fresh_url: str) -> None:
    store = await Store.open(fresh_url, timeout=10)
    try:
        await fill(store)
        asked: list[tuple[str, datetime, datetime]] = []

        async def only_january(source: str, start: datetime, end: datetime) -> bool:
            asked.append((source, start, end))
            return end <= datetime(2026, 2, 1, tzinfo=UTC)

        gate: Callable[[str, datetime, datetime], Awaitable[bool]] = only_january
        report = await scheduled_retention(store, RetentionPolicy(30), archived=gate, now=NOW)
        assert asked
        assert {s for s, _, _ in asked} == {"rig-a", "rig-b"}
        assert await months_of(store, "rig-a") == [2, 3]
        assert await months_of(store, "rig-b") == [2, 3]
        assert report.kept
        assert all("not in the archive yet" in line for line in report.kept)
        await counters_are_exact(store)
    finally:
        await store.aclose()


async def test_postgres_makes_next_months_partitions_ahead(postgres_url: str) -> None:
    store = await Store.open(postgres_url, timeout=10)
    try:
        await fill(store)
        assert await store.ensure_partitions_ahead(NOW) == 2  # April and May
        assert await store.ensure_partitions_ahead(NOW) == 0
        # An own leaf for a source with its own retention: next month, where it has no row yet.
        assert await store.ensure_partitions_ahead(NOW, own=["rig-a", "unknown"]) == 1
        assert await store.ensure_partitions_ahead(NOW, own=["rig-a"]) == 0
    finally:
        await store.aclose()


async def test_postgres_drops_own_leaves_and_whole_months_never_deleting_rows(postgres_url: str) -> None:
    """rig-a gets its own retention (30 days) before January: its January and February are its own
    leaves, dropped; November (before the setting) is in the buckets, alone, so the whole month
    goes. rig-b (90 days, the global) keeps everything in range. Not a row is DELETEd."""
    store = await Store.open(postgres_url, timeout=10)
    try:
        await store.write(month_frames("rig-a", 11, year=2025))
        for now in (datetime(2025, 12, 15, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC)):
            assert await store.ensure_partitions_ahead(now, own=["rig-a"]) >= 1
        await fill(store)
        policy = RetentionPolicy(90, {"rig-a": 30})
        done = await store.retention(policy, apply=True, now=NOW)
        assert done.kept == []
        assert sorted(r.target for r in done.removed) == [
            "frames_p202511_d, point_blocks_p202511_d, points_p202511_d",
            "frames_p202601_s1, point_blocks_p202601_s1, points_p202601_s1",
            "frames_p202602_s1, point_blocks_p202602_s1, points_p202602_s1",
        ]
        assert await months_of(store, "rig-a") == [3]
        assert await months_of(store, "rig-b") == [1, 2, 3]
        await counters_are_exact(store)
        async with store._engine.connect() as conn:
            deleted = (
                await conn.execute(text("SELECT COALESCE(sum(n_tup_del), 0) FROM pg_stat_user_tables"))
            ).scalar_one()
        assert deleted == 0  # partitions dropped, not a row deleted
    finally:
        await store.aclose()


def test_the_cli_lists_then_removes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    db = f"sqlite:///{tmp_path / 'w.db'}"

    async def setup() -> None:
        store = await Store.open(db)
        try:
            await fill(store)
        finally:
            await store.aclose()

    asyncio.run(setup())
    runner = CliRunner()
    result = runner.invoke(app, ["db", "retention", "--db", db, "--days", "30"])
    assert result.exit_code != 0
    assert "--dry-run" in result.stderr
    result = runner.invoke(
        app, ["db", "retention", "--db", db, "--days", "30", "--source", "rig-b=3650", "--dry-run"]
    )
    assert result.exit_code == 0, result.stderr
    assert "would remove rig-a 2026-01-10" in result.stdout
    assert "450 points" in result.stdout
    assert "rig-b" not in result.stdout
    result = runner.invoke(
        app, ["db", "retention", "--db", db, "--days", "30", "--source", "rig-b=3650", "--apply"]
    )
    assert result.exit_code == 0, result.stderr
    assert "removed rig-a" in result.stdout
    # The settings give the same retention without options.
    monkeypatch.setenv("WITS_RETENTION_DAYS", "30")
    result = runner.invoke(app, ["db", "retention", "--db", db, "--dry-run"])
    assert "would remove rig-b" in result.stdout
    assert "rig-a" not in result.stdout


async def test_a_partition_that_cannot_be_dropped_is_named_and_the_others_go(postgres_url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    store = await Store.open(postgres_url, timeout=10)
    blocker = await asyncpg.connect(
        postgres_url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10
    )
    try:
        await fill(store)
        # Another session reads January's leaf of rig-a and keeps its transaction open.
        await blocker.execute("BEGIN")
        await blocker.execute("LOCK TABLE points_p202601_d IN ACCESS SHARE MODE")
        report = await store.retention(RetentionPolicy(30), apply=True, now=NOW, lock_timeout=0.5)
        assert len(report.kept) == 1
        assert "points_p202601_d" in report.kept[0]
        assert "could not be dropped" in report.kept[0]
        assert sorted((r.source, r.start.month) for r in report.removed) == [("rig-a", 2), ("rig-b", 2)]
        assert await months_of(store, "rig-a") == [1, 3]  # kept whole, not half dropped
        await blocker.execute("ROLLBACK")
        await counters_are_exact(store)
        again = await store.retention(RetentionPolicy(30), apply=True, now=NOW)
        leaves = "frames_p202601_d, point_blocks_p202601_d, points_p202601_d"
        assert [r.target for r in again.removed] == [leaves, leaves]
    finally:
        await blocker.close()
        await store.aclose()


def test_the_cli_removes_only_what_the_archive_holds(tmp_path: Path) -> None:
    import asyncio

    from witskit.storage.archive import Archive, archive_days

    db = f"sqlite:///{tmp_path / 'w.db'}"
    where = str(tmp_path / "archive")

    async def setup() -> None:
        store = await Store.open(db)
        try:
            await fill(store)
            # January only is archived.
            await archive_days(store, Archive(where), until=datetime(2026, 2, 1, tzinfo=UTC))
        finally:
            await store.aclose()

    asyncio.run(setup())
    result = CliRunner().invoke(
        app, ["db", "retention", "--db", db, "--days", "30", "--archive", where, "--apply"]
    )
    assert result.exit_code == 1  # something due was kept
    assert "not in the archive yet" in result.stderr
    assert "removed rig-a 2026-01-10" in result.stdout
    assert result.stdout.count("(150 points, 5 frames)") == 2  # January of each rig, not February


async def test_a_frame_back_filled_between_the_archive_check_and_the_drop_keeps_the_leaf(
    postgres_url: str, tmp_path: Path
) -> None:
    """The race of issue 13: the archive confirms January, then a frame of January lands in its
    buckets (written by another store, on its own connection), then retention locks them. The
    month's DEFAULT must be kept and named (dropping it would lose the frame: the archive does not hold it),
    and the next archive run and retention pass take it, the frame with it."""
    from witskit.storage.archive import Archive, archive_days, is_archived
    from witskit.storage.retention import apply_retention

    store = await Store.open(postgres_url, timeout=10)
    writer = await Store.open(postgres_url, timeout=10)
    archive = Archive(str(tmp_path / "archive"))
    march = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        await fill(store)
        await archive_days(store, archive, until=march)  # January and February, both rigs

        async def gate(source: str, start: datetime, end: datetime) -> bool:
            return await is_archived(store, archive, source, start, end)

        from witskit.protocol import DecodedFrame, iter_decode
        from witskit.simulator import DrillingSimulator

        late_day = datetime(2026, 1, 20, tzinfo=UTC)
        data = b"".join(DrillingSimulator(99, records=(1,), start=late_day).frames(1))
        late = [f for f in iter_decode(data, source="rig-a") if isinstance(f, DecodedFrame)]
        january = "frames_p202601_d, point_blocks_p202601_d, points_p202601_d"
        written: list[int] = []

        async def back_fill(target: str) -> None:
            if target == january:  # after January's check, before its lock
                written.append(await writer.write(late))

        report = await apply_retention(
            store._engine, store._backend, RetentionPolicy(30), now=NOW, archived=gate, checked=back_fill
        )
        assert written == [30]
        assert len(report.kept) == 1, report.kept
        why = "frames arrived after its archive check (10 then, 11 now)"  # both rigs' January
        assert report.kept[0].startswith(f"{january}: {why}")
        assert sorted((r.source, r.start.month) for r in report.removed) == [("rig-a", 2), ("rig-b", 2)]
        assert await months_of(store, "rig-a") == [1, 3]
        assert await months_of(store, "rig-b") == [1, 3]
        assert {r.time async for r in store.query("rig-a", codes=["0108"], end=late_day.replace(day=21))} >= {
            late[0].timestamp
        }
        await counters_are_exact(store)

        # The next pass: the archive writes January 20th, then retention drops the leaf.
        assert [(e.source, e.date) for e in (await archive_days(store, archive, until=march)).written] == [
            ("rig-a", "2026-01-20")
        ]
        again = await apply_retention(
            store._engine, store._backend, RetentionPolicy(30), now=NOW, archived=gate
        )
        assert again.kept == []
        assert [r.target for r in again.removed] == [january, january]  # one line per source
        assert await months_of(store, "rig-a") == [3]
        entry = archive.entry("rig-a", late_day.date())
        assert entry is not None
        assert (entry.frames, entry.rows) == (1, 30)
        await counters_are_exact(store)
    finally:
        await writer.aclose()
        await store.aclose()
