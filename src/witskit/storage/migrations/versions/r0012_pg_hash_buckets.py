"""PostgreSQL: a month's sources share 8 hash buckets instead of one leaf per (month, source).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

Revision 0006 gave each (month, source) its own leaf of ``points``, ``frames`` and (0009)
``point_blocks``. At a fleet's size a worker's batch then touched ~2,000 leaves: commits slowed
~100x and ran out of ``max_locks_per_transaction`` (issue 12). From this revision each month level
(still LIST by source) has a DEFAULT partition, HASH-partitioned by source into 8 buckets, which
holds every source without an own leaf; own leaves are kept only for sources with their own
retention, from the month after that retention is set (``witskit.storage.partitions``).

The upgrade gives every month its DEFAULT and buckets, then moves each old (month, source) leaf's
rows into them (detach, ``INSERT ... SELECT`` in key order, drop), all in the migration's one
transaction: a failure leaves the database at 0010, untouched. It needs free disk for a second copy
of the history while it runs. The downgrade puts every source of a DEFAULT back in its own leaf.
SQLite and MariaDB/MySQL are unchanged. The DDL is spelled out here, not imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("points", "frames", "point_blocks")
_BUCKETS = 8
_ORDER = {
    "points": "source_id, code, time, frame_key, idx",
    "frames": "source_id, frame_time, frame_key",
    "point_blocks": "source_id, code, hour",
}


def _children(parent: str) -> list[str]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:p) ORDER BY 1"
        ),
        {"p": parent},
    )
    return [str(r[0]) for r in rows]


def upgrade() -> None:
    """Give every month a hash-bucketed DEFAULT and move each (month, source) leaf into it."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        for month in _children(table):
            default = f"{month}_d"
            op.execute(
                f"CREATE TABLE {default} (LIKE {table} INCLUDING DEFAULTS) PARTITION BY HASH (source_id)"
            )
            for i in range(_BUCKETS):
                op.execute(
                    f"CREATE TABLE {month}_h{i} PARTITION OF {default} "
                    f"FOR VALUES WITH (MODULUS {_BUCKETS}, REMAINDER {i})"
                )
            leaves = _children(month)
            op.execute(f"ALTER TABLE {month} ATTACH PARTITION {default} DEFAULT")
            for leaf in leaves:
                op.execute(f"ALTER TABLE {month} DETACH PARTITION {leaf}")
                op.execute(f"INSERT INTO {month} SELECT * FROM {leaf} ORDER BY {_ORDER[table]}")  # noqa: S608
                op.execute(f"DROP TABLE {leaf}")


def downgrade() -> None:
    """Every source of a month's DEFAULT back in its own (month, source) leaf, in all three tables
    (0009's downgrade puts blocks back as rows: a source's leaf must be there even if it has only
    blocks); the DEFAULT goes."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for level in _children("frames"):
        suffix = level[len("frames") :]
        defaults = {t: f"{t}{suffix}_d" for t in _TABLES if f"{t}{suffix}_d" in _children(f"{t}{suffix}")}
        sids: set[int] = set()
        for table, default in defaults.items():
            op.execute(f"ALTER TABLE {table}{suffix} DETACH PARTITION {default}")
            sids |= {int(r[0]) for r in bind.execute(sa.text(f"SELECT DISTINCT source_id FROM {default}"))}  # noqa: S608
        for table in _TABLES:
            month = f"{table}{suffix}"
            have = set(_children(month))
            for sid in sorted(sids):
                if f"{month}_s{sid}" not in have:
                    op.execute(f"CREATE TABLE {month}_s{sid} PARTITION OF {month} FOR VALUES IN ({sid})")
            if table in defaults:
                op.execute(f"INSERT INTO {month} SELECT * FROM {defaults[table]} ORDER BY {_ORDER[table]}")  # noqa: S608
                op.execute(f"DROP TABLE {defaults[table]}")
