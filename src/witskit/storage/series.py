"""Downsampled series: min, max, average, first and last value per time bucket, computed in SQL.

A chart of a week or a month cannot draw every point: a month of one channel at 1 Hz is 2.6 million
of them for a track a few hundred pixels tall. :func:`downsample` divides ``[start, end)`` into
``points`` buckets of equal width and lets the database aggregate each bucket, so only the buckets
leave it. ``min`` and ``max`` keep every spike (a chart draws them as a band: a spike averaged
away is a kick missed); ``avg``, ``first`` and ``last`` give a line; ``count`` and ``nulls`` say how
many numeric and null readings the bucket held.

Each code is one query over one ``(source_id, code, time)`` range of the points key (sequential on
the clustered SQLite and InnoDB tables), and bucket edges are computed in exact integer
microseconds, so a point on an edge always opens the later bucket on every backend:

- SQLite (time is an integer count of µs) and MariaDB/MySQL (``DATETIME(6)``) group the range's
  rows by ``(time - anchor + offset) / width``, resp. ``(TIMESTAMPDIFF(MICROSECOND, anchor, time)
  + offset) DIV width``. Neither has a better plan than sorting the rows by bucket (SQLite's temp
  B-tree, InnoDB's temporary table); ``first`` and ``last`` are then one probe of the key per
  bucket, at the bucket's earliest and latest numeric time.
- PostgreSQL reads the range's points once (revision 0009: rows and hourly blocks through the
  view ``points_all``, each block of the range detoasted once) and groups them by bucket index in
  memory (``work_mem`` raised for the query); ``first`` and ``last`` are the one value at the
  bucket's earliest and latest numeric time, and only when several frames share that time is
  their receive order looked up. (Before the blocks, a walk over the buckets, one index range scan
  each, was ~3x faster than grouping the rows; over blocks it read each block once per bucket.)
  JIT is switched off for these queries (``SET LOCAL jit = off``): compiling costs more than they
  run.

The anchor the arithmetic starts from is the first stored time in the range (on PostgreSQL the
start of its bucket), not ``start``: a range that begins long before the data
(``start=1900-01-01``) then never hands a backend a date outside what its type holds, and
``offset`` (``anchor - start`` in µs) keeps the buckets where ``start`` puts them.

When several frames share that earliest or latest time (a rig sending several frames a second),
``first`` is the value of the one received first and ``last`` of the one received last, the order
in which queries and exports return them.

Text values (type A items) are skipped; a null reading counts in ``nulls`` and in nothing else. A
bucket that holds no reading at all is left out: the columns are sparse, in time order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import BigInteger, Double, Integer, TextualSelect, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from witskit.errors import UsageError
from witskit.storage.query import TimeBound, distinct_codes, parse_time, resolve_codes
from witskit.storage.schema import UTCDateTime, from_micros, sources, to_micros

__all__ = [
    "DEFAULT_POINTS",
    "MAX_CODES",
    "MAX_POINTS",
    "CodeSeries",
    "Series",
    "downsample",
]

#: Buckets per series when none is asked for: about one per pixel of a track's height.
DEFAULT_POINTS: Final = 600
#: The most buckets per series: more than any screen has pixels, and 5,000 x 8 numbers per code
#: keep a response of a few codes well under a megabyte.
MAX_POINTS: Final = 5000
#: Codes per request: each is one query, so this bounds the work one request can ask for.
MAX_CODES: Final = 100

_ONE_US: Final = timedelta(microseconds=1)
_HOUR_US: Final = 3_600_000_000


@dataclass(frozen=True, slots=True)
class CodeSeries:
    """The buckets of one code that hold a numeric or null reading, in time order.

    The lists line up: bucket ``i`` starts at ``time[i]`` (microseconds since 1970-01-01 UTC) and
    holds ``count[i]`` numeric readings, whose smallest, largest, mean, earliest and latest values
    are ``min[i]``, ``max[i]``, ``avg[i]``, ``first[i]`` and ``last[i]`` (all None when the bucket
    held only null readings), and ``nulls[i]`` null readings.
    """

    code: str
    time: list[int]
    count: list[int]
    nulls: list[int]
    min: list[float | None]
    max: list[float | None]
    avg: list[float | None]
    first: list[float | None]
    last: list[float | None]

    @classmethod
    def empty(cls, code: str) -> CodeSeries:
        """A series without buckets."""
        return cls(code, [], [], [], [], [], [], [], [])


@dataclass(frozen=True, slots=True)
class Series:
    """Downsampled data of one source: bucket ``k`` covers ``[start + k * width, start + (k+1) * width)``.

    ``buckets`` is how many buckets cover ``[start, end)`` (at most the ``points`` asked for);
    ``width_us`` their width in microseconds. ``start`` and ``end`` are the range asked for, or
    the source's first and last stored time (plus 1 µs: ``end`` is exclusive) when not given; both
    are None, and ``width_us`` 0, for a source that has stored nothing and was asked for no range.
    """

    source: str
    start: datetime | None
    end: datetime | None
    width_us: int
    buckets: int
    codes: dict[str, CodeSeries]


_TYPES: Final[dict[str, TypeEngine[Any]]] = {
    "k": BigInteger(),
    "n": BigInteger(),
    "nulls": BigInteger(),
    "lo": Double(),
    "hi": Double(),
    "mean": Double(),
    "first_value": Double(),
    "last_value": Double(),
}


def _bucket_sql(dialect: str) -> str:
    """The bucket index of ``p.time`` (exact integer arithmetic in microseconds)."""
    if dialect == "sqlite":
        return "(p.time - :anchor + :offset) / :width"
    if dialect in ("mysql", "mariadb"):
        return "(TIMESTAMPDIFF(MICROSECOND, :anchor, p.time) + :offset) DIV :width"
    raise UsageError(f"downsampling is not implemented for {dialect}")


def _group_statement(dialect: str) -> TextualSelect:
    """SQLite, MariaDB/MySQL: the range's rows grouped by bucket index."""
    # The innermost select computes the index per row; grouping by its alias one level up keeps
    # the expression and its bound parameters out of GROUP BY. MariaDB joins points first, then the
    # frame by its key: stale statistics after a bulk import made it drive such a join from frames
    # (see MySQLBackend.scan_join).
    join = "STRAIGHT_JOIN" if dialect in ("mysql", "mariadb") else "JOIN"
    sql = f"""
        SELECT b.k, b.n, b.nulls, b.lo, b.hi, b.mean,
            (SELECT f.value_num FROM points f {join} frames fa
                    ON fa.source_id = f.source_id AND fa.frame_key = f.frame_key
                    AND fa.frame_time = f.time
                WHERE f.source_id = :sid AND f.code = :code AND f.time = b.t0
                    AND f.value_num IS NOT NULL
                ORDER BY fa.received_at, f.frame_key, f.idx LIMIT 1) AS first_value,
            (SELECT l.value_num FROM points l {join} frames fz
                    ON fz.source_id = l.source_id AND fz.frame_key = l.frame_key
                    AND fz.frame_time = l.time
                WHERE l.source_id = :sid AND l.code = :code AND l.time = b.t1
                    AND l.value_num IS NOT NULL
                ORDER BY fz.received_at DESC, l.frame_key DESC, l.idx DESC LIMIT 1) AS last_value
        FROM (
            SELECT r.k AS k, COUNT(r.v) AS n, COUNT(*) - COUNT(r.v) AS nulls,
                MIN(r.v) AS lo, MAX(r.v) AS hi, AVG(r.v) AS mean,
                MIN(CASE WHEN r.v IS NOT NULL THEN r.t END) AS t0,
                MAX(CASE WHEN r.v IS NOT NULL THEN r.t END) AS t1
            FROM (
                SELECT {_bucket_sql(dialect)} AS k, p.time AS t, p.value_num AS v
                FROM points p
                WHERE p.source_id = :sid AND p.code = :code AND p.time >= :lo AND p.time < :hi
                    AND p.value_text IS NULL
            ) r
            GROUP BY r.k
        ) b
        ORDER BY b.k
    """  # noqa: S608 - the only interpolations are fixed expressions per dialect
    return (
        text(sql)
        .bindparams(
            bindparam("anchor", type_=UTCDateTime()),
            bindparam("lo", type_=UTCDateTime()),
            bindparam("hi", type_=UTCDateTime()),
            bindparam("offset", type_=BigInteger()),
            bindparam("width", type_=BigInteger()),
            bindparam("sid", type_=Integer()),
        )
        .columns(**_TYPES)
    )


