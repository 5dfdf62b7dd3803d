"""Initial schema: sources, frames (raw bytes kept), points (narrow layout).

Revision ID: 0001
Revises:
Create Date: 2026-01-01

The column types are spelled out here rather than imported from ``schema.py``: a migration must
create exactly what it created the day it was written, whatever ``schema.py`` says later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from witskit.storage.migrations._types import MYSQL_TABLE, utc_type

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create sources, frames and points."""
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", utc_type(), nullable=False),
        sa.Column("first_time", utc_type(), nullable=True),
        sa.Column("last_time", utc_type(), nullable=True),
        sa.Column("frame_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("point_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.UniqueConstraint("name", name="uq_sources_name"),
        **MYSQL_TABLE,
    )
    op.create_table(
        "frames",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("frame_key", sa.BigInteger(), nullable=False),
        sa.Column("received_at", utc_type(), nullable=False),
        sa.Column("frame_time", utc_type(), nullable=False),
        sa.Column(
            "raw", sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"), nullable=False
        ),
        sa.Column("errors", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=True),
        sa.PrimaryKeyConstraint("source_id", "frame_key"),
        **MYSQL_TABLE,
    )
    op.create_table(
        "points",
        sa.Column("frame_key", sa.BigInteger(), nullable=False),
        sa.Column("time", utc_type(), nullable=False),
        sa.Column("value_num", sa.Double(), nullable=True),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.SmallInteger(), nullable=False),
        sa.Column(
            "code",
            sa.CHAR(4)
            .with_variant(sa.CHAR(4, collation="C"), "postgresql")
            .with_variant(mysql.CHAR(4, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("source_id", "code", "time", "frame_key", "idx"),
        sqlite_with_rowid=False,
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    """Drop everything (the data with it)."""
    op.drop_table("points")
    op.drop_table("frames")
    op.drop_table("sources")
