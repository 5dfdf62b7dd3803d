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

__all__ = ["COMPACT_LOCK_KEY", "compact"]

logger = logging.getLogger("witskit.storage")

#: pg_advisory_xact_lock key of compaction: "WITSBLOK" in ASCII.
COMPACT_LOCK_KEY: Final = 0x57495453_424C4F4B

_ORDER: Final = "ORDER BY time, frame_key, idx"

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
)
SELECT count(*) FROM moved
"""  # noqa: S608 - fixed text

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
            moved += int(await drv.fetchval(_COMPACT, sid, day, min(day + _DAY, cutoff)))
    await _truncate_empty(drv, lock_timeout)
    return moved


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
