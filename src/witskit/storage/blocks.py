"""PostgreSQL: compaction of closed hours of ``points`` into ``point_blocks`` (revision 0009).

Live writes go to ``points``, one row per point (a write of many frames of a source's hour makes
blocks instead: ``witskit.storage._postgres``): COPY, and the frames primary key
makes a replayed frame store nothing (only the transaction that inserted a frame row writes that
frame's points). Rows cost ~140 bytes a point there; an hour of one channel as one row of arrays
(times, frame keys, line indexes, numbers, texts), TOAST-compressed, costs ~15. :func:`compact`
moves every row older than a cutoff into its (source, code, hour) block in one statement per
source and day::

    DELETE FROM points ... RETURNING          the rows of the day, as this transaction sees them
    INSERT INTO point_blocks ... GROUP BY     one block per (source, code, hour), sorted
        ON CONFLICT DO UPDATE                 a stored block (a late frame's hour) merged with them,
                                              sorted: its latest version, after its row lock

Why this is safe:

* **idempotent writes**: whether a frame is stored is decided by ``frames`` alone, never by where
  its points live, so a replay after compaction stores nothing either;
* **late frames**: a frame for an hour already compacted goes to ``points`` like any other; the
  next compaction merges it into the block (the block is rebuilt from both);
* **concurrent writers**: the DELETE takes only rows committed before it, a row committed during it
  stays in ``points`` for the next run; a block is merged with the rows in ``DO UPDATE`` from its
  latest committed version (read after its row lock), so points a writer appends to it, or a
  block a writer makes, while the compaction runs are kept; compactions are serialized by an
  advisory lock (writers never take it); a block and its rows are never both visible to a reader
  (one transaction moves them).

Readers see both through the view ``points_all`` (its ``span_start`` is ``hour`` for a block and
``time`` for a row: a bound on it lets the planner skip blocks outside a time range by the key).
A leaf of ``points`` left empty is truncated (under ``lock_timeout``, after locking it and
checking again), which gives its disk space back at once; otherwise VACUUM makes it reusable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

__all__ = [
    "COMPACT_LOCK_KEY",
    "SUMMARY_COLUMNS",
    "CompactedDay",
    "compact",
    "compaction_cutoff",
    "plan_compaction",
    "summarize_pending",
    "summarize_sql",
]

logger = logging.getLogger("witskit.storage")

#: pg_advisory_xact_lock key of compaction: "WITSBLOK" in ASCII.
COMPACT_LOCK_KEY: Final = 0x57495453_424C4F4B

_ORDER: Final = "ORDER BY time, frame_key, idx"

#: Per-minute summaries of a block (revision 0011), 60 slots each (slot m: minute m - 1 of the
#: hour), over its non-text readings: numeric count, null count, min, max, sum, the earliest and
#: latest numeric time, how many numeric values share each and the smallest of them, and (61 slots)
#: where each minute starts in the block's arrays. ``m_offs`` NULL: not summarized yet (a bulk
#: write's block, summarized by the next compaction); empty (the other columns NULL): the block's
#: arrays are not in minute order (a bulk write appended earlier points). Either way a reader reads
#: such a block point by point.
SUMMARY_COLUMNS: Final = (
    "m_count",
    "m_nulls",
    "m_min",
    "m_max",
    "m_sum",
    "m_t0",
    "m_n0",
    "m_v0",
    "m_t1",
    "m_n1",
    "m_v1",
    "m_offs",
)

# One block's summaries from its arrays: its points grouped by time, then by minute (every minute
# of the hour, empty ones too, so slot m is always minute m - 1), then one array per column. The
# numeric count and smallest value at a minute's earliest (latest) numeric time come with the
# smallest (largest) [offset in the hour, count, value] of its times, so no window or second pass
# over the points is needed (20 ms a block became 6). ``ok`` checks that each minute's points are
# the one slice of the arrays that its offset says (the block is in minute order).
_SUMMARY_OF: Final = """
    SELECT CASE WHEN bool_and(z.ok) THEN array_agg(z.n ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.nulls ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.lo ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.hi ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.s ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.t0 ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.n0 ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.v0 ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.t1 ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.n1 ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.v1 ORDER BY z.m) END,
        CASE WHEN bool_and(z.ok) THEN array_agg(z.off ORDER BY z.m)
            || (cardinality({b}.times) + 1) ELSE '{{}}'::int4[] END
    FROM (
        SELECT y.*, y.first_i IS NULL OR (y.contiguous AND y.first_i = y.off) AS ok
        FROM (
            SELECT s.m, COALESCE(g.n, 0)::int4 AS n, COALESCE(g.nulls, 0)::int4 AS nulls, g.lo, g.hi, g.s,
                g.t0, g.e0[2]::int4 AS n0, g.e0[3] AS v0, g.t1, g.e1[2]::int4 AS n1, g.e1[3] AS v1,
                (1 + COALESCE(sum(g.rows) OVER (ORDER BY s.m ROWS BETWEEN UNBOUNDED PRECEDING
                    AND 1 PRECEDING), 0))::int4 AS off,
                g.first_i, g.contiguous
            FROM generate_series(1, 60) AS s(m) LEFT JOIN (
                SELECT a.m, sum(a.nv) AS n, sum(a.nn) AS nulls, min(a.lo) AS lo, max(a.hi) AS hi,
                    sum(a.s) AS s, min(a.t) FILTER (WHERE a.nv > 0) AS t0,
                    max(a.t) FILTER (WHERE a.nv > 0) AS t1,
                    min(ARRAY[a.tu, a.nv, a.lo]) FILTER (WHERE a.nv > 0) AS e0,
                    max(ARRAY[a.tu, a.nv, a.lo]) FILTER (WHERE a.nv > 0) AS e1,
                    sum(a.rows) AS rows, min(a.i0) AS first_i,
                    max(a.i1) - min(a.i0) + 1 = sum(a.rows) AS contiguous
                FROM (
                    SELECT date_part('minute', u.t AT TIME ZONE 'UTC')::int4 + 1 AS m, u.t,
                        date_part('epoch', u.t - {b}.hour) AS tu, count(u.v)::float8 AS nv,
                        count(*) FILTER (WHERE u.v IS NULL AND u.x IS NULL) AS nn, min(u.v) AS lo,
                        max(u.v) AS hi, sum(u.v) AS s, count(*) AS rows, min(u.i) AS i0, max(u.i) AS i1
                    FROM unnest({b}.times, {b}.nums, {b}.texts) WITH ORDINALITY AS u(t, v, x, i)
                    GROUP BY u.t
                ) a GROUP BY a.m
            ) g ON g.m = s.m
        ) y
    ) z
