"""PostgreSQL: no planner statistics for the arrays of ``point_blocks``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

``ANALYZE`` (autovacuum's, after every bulk import) sampled ``point_blocks``' 17 array columns (the
points, their keys and the per-minute summaries) to build statistics that no query uses: every
query finds blocks by source, code and hour, never by an array's contents. A rig-month imported
took 127-133 s of ``ANALYZE`` CPU on a 2-core machine (``bench/bench_history.py --month``), nearly
all of it these columns; with their statistics target at 0 the same ``ANALYZE`` of two imported
days took 0.01 s instead of 4.95 s. The key columns keep their statistics.

Every table of the partition tree is altered (``witskit.storage.partitions`` sets the same on the
partitions it makes later, which ``LIKE`` does not copy). The downgrade puts the server's default
target back. SQLite and MariaDB/MySQL are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The array columns of point_blocks (revisions 0009 and 0011), as they are at this revision (a
#: migration keeps its own list: the live one may change after it).
ARRAYS = (
    "times",
    "frame_keys",
    "idxs",
    "nums",
    "texts",
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


def _set_statistics(target: int) -> None:
    tables = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT c.relname FROM pg_partition_tree('point_blocks'::regclass) t "
                "JOIN pg_class c ON c.oid = t.relid ORDER BY t.level, c.relname"
            )
        )
        .all()
    )
    for (name,) in tables:
        columns = ", ".join(f"ALTER COLUMN {c} SET STATISTICS {int(target)}" for c in ARRAYS)
        op.execute(f"ALTER TABLE ONLY {name} {columns}")


def upgrade() -> None:
    """Statistics target 0 for the arrays, in every table of point_blocks' tree."""
    if op.get_bind().dialect.name == "postgresql":
        _set_statistics(0)


def downgrade() -> None:
    """The server's default statistics target again."""
    if op.get_bind().dialect.name == "postgresql":
        _set_statistics(-1)
