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
a block is read point by point, as before.

The upgrade adds the columns and fills them for every stored block; the downgrade drops them.
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
            || (cardinality(b.times) + 1) END
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
                        1 + floor((EXTRACT(EPOCH FROM u.t) - EXTRACT(EPOCH FROM b.hour)) / 60)::int4 AS m
                    FROM unnest(b.times, b.nums, b.texts) WITH ORDINALITY AS u(t, v, x, i)
                ) q
            ) p GROUP BY p.m
        ) a ON a.m = s.m
    ) g
)"""


def upgrade() -> None:
    """Add the summary columns to point_blocks (every leaf) and fill them for every block."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE point_blocks " + ", ".join(f"ADD COLUMN {c} {t}" for c, t in _COLUMNS))
    op.execute("SET LOCAL work_mem = '64MB'")
    op.execute(_FILL)


def downgrade() -> None:
    """Drop the summary columns."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE point_blocks " + ", ".join(f"DROP COLUMN {c}" for c, _ in _COLUMNS))
