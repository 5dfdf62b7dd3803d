"""PostgreSQL: per-minute summaries of every hourly block, so a long series reads summaries.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

A series of a month of one channel into 600 buckets used to read every point of ~720 blocks (2.6
million values through the executor). Each block now also holds, per minute of its hour (60 slots),
the numeric count, null count, min, max and sum of its non-text values, the earliest and latest
numeric time with how many numeric values share it and the smallest of them, and (61 slots) where
each minute starts in its arrays. A bucket then reads the summaries of the minutes it covers whole
and the points of the minutes its edges cut (one slice of the arrays each). The summaries are NULL
for a block whose arrays are not in minute order (a bulk write appended earlier points to it): such
a block is read point by point, as before (its ``m_offs`` is empty; NULL means not summarized yet:
a bulk write leaves its blocks to the next compaction, found through the partial index
``point_blocks_pending``).

The upgrade adds the columns and the index and fills the summaries of every stored block; the
downgrade drops them.
SQLite and MariaDB/MySQL are unchanged. The SQL is spelled out here, not imported, so this migration
keeps doing what it did when written.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("m_count", "integer[]"),
    ("m_nulls", "integer[]"),
    ("m_min", "double precision[]"),
    ("m_max", "double precision[]"),
    ("m_sum", "double precision[]"),
    ("m_t0", "timestamptz[]"),
    ("m_n0", "integer[]"),
    ("m_v0", "double precision[]"),
    ("m_t1", "timestamptz[]"),
    ("m_n1", "integer[]"),
    ("m_v1", "double precision[]"),
    ("m_offs", "integer[]"),
)

_FILL = """UPDATE point_blocks b SET
    (m_count, m_nulls, m_min, m_max, m_sum, m_t0, m_n0, m_v0, m_t1, m_n1, m_v1, m_offs) = (
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
            || (cardinality(b.times) + 1) ELSE '{}'::int4[] END
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
                        date_part('epoch', u.t - b.hour) AS tu, count(u.v)::float8 AS nv,
                        count(*) FILTER (WHERE u.v IS NULL AND u.x IS NULL) AS nn, min(u.v) AS lo,
                        max(u.v) AS hi, sum(u.v) AS s, count(*) AS rows, min(u.i) AS i0, max(u.i) AS i1
                    FROM unnest(b.times, b.nums, b.texts) WITH ORDINALITY AS u(t, v, x, i)
                    GROUP BY u.t
                ) a GROUP BY a.m
            ) g ON g.m = s.m
        ) y
    ) z
)"""


def upgrade() -> None:
    """Add the summary columns to point_blocks (every leaf) and fill them for every block."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE point_blocks " + ", ".join(f"ADD COLUMN {c} {t}" for c, t in _COLUMNS))
    op.execute("CREATE INDEX point_blocks_pending ON point_blocks (hour) WHERE m_offs IS NULL")
    op.execute("SET LOCAL work_mem = '64MB'")
    op.execute(_FILL)


def downgrade() -> None:
    """Drop the summary columns."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX point_blocks_pending")
    op.execute("ALTER TABLE point_blocks " + ", ".join(f"DROP COLUMN {c}" for c, _ in _COLUMNS))
