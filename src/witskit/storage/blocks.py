"""PostgreSQL: compaction of closed hours of ``points`` into ``point_blocks`` (revision 0009).

Writes go to ``points``, one row per point, exactly as before: COPY, and the frames primary key
makes a replayed frame store nothing (only the transaction that inserted a frame row writes that
frame's points). Rows cost ~140 bytes a point there; an hour of one channel as one row of arrays
(times, frame keys, line indexes, numbers, texts), TOAST-compressed, costs ~15. :func:`compact`
moves every row older than a cutoff into its (source, code, hour) block in one statement per
source and day::

    DELETE FROM points ... RETURNING          the rows of the day, as this transaction sees them
    + the block's points already stored       a late frame's rows merge into the existing block
    INSERT INTO point_blocks ... GROUP BY     one block per (source, code, hour), sorted
        ON CONFLICT DO UPDATE                 the block is replaced by the merged one

Why this is safe:

* **idempotent writes**: whether a frame is stored is decided by ``frames`` alone, never by where
  its points live, so a replay after compaction stores nothing either;
* **late frames**: a frame for an hour already compacted goes to ``points`` like any other; the
  next compaction merges it into the block (the block is rebuilt from both);
* **concurrent writers**: the DELETE takes only rows committed before it, a row committed during it
  stays in ``points`` for the next run; compactions are serialized by an advisory lock (two would
  otherwise rebuild the same block from different snapshots); a block and its rows are never both
  visible to a reader (one transaction moves them).

Readers see both through the view ``points_all`` (its ``span_start`` is ``hour`` for a block and
``time`` for a row: a bound on it lets the planner skip blocks outside a time range by the key).
A leaf of ``points`` left empty is truncated (under ``lock_timeout``, after locking it and
checking again), which gives its disk space back at once; otherwise VACUUM makes it reusable.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Final

__all__ = ["COMPACT_LOCK_KEY", "SUMMARY_COLUMNS", "compact", "summarize_sql"]

logger = logging.getLogger("witskit.storage")

#: pg_advisory_xact_lock key of compaction: "WITSBLOK" in ASCII.
COMPACT_LOCK_KEY: Final = 0x57495453_424C4F4B

_ORDER: Final = "ORDER BY time, frame_key, idx"

#: Per-minute summaries of a block (revision 0011), 60 slots each (slot m: minute m - 1 of the
#: hour), over its non-text readings: numeric count, null count, min, max, sum, the earliest and
#: latest numeric time, how many numeric values share each and the smallest of them, and (61 slots)
#: where each minute starts in the block's arrays. NULL when the block's times are not sorted (a
#: bulk write appended earlier points): such a block is read point by point.
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

# One block's summaries from its arrays: the points with their minute and array position, each
# minute aggregated (every minute of the hour, empty ones too, so slot m is always minute m - 1),
# then one array per column. ``ok`` checks that each minute's points are the one slice of the arrays
# that its offset says (the block is in minute order).
_SUMMARY_OF: Final = """
    SELECT CASE WHEN bool_and(g.ok) THEN array_agg(g.n ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.nulls ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.lo ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.hi ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.s ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.t0 ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.n0 ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.v0 ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.t1 ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.n1 ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.v1 ORDER BY g.m) END,
        CASE WHEN bool_and(g.ok) THEN array_agg(g.off ORDER BY g.m)
            || (cardinality({b}.times) + 1) END
    FROM (
        SELECT s.m, COALESCE(a.n, 0)::int4 AS n, COALESCE(a.nulls, 0)::int4 AS nulls, a.lo, a.hi, a.s,
            a.t0, a.n0::int4 AS n0, a.v0, a.t1, a.n1::int4 AS n1, a.v1,
            (1 + COALESCE(sum(a.rows) OVER (ORDER BY s.m ROWS BETWEEN UNBOUNDED PRECEDING
                AND 1 PRECEDING), 0))::int4 AS off,
            a.first_i IS NULL OR (a.contiguous AND a.first_i = 1 + COALESCE(sum(a.rows) OVER (
                ORDER BY s.m ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS ok
        FROM generate_series(1, 60) AS s(m) LEFT JOIN (
            SELECT p.m, count(p.v) AS n, count(*) FILTER (WHERE p.v IS NULL AND p.x IS NULL) AS nulls,
                min(p.v) AS lo, max(p.v) AS hi, sum(p.v) AS s, min(p.t0) AS t0, max(p.t1) AS t1,
                count(p.v) FILTER (WHERE p.t = p.t0) AS n0, min(p.v) FILTER (WHERE p.t = p.t0) AS v0,
                count(p.v) FILTER (WHERE p.t = p.t1) AS n1, min(p.v) FILTER (WHERE p.t = p.t1) AS v1,
                count(*) AS rows, min(p.i) AS first_i, max(p.i) - min(p.i) + 1 = count(*) AS contiguous
            FROM (
                SELECT q.*, min(q.t) FILTER (WHERE q.v IS NOT NULL) OVER (PARTITION BY q.m) AS t0,
                    max(q.t) FILTER (WHERE q.v IS NOT NULL) OVER (PARTITION BY q.m) AS t1
                FROM (
                    SELECT u.t, u.v, u.x, u.i,
                        1 + floor((EXTRACT(EPOCH FROM u.t) - EXTRACT(EPOCH FROM {b}.hour)) / 60)::int4 AS m
                    FROM unnest({b}.times, {b}.nums, {b}.texts) WITH ORDINALITY AS u(t, v, x, i)
                ) q
            ) p GROUP BY p.m
        ) a ON a.m = s.m
    ) g
"""


def summarize_sql(where: str) -> str:
    """UPDATE the summaries of the blocks ``b`` of ``where`` (a condition on ``b``) from their arrays."""
    cols = ", ".join(SUMMARY_COLUMNS)
    return f"UPDATE point_blocks b SET ({cols}) = ({_SUMMARY_OF.format(b='b')}) WHERE {where}"  # noqa: S608


_COMPACT: Final = f"""
WITH moved AS (
    DELETE FROM points WHERE source_id = $1 AND time >= $2 AND time < $3
    RETURNING source_id, code, time, frame_key, idx, value_num, value_text
), touched AS (
    SELECT DISTINCT source_id, code, date_trunc('hour', time, 'UTC') AS hour FROM moved
), merged AS (
    SELECT source_id, code, date_trunc('hour', time, 'UTC') AS hour, time, frame_key, idx, value_num,
        value_text
    FROM moved
    UNION ALL
    SELECT b.source_id, b.code, b.hour, u.time, u.frame_key, u.idx, u.value_num, u.value_text
    FROM point_blocks b JOIN touched t ON t.source_id = b.source_id AND t.code = b.code
        AND t.hour = b.hour
    CROSS JOIN LATERAL unnest(b.frame_keys, b.times, b.nums, b.idxs, b.texts)
        AS u(frame_key, time, value_num, idx, value_text)
    WHERE b.source_id = $1 AND b.hour >= $2 AND b.hour < $3
), stored AS (
INSERT INTO point_blocks (source_id, code, hour, times, frame_keys, idxs, nums, texts)
SELECT source_id, code, hour, array_agg(time {_ORDER}), array_agg(frame_key {_ORDER}),
    array_agg(idx {_ORDER}), array_agg(value_num {_ORDER}),
    CASE WHEN bool_or(value_text IS NOT NULL) THEN array_agg(value_text {_ORDER}) END
FROM merged GROUP BY source_id, code, hour
ON CONFLICT (source_id, code, hour) DO UPDATE SET times = EXCLUDED.times,
    frame_keys = EXCLUDED.frame_keys, idxs = EXCLUDED.idxs, nums = EXCLUDED.nums, texts = EXCLUDED.texts
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

_DAY: Final = timedelta(days=1)


async def compact(drv: Any, before: datetime, lock_timeout: float = 5.0) -> int:
    """Move every row of ``points`` older than ``before`` (cut to the hour) into blocks (asyncpg).

    One transaction per (source, UTC day); returns the number of points moved.
    """
    cutoff = before.replace(minute=0, second=0, microsecond=0)
    days = await drv.fetch(
        "SELECT DISTINCT source_id, date_trunc('day', time, 'UTC') AS day FROM points WHERE time < $1 "
        "ORDER BY 2, 1",
        cutoff,
    )
    moved = 0
    for row in days:
        sid, day = int(row[0]), row[1]
        async with drv.transaction():
            await drv.execute("SELECT pg_advisory_xact_lock($1)", COMPACT_LOCK_KEY)
            await drv.execute("SET LOCAL work_mem = '64MB'")
            end = min(day + _DAY, cutoff)
            count, codes, hours = await drv.fetchrow(_COMPACT, sid, day, end)
            moved += int(count)
            if codes:
                await drv.execute(_SUMMARIZE_COMPACTED, sid, day, end, [c.strip() for c in codes], hours)
    await _truncate_empty(drv, lock_timeout)
    return moved


async def _truncate_empty(drv: Any, lock_timeout: float) -> None:
    """TRUNCATE the leaves of ``points`` left empty (their space back at once, not at VACUUM)."""
    leaves = await drv.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class m ON m.oid = i.inhparent JOIN pg_inherits im ON im.inhrelid = m.oid "
        "WHERE im.inhparent = 'points'::regclass AND pg_relation_size(c.oid) > 0"
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
