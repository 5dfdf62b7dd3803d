"""PostgreSQL: closed hours of points move to one row per (source, code, hour) holding arrays.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

Row-per-point storage costs ~140 bytes a point on PostgreSQL (a 24-byte tuple header, 4 bytes of
line pointer and ~40 bytes of data per row, then as much again in the primary key). Hourly blocks
of one channel (``point_blocks``: arrays of times, frame keys, line indexes, numbers and texts, with
TOAST compression) cost ~15, and keep the frame key of every value (traceability, idempotency).

``points`` stays what writes go to (unchanged: COPY, idempotent through the frames key); closed
hours are compacted into ``point_blocks`` later (``witskit.storage.blocks``). Readers use the view
``points_all`` (both, as rows) and ``point_keys`` (the (source, code) pairs of both).
``point_blocks`` is partitioned like ``points`` (month, then source), so retention still drops
whole leaves. This migration creates the table, its leaves for every leaf of ``points``, the views,
and compacts every row older than the current hour; the downgrade puts the blocks' points back
as rows. SQLite and MariaDB/MySQL are unchanged.

The DDL is spelled out here, not imported, so this migration keeps doing what it did when written.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VIEWS = (
    "CREATE VIEW points_all AS "
    "SELECT p.frame_key, p.time, p.value_num, p.source_id, p.idx, p.code, p.value_text, "
    "p.time AS span_start FROM points p "
    "UNION ALL "
    "SELECT u.frame_key, u.time, u.value_num, b.source_id, u.idx, b.code, u.value_text, "
    "b.hour AS span_start FROM point_blocks b "
    "CROSS JOIN LATERAL unnest(b.frame_keys, b.times, b.nums, b.idxs, b.texts) "
    "AS u(frame_key, time, value_num, idx, value_text)",
    "CREATE VIEW point_keys AS SELECT source_id, code FROM points "
    "UNION ALL SELECT source_id, code FROM point_blocks",
)


def upgrade() -> None:
    """Create point_blocks (leaves as points has), the views, and compact the closed hours."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        'CREATE TABLE point_blocks (source_id integer NOT NULL, code char(4) COLLATE "C" NOT NULL, '
        "hour timestamptz NOT NULL, times timestamptz[] NOT NULL, frame_keys bigint[] NOT NULL, "
        "idxs smallint[] NOT NULL, nums double precision[] NOT NULL, texts text[], "
        "CONSTRAINT point_blocks_pkey PRIMARY KEY (source_id, code, hour)) PARTITION BY RANGE (hour)"
    )
    bind = op.get_bind()
    months = bind.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'points'::regclass ORDER BY 1"
        )
    ).all()
    for name, bound in months:
        month = "point_blocks" + str(name)[len("points") :]
        op.execute(f"CREATE TABLE {month} PARTITION OF point_blocks {bound} PARTITION BY LIST (source_id)")
        leaves = bind.execute(
            sa.text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:m) ORDER BY 1"
            ),
            {"m": str(name)},
        ).all()
        for leaf, leaf_bound in leaves:
            block_leaf = "point_blocks" + str(leaf)[len("points") :]
            op.execute(f"CREATE TABLE {block_leaf} PARTITION OF {month} {leaf_bound}")
    for view in _VIEWS:
        op.execute(view)
    cutoff = "date_trunc('hour', now(), 'UTC')"
    order = "ORDER BY time, frame_key, idx"
    op.execute(
        "INSERT INTO point_blocks (source_id, code, hour, times, frame_keys, idxs, nums, texts) "  # noqa: S608
        f"SELECT source_id, code, date_trunc('hour', time, 'UTC'), array_agg(time {order}), "
        f"array_agg(frame_key {order}), array_agg(idx {order}), array_agg(value_num {order}), "
        f"CASE WHEN bool_or(value_text IS NOT NULL) THEN array_agg(value_text {order}) END "
        f"FROM points WHERE time < {cutoff} GROUP BY 1, 2, 3"
    )
    op.execute(
        "CREATE TEMP TABLE r0009_open_hour ON COMMIT DROP AS "  # noqa: S608
        f"SELECT * FROM points WHERE time >= {cutoff}"
    )
    op.execute("TRUNCATE points")
    op.execute("INSERT INTO points SELECT * FROM r0009_open_hour")


def downgrade() -> None:
    """Every block's points back as rows of points; the views and point_blocks go."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "INSERT INTO points (frame_key, time, value_num, source_id, idx, code, value_text) "
        "SELECT u.frame_key, u.time, u.value_num, b.source_id, u.idx, b.code, u.value_text "
        "FROM point_blocks b CROSS JOIN LATERAL unnest(b.frame_keys, b.times, b.nums, b.idxs, b.texts) "
        "AS u(frame_key, time, value_num, idx, value_text) ORDER BY b.source_id, b.code, u.time"
    )
    op.execute("DROP VIEW point_keys")
    op.execute("DROP VIEW points_all")
    op.execute("DROP TABLE point_blocks")