"""


def summarize_sql(where: str) -> str:
    """UPDATE the summaries of the blocks ``b`` of ``where`` (a condition on ``b``) from their arrays."""
    cols = ", ".join(SUMMARY_COLUMNS)
    return f"UPDATE point_blocks b SET ({cols}) = ({_SUMMARY_OF.format(b='b')}) WHERE {where}"  # noqa: S608


# The rows of the day are grouped into blocks; a block already stored for the key is merged with
# them in DO UPDATE, from ``o``: the block's latest committed version, read after its row lock, not
# this statement's snapshot. A writer appending to a block (a backlog's bundles) or making it while
# the compaction runs keeps its points: the compaction waits for its commit and merges what it
# wrote (with the snapshot's version, those points would be overwritten).
_MERGED: Final = (
    "unnest(o.times, o.frame_keys, o.idxs, o.nums, o.texts) UNION ALL SELECT * FROM "
    "unnest(EXCLUDED.times, EXCLUDED.frame_keys, EXCLUDED.idxs, EXCLUDED.nums, EXCLUDED.texts)"
)
_COMPACT: Final = f"""
WITH moved AS (
    DELETE FROM points WHERE source_id = $1 AND time >= $2 AND time < $3
    RETURNING source_id, code, time, frame_key, idx, value_num, value_text
), stored AS (
INSERT INTO point_blocks AS o (source_id, code, hour, times, frame_keys, idxs, nums, texts)
SELECT source_id, code, date_trunc('hour', time, 'UTC') AS hour, array_agg(time {_ORDER}),
    array_agg(frame_key {_ORDER}), array_agg(idx {_ORDER}), array_agg(value_num {_ORDER}),
    CASE WHEN bool_or(value_text IS NOT NULL) THEN array_agg(value_text {_ORDER}) END
FROM moved GROUP BY source_id, code, date_trunc('hour', time, 'UTC')
ORDER BY source_id, code, hour  -- the order writers lock blocks in: no deadlock with one
ON CONFLICT (source_id, code, hour) DO UPDATE SET (times, frame_keys, idxs, nums, texts) = (
    SELECT array_agg(time {_ORDER}), array_agg(frame_key {_ORDER}), array_agg(idx {_ORDER}),
        array_agg(value_num {_ORDER}),
        CASE WHEN bool_or(value_text IS NOT NULL) THEN array_agg(value_text {_ORDER}) END
    FROM (SELECT * FROM {_MERGED}) AS u(time, frame_key, idx, value_num, value_text)
)
RETURNING code, hour
)
SELECT (SELECT count(*) FROM moved), array_agg(code), array_agg(hour) FROM stored
"""  # noqa: S608 - fixed text

#: The blocks a compaction rebuilt get their summaries (a separate statement: the one that wrote
#: them cannot read them back).
_SUMMARIZE_COMPACTED: Final = summarize_sql(
    "b.source_id = $1 AND b.hour >= $2 AND b.hour < $3 AND (b.code, b.hour) IN "
    "(SELECT * FROM unnest($4::text[], $5::timestamptz[]))"
)

#: The (source, UTC day) units of work: one transaction each, in this order.
_DAYS: Final = """
SELECT source_id, date_trunc('day', time, 'UTC') AS day, count(DISTINCT date_trunc('hour', time, 'UTC')),
    count(*)
