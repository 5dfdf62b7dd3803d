"""PostgreSQL: the arrays of ``point_blocks`` are TOAST-compressed with LZ4 instead of pglz.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

A bulk write (``witskit import``) stores its points as hourly blocks, and compressing their arrays
was most of the server's share of the write: pglz compressed 1.8 million points' arrays in ~1.1 s,
LZ4 in ~0.22 s (PostgreSQL 15, the same blocks), which is ~4x less server time per point written;
decompression for reads is faster too. The price is size: ``point_blocks`` TOAST goes from ~15.2 to
~17.3 bytes a point (the whole hot store from ~34 to ~36, against a goal of 60).

``SET COMPRESSION`` on a partitioned table does not reach its existing partitions, so every table
of ``point_blocks``' partition tree is altered; partitions made later copy it
(``witskit.storage.partitions`` creates them ``LIKE`` the parent ``INCLUDING COMPRESSION``). Stored
values keep the compression they were written with (each value records its own; both are read
the same), so the upgrade rewrites nothing. A server built without LZ4 support keeps pglz: the
revision then changes nothing. The downgrade goes back to the server's default. SQLite and
MariaDB/MySQL are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ARRAYS = ("times", "frame_keys", "idxs", "nums", "texts")


def _set_compression(method: str) -> None:
    bind = op.get_bind()
    tables = bind.execute(
        sa.text(
            "SELECT c.relname FROM pg_partition_tree('point_blocks'::regclass) t "
            "JOIN pg_class c ON c.oid = t.relid ORDER BY t.level, c.relname"
        )
    ).all()
    for (name,) in tables:
        columns = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION {method}" for c in _ARRAYS)
        op.execute(f"ALTER TABLE {name} {columns}")


def upgrade() -> None:
    """LZ4 for every table of point_blocks' tree, when the server has it."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    has_lz4 = bind.execute(
        sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    if has_lz4:
        _set_compression("lz4")


def downgrade() -> None:
    """The server's default compression again (values stored meanwhile keep LZ4, and read the same)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    _set_compression("default")