#: PostgreSQL (revisions 0009, 0011): the range's readings as parts, grouped by bucket index. A part
#: is a minute of a block that lies whole in one bucket and in the range (its summary: counts, min,
#: max, sum, earliest and latest numeric time), or one reading: of ``points`` (rows not compacted
#: yet), of a minute that a bucket's edge or the range's cuts (one slice of its block's arrays), or of
#: a block without summaries (read whole). A bucket's first (last) value is the one numeric value at
#: its first (last) time; only when several share that time is the frames' receive order looked up.
_GROUPED_SQL: Final = """
    WITH mins AS MATERIALIZED (
        SELECT b.hour, s.*, h.us + (s.m - 1) * 60000000 AS m_us
        FROM point_blocks b
        CROSS JOIN LATERAL (SELECT (EXTRACT(EPOCH FROM b.hour) * 1000000)::int8 AS us) h
        CROSS JOIN LATERAL unnest(b.m_count, b.m_nulls, b.m_min, b.m_max, b.m_sum, b.m_t0, b.m_n0, b.m_v0,
                b.m_t1, b.m_n1, b.m_v1, b.m_offs[1:60], b.m_offs[2:61]) WITH ORDINALITY
            AS s(n, nulls, lo, hi, s, t0, n0, v0, t1, n1, v1, off, off_end, m)
        WHERE b.source_id = :sid AND b.code = :code AND b.hour >= :span_lo AND b.hour < :hi
            AND cardinality(b.m_offs) = 61 AND s.n + s.nulls > 0
            AND h.us + s.m * 60000000 > :lo_us AND h.us + (s.m - 1) * 60000000 < :hi_us
    ), whole AS MATERIALIZED (
        SELECT m.*, m.m_us >= :lo_us AND m.m_us + 60000000 <= :hi_us
            AND (m.m_us - :base) / :width = (m.m_us + 59999999 - :base) / :width AS whole
        FROM mins m
    ), readings AS (
        SELECT p.time AS t, p.value_num AS v FROM points p
        WHERE p.source_id = :sid AND p.code = :code AND p.time >= :lo AND p.time < :hi
            AND p.value_text IS NULL
        UNION ALL
        SELECT u.t, u.v FROM point_blocks b
        CROSS JOIN LATERAL unnest(b.times, b.nums, b.texts) AS u(t, v, x)
        WHERE b.source_id = :sid AND b.code = :code AND b.hour >= :span_lo AND b.hour < :hi
            AND COALESCE(cardinality(b.m_offs), 0) <> 61 AND u.x IS NULL AND u.t >= :lo AND u.t < :hi
        UNION ALL
        SELECT u.t, u.v FROM whole w JOIN point_blocks b ON b.source_id = :sid AND b.code = :code
            AND b.hour = w.hour AND b.hour >= :span_lo AND b.hour < :hi
        CROSS JOIN LATERAL unnest(b.times[w.off:w.off_end - 1], b.nums[w.off:w.off_end - 1],
            b.texts[w.off:w.off_end - 1]) AS u(t, v, x)
        WHERE NOT w.whole AND u.x IS NULL AND u.t >= :lo AND u.t < :hi
    ), parts AS MATERIALIZED (
        SELECT (w.m_us - :base) / :width AS k, w.n::int8 AS n, w.nulls::int8 AS nulls, w.lo, w.hi, w.s,
            w.t0, w.n0::int8 AS n0, w.v0, w.t1, w.n1::int8 AS n1, w.v1
        FROM whole w WHERE w.whole
        UNION ALL
        SELECT ((EXTRACT(EPOCH FROM r.t) * 1000000)::int8 - :base) / :width, (r.v IS NOT NULL)::int4::int8,
            (r.v IS NULL)::int4::int8, r.v, r.v, r.v, CASE WHEN r.v IS NOT NULL THEN r.t END,
            (r.v IS NOT NULL)::int4::int8, r.v, CASE WHEN r.v IS NOT NULL THEN r.t END,
            (r.v IS NOT NULL)::int4::int8, r.v
        FROM readings r
    ), agg AS (
        SELECT k, sum(n)::int8 AS n, sum(nulls)::int8 AS nulls, min(lo) AS lo, max(hi) AS hi, sum(s) AS s,
            min(t0) AS t0, max(t1) AS t1
        FROM parts GROUP BY k
    ), ends AS (
        SELECT a.k, sum(p.n0) FILTER (WHERE p.t0 = a.t0) AS nv0, min(p.v0) FILTER (WHERE p.t0 = a.t0) AS v0,
            sum(p.n1) FILTER (WHERE p.t1 = a.t1) AS nv1, min(p.v1) FILTER (WHERE p.t1 = a.t1) AS v1
        FROM agg a JOIN parts p ON p.k = a.k GROUP BY a.k
    )
    SELECT a.k, a.n, a.nulls, a.lo, a.hi, CASE WHEN a.n > 0 THEN a.s / a.n::float8 END AS mean,
        CASE WHEN e.nv0 = 1 THEN e.v0 ELSE
            (SELECT f.value_num FROM points_all f
                    JOIN frames fa ON fa.source_id = f.source_id AND fa.frame_key = f.frame_key
                        AND fa.frame_time = f.time
                WHERE f.source_id = :sid AND f.code = :code AND f.time = a.t0 AND f.value_num IS NOT NULL
                    AND f.span_start > a.t0 - INTERVAL '1 hour' AND f.span_start <= a.t0
                ORDER BY fa.received_at, f.frame_key, f.idx LIMIT 1) END AS first_value,
        CASE WHEN e.nv1 = 1 THEN e.v1 ELSE
            (SELECT l.value_num FROM points_all l
                    JOIN frames fz ON fz.source_id = l.source_id AND fz.frame_key = l.frame_key
                        AND fz.frame_time = l.time
                WHERE l.source_id = :sid AND l.code = :code AND l.time = a.t1 AND l.value_num IS NOT NULL
                    AND l.span_start > a.t1 - INTERVAL '1 hour' AND l.span_start <= a.t1
                ORDER BY fz.received_at DESC, l.frame_key DESC, l.idx DESC LIMIT 1) END AS last_value
    FROM agg a JOIN ends e ON e.k = a.k
    ORDER BY a.k
"""


