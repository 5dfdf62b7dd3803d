"""PostgreSQL: points and frames become partitioned by month (UTC), then by source.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Layout and reasons: ``witskit.storage.partitions`` and ``docs/history.md``. On PostgreSQL the
existing tables are renamed aside, the partitioned tables are created with one leaf per (month,
source id) that holds rows, every row is copied (``INSERT ... SELECT``, in the migration's one
transaction: a failure leaves the database at 0005, untouched), and the old tables are dropped.
The frames key becomes (source_id, frame_key, frame_time): a partitioned table's unique key must
hold its partition column, and a frame's key already covers its time, so a replayed frame still
meets its stored copy in the same leaf.

SQLite and MariaDB/MySQL are unchanged (see ``docs/history.md``: they keep one table each and
retention deletes by key range there).

The DDL is spelled out here, not imported from ``partitions.py``, so this migration keeps doing
what it did the day it was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COPY_POINTS = (
    "INSERT INTO points (frame_key, time, value_num, source_id, idx, code, value_text) "
    "SELECT frame_key, time, value_num, source_id, idx, code, value_text FROM {table}"
)
_COPY_FRAMES = (
    "INSERT INTO frames (source_id, frame_key, received_at, frame_time, raw, errors) "
    "SELECT source_id, frame_key, received_at, frame_time, raw, errors FROM {table}"
)


def _create_partitioned() -> None:
    op.execute(
        "CREATE TABLE points (frame_key bigint NOT NULL, time timestamptz NOT NULL, "
        "value_num double precision, source_id integer NOT NULL, idx smallint NOT NULL, "
        'code char(4) COLLATE "C" NOT NULL, value_text text, '
        "CONSTRAINT points_pkey PRIMARY KEY (source_id, code, time, frame_key, idx)) "
        "PARTITION BY RANGE (time)"
    )
    op.execute(
        "CREATE TABLE frames (source_id integer NOT NULL, frame_key bigint NOT NULL, "
        "received_at timestamptz NOT NULL, frame_time timestamptz NOT NULL, raw bytea NOT NULL, "
        "errors text, CONSTRAINT frames_pkey PRIMARY KEY (source_id, frame_key, frame_time)) "
        "PARTITION BY RANGE (frame_time)"
    )
    op.execute("CREATE INDEX ix_frames_source_id_frame_time ON frames (source_id, frame_time)")


def _month_bounds(month: datetime) -> tuple[str, str]:
    nxt = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    return f"{month:%Y-%m-%d} 00:00:00+00", f"{nxt:%Y-%m-%d} 00:00:00+00"


def _create_leaves(pairs: Sequence[tuple[int, datetime]]) -> None:
    months: set[datetime] = set()
    for sid, month in sorted(pairs):
        lo, hi = _month_bounds(month)
        tag = f"p{month:%Y%m}"
        for table in ("points", "frames"):
            if month not in months:
                op.execute(
                    f"CREATE TABLE {table}_{tag} PARTITION OF {table} "
                    f"FOR VALUES FROM ('{lo}') TO ('{hi}') PARTITION BY LIST (source_id)"
                )
            leaf = f"{table}_{tag}_s{int(sid)}"
            op.execute(f"CREATE TABLE {leaf} PARTITION OF {table}_{tag} FOR VALUES IN ({int(sid)})")
        months.add(month)


def upgrade() -> None:
    """Partition points and frames on PostgreSQL, keeping every row."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE points RENAME TO points_r0005")
    op.execute("ALTER INDEX points_pkey RENAME TO points_r0005_pkey")
    op.execute("ALTER TABLE frames RENAME TO frames_r0005")
    op.execute("ALTER INDEX frames_pkey RENAME TO frames_r0005_pkey")
    op.execute("ALTER INDEX ix_frames_source_id_frame_time RENAME TO ix_frames_r0005_source_id_frame_time")
    _create_partitioned()
    rows = op.get_bind().execute(
        sa.text(
            "SELECT DISTINCT source_id, date_trunc('month', time, 'UTC') FROM points_r0005 "
            "UNION SELECT DISTINCT source_id, date_trunc('month', frame_time, 'UTC') FROM frames_r0005"
        )
    )
    _create_leaves([(int(sid), m.astimezone(UTC)) for sid, m in rows])
    # Frames first, in time order, then points sorted as their key: each leaf's index is built in
    # order instead of by random inserts.
    op.execute(_COPY_FRAMES.format(table="frames_r0005") + " ORDER BY frame_time")
    op.execute(_COPY_POINTS.format(table="points_r0005") + " ORDER BY source_id, code, time, frame_key, idx")
    op.execute("DROP TABLE points_r0005")
    op.execute("DROP TABLE frames_r0005")


def downgrade() -> None:
    """Back to one table each on PostgreSQL, keeping every row still in the hot store."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE points RENAME TO points_r0006")
    op.execute("ALTER INDEX points_pkey RENAME TO points_r0006_pkey")
    op.execute("ALTER TABLE frames RENAME TO frames_r0006")
    op.execute("ALTER INDEX frames_pkey RENAME TO frames_r0006_pkey")
    op.execute("ALTER INDEX ix_frames_source_id_frame_time RENAME TO ix_frames_r0006_source_id_frame_time")
    op.execute(
        "CREATE TABLE points (frame_key bigint NOT NULL, time timestamptz NOT NULL, "
        "value_num double precision, source_id integer NOT NULL, idx smallint NOT NULL, "
        'code char(4) COLLATE "C" NOT NULL, value_text text, '
        "CONSTRAINT points_pkey PRIMARY KEY (source_id, code, time, frame_key, idx))"
    )
    op.execute(
        "CREATE TABLE frames (source_id integer NOT NULL, frame_key bigint NOT NULL, "
        "received_at timestamptz NOT NULL, frame_time timestamptz NOT NULL, raw bytea NOT NULL, "
        "errors text, CONSTRAINT frames_pkey PRIMARY KEY (source_id, frame_key))"
    )
    op.execute("CREATE INDEX ix_frames_source_id_frame_time ON frames (source_id, frame_time)")
    op.execute(_COPY_FRAMES.format(table="frames_r0006"))
    op.execute(_COPY_POINTS.format(table="points_r0006"))
    op.execute("DROP TABLE points_r0006 CASCADE")
    op.execute("DROP TABLE frames_r0006 CASCADE")