FROM points WHERE time < $1 AND ($2::bigint[] IS NULL OR source_id = ANY($2))
GROUP BY 1, 2 ORDER BY 2, 1
"""

_DAY: Final = timedelta(days=1)


@dataclass(frozen=True)
class CompactedDay:
    """One (source, UTC day) of rows that compaction moves (or moved) into blocks."""

    source_id: int
    day: datetime
    #: Hours of that day with rows to move.
    hours: int
    #: Points (rows) moved.
    points: int


def compaction_cutoff(before: datetime) -> datetime:
    """The instant before which rows are compacted: ``before`` cut to the hour."""
    return before.replace(minute=0, second=0, microsecond=0)


async def plan_compaction(
    drv: Any, before: datetime, source_ids: Sequence[int] | None = None
) -> list[CompactedDay]:
    """What :func:`compact` would move now, per (source, UTC day), in its order (asyncpg)."""
    ids = None if source_ids is None else list(source_ids)
    rows = await drv.fetch(_DAYS, compaction_cutoff(before), ids)
    return [CompactedDay(int(r[0]), r[1], int(r[2]), int(r[3])) for r in rows]


async def compact(
    drv: Any,
    before: datetime,
    lock_timeout: float = 5.0,
    *,
    source_ids: Sequence[int] | None = None,
    on_day: Callable[[CompactedDay], None] | None = None,
) -> int:
    """Move every row of ``points`` older than ``before`` (cut to the hour) into blocks (asyncpg).

    One transaction per (source, UTC day), so a run that is killed has moved whole days and left
    the others as rows, and a run again moves the rest; ``source_ids`` limits it to those sources,
    ``on_day`` is told of each day once its transaction committed. Returns the points moved.
    """
    cutoff = compaction_cutoff(before)
    ids = None if source_ids is None else list(source_ids)
    moved = 0
    for row in await drv.fetch(_DAYS, cutoff, ids):
        sid, day = int(row[0]), row[1]
        async with drv.transaction():
            await drv.execute("SELECT pg_advisory_xact_lock($1)", COMPACT_LOCK_KEY)
            await drv.execute("SET LOCAL work_mem = '64MB'")
            end = min(day + _DAY, cutoff)
            count, codes, hours = await drv.fetchrow(_COMPACT, sid, day, end)
            if codes:
                await drv.execute(_SUMMARIZE_COMPACTED, sid, day, end, [c.strip() for c in codes], hours)
        points = int(count)
        moved += points
        if on_day is not None and points:
            on_day(CompactedDay(sid, day, len(set(hours or ())), points))
    await summarize_pending(drv, cutoff)
    await _truncate_empty(drv, lock_timeout)
    return moved


#: Blocks a bulk write could not summarize (text or null readings, repeated times, appended to)
#: wait for their summaries (partial index ``point_blocks_pending``), a day of one source at a time.
_PENDING: Final = (
    "SELECT DISTINCT source_id, date_trunc('day', hour, 'UTC') FROM point_blocks "
    "WHERE m_offs IS NULL AND hour < $1 ORDER BY 2, 1"
)
_SUMMARIZE_PENDING: Final = summarize_sql(
    "b.m_offs IS NULL AND b.source_id = $1 AND b.hour >= $2 AND b.hour < $3"
)
#: Blocks of the day that came out unordered (a write appended earlier points: a fleet backlog's
#: bundles committed by two workers in the other order, an older file imported after a newer one)
#: are sorted, then summarized again: otherwise only a compaction of rows in their hour would ever
#: sort them, and a reader would read them point by point for good.
_SORT_UNORDERED: Final = f"""
UPDATE point_blocks b SET (times, frame_keys, idxs, nums, texts) = (
    SELECT array_agg(u.time {_ORDER}), array_agg(u.frame_key {_ORDER}), array_agg(u.idx {_ORDER}),
        array_agg(u.value_num {_ORDER}),
        CASE WHEN b.texts IS NULL THEN NULL ELSE array_agg(u.value_text {_ORDER}) END
    FROM unnest(b.times, b.frame_keys, b.idxs, b.nums, b.texts)
        AS u(time, frame_key, idx, value_num, value_text)
)
WHERE b.m_offs = '{{}}' AND b.source_id = $1 AND b.hour >= $2 AND b.hour < $3
"""  # noqa: S608 - fixed text
#: The day's blocks the pass updates, locked first in the order writers lock blocks in (source,
#: code, hour): an UPDATE locks rows in its scan's order, and a writer appending to two of them in
#: the other order would deadlock with it.
_LOCK_DAY: Final = (
    "SELECT 1 FROM point_blocks WHERE source_id = $1 AND hour >= $2 AND hour < $3 "
    "AND (m_offs IS NULL OR m_offs = '{}') ORDER BY code, hour FOR UPDATE"
)
_SUMMARIZE_SORTED: Final = summarize_sql(
    "b.m_offs = '{}' AND b.source_id = $1 AND b.hour >= $2 AND b.hour < $3"
)


async def summarize_pending(drv: Any, before: datetime) -> int:
    """Summarize every block of an hour before ``before`` that has no summaries yet (asyncpg).

    One transaction per (source, UTC day), under the compaction lock (a compaction rebuilding a
    block meanwhile would otherwise race the summary of its old arrays); returns the blocks done.
    """
    done = 0
    for sid, day in await drv.fetch(_PENDING, before):
        async with drv.transaction():
            await drv.execute("SELECT pg_advisory_xact_lock($1)", COMPACT_LOCK_KEY)
            await drv.execute("SET LOCAL work_mem = '64MB'")
            end = min(day + _DAY, before)
            await drv.execute(_LOCK_DAY, int(sid), day, end)
            status = await drv.execute(_SUMMARIZE_PENDING, int(sid), day, end)
            done += int(status.split()[-1])
            if (await drv.execute(_SORT_UNORDERED, int(sid), day, end)).split()[-1] != "0":
                await drv.execute(_SUMMARIZE_SORTED, int(sid), day, end)
    return done


async def _truncate_empty(drv: Any, lock_timeout: float) -> None:
    """TRUNCATE the leaves of ``points`` left empty (their space back at once, not at VACUUM)."""
    leaves = await drv.fetch(
        "SELECT c.relname FROM pg_partition_tree('points'::regclass) t JOIN pg_class c ON c.oid = t.relid "
        "WHERE t.isleaf AND pg_relation_size(c.oid) > 0"
    )
    for row in leaves:
        name = str(row[0])
        try:
            async with drv.transaction():
                await drv.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms'")
                await drv.execute(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
                if await drv.fetchval(f"SELECT NOT EXISTS (SELECT 1 FROM {name})"):  # noqa: S608
                    await drv.execute(f"TRUNCATE {name}")
        except Exception as exc:  # a busy leaf keeps its space until VACUUM; nothing is lost
            logger.info("storage: %s not truncated after compaction: %s", name, exc)