def _grouped_statement() -> TextualSelect:
    """PostgreSQL: the range's points in one pass (see :data:`_GROUPED_SQL`)."""
    return (
        text(_GROUPED_SQL)
        .bindparams(
            bindparam("lo", type_=UTCDateTime()),
            bindparam("hi", type_=UTCDateTime()),
            bindparam("span_lo", type_=UTCDateTime()),
            bindparam("base", type_=BigInteger()),
            bindparam("width", type_=BigInteger()),
            bindparam("lo_us", type_=BigInteger()),
            bindparam("hi_us", type_=BigInteger()),
            bindparam("sid", type_=Integer()),
        )
        .columns(**_TYPES)
    )


def _bound(value: TimeBound, name: str) -> datetime | None:
    try:
        return parse_time(value, name)
    except OverflowError:
        # An offset that moves year 1 or 9999 out of what a datetime holds.
        raise UsageError(f"{name}={value!r} is outside the years 1 to 9999 in UTC") from None


def _check_points(points: int) -> int:
    if isinstance(points, bool) or not isinstance(points, int):
        raise UsageError(f"points must be an integer, not {type(points).__name__}")
    if not 1 <= points <= MAX_POINTS:
        raise UsageError(f"points must be between 1 and {MAX_POINTS}, got {points}")
    return points


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


async def downsample(
    conn: AsyncConnection,
    source: str,
    codes: str | Iterable[str] | None = None,
    start: TimeBound = None,
    end: TimeBound = None,
    points: int = DEFAULT_POINTS,
) -> Series | None:
    """``points`` buckets of ``[start, end)`` per code of ``source``, aggregated by the database.

    ``codes`` mixes 4-digit codes and mnemonics (None: every code stored for the source);
    ``start`` (inclusive) and ``end`` (exclusive) are datetimes (naive = UTC) or ISO strings, and
    default to the source's first and last stored time. The bucket width is
    ``ceil((end - start) / points)`` microseconds. Returns None when the source is unknown. Raises
    :class:`~witskit.errors.UsageError` for a bad argument (``end`` not after ``start``, ``points``
    outside 1..:data:`MAX_POINTS`, more than :data:`MAX_CODES` codes, an unknown mnemonic) before
    it runs any query. Database errors are the caller's to translate (:meth:`Store.series
    <witskit.storage.store.Store.series>` does).
    """
    if not isinstance(source, str):
        raise UsageError(f"source must be a string, not {type(source).__name__}")
    _check_points(points)
    wanted = resolve_codes(codes) if codes is not None else None
    if wanted is not None and len(wanted) > MAX_CODES:
        raise UsageError(f"at most {MAX_CODES} codes per series request, got {len(wanted)}")
    lo = _bound(start, "start")
    hi = _bound(end, "end")
    if lo is not None and hi is not None and hi <= lo:
        raise UsageError(f"end ({hi.isoformat()}) must be after start ({lo.isoformat()})")

    row = (
        await conn.execute(
            select(sources.c.id, sources.c.first_time, sources.c.last_time).where(sources.c.name == source)
        )
    ).first()
    if row is None:
        return None
    sid, first_time, last_time = int(row[0]), row[1], row[2]
    if wanted is None:
        wanted = [str(c) for c in (await conn.execute(distinct_codes(sid, conn.dialect.name))).scalars()]
    if lo is None:
        lo = first_time
    if hi is None and last_time is not None:
        hi = last_time + _ONE_US
    if lo is None or hi is None or hi <= lo:
        # Nothing stored, or a defaulted bound on the wrong side of the other: nothing to bucket.
        return Series(source, lo, hi, 0, 0, {code: CodeSeries.empty(code) for code in wanted})

    lo_us, hi_us = to_micros(lo), to_micros(hi)
    width = -(-(hi_us - lo_us) // points)
    buckets = -(-(hi_us - lo_us) // width)
    out = {code: CodeSeries.empty(code) for code in wanted}
    result = Series(source, lo, hi, width, buckets, out)
    if first_time is None or last_time is None:
        return result
    # Only where something is stored: the query's bounds (and the anchor) are real data times.
    q_lo_us = max(lo_us, to_micros(first_time))
    q_hi_us = min(hi_us, to_micros(last_time) + 1)
    if q_lo_us >= q_hi_us:
        return result
    dialect = conn.dialect.name
    params: dict[str, Any] = {
        "sid": sid,
        "width": width,
        "lo": from_micros(q_lo_us),
        "hi": from_micros(q_hi_us),
    }
    if dialect == "postgresql":
        stmt = _grouped_statement()
        params.update(
            base=lo_us, span_lo=from_micros(q_lo_us - q_lo_us % _HOUR_US), lo_us=q_lo_us, hi_us=q_hi_us
        )
        await conn.exec_driver_sql("SET LOCAL jit = off")
        await conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    else:
        stmt = _group_statement(dialect)
        params.update(anchor=from_micros(q_lo_us), offset=q_lo_us - lo_us)
    for code in wanted:
        rows = (await conn.execute(stmt, {**params, "code": code})).all()
        out[code] = _collect(code, rows, lo_us, width)
    return result


def _collect(code: str, rows: Sequence[Any], lo_us: int, width: int) -> CodeSeries:
    series = CodeSeries.empty(code)
    for k, n, nulls, low, high, mean, first, last in rows:
        series.time.append(lo_us + int(k) * width)
        series.count.append(int(n))
        series.nulls.append(int(nulls))
        series.min.append(_float(low))
        series.max.append(_float(high))
        series.avg.append(_float(mean))
        series.first.append(_float(first))
        series.last.append(_float(last))
    return series
