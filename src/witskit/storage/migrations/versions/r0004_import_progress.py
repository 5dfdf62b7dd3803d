"""Import progress: how far ``witskit import`` got in each file, so an interrupted run resumes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

One row per (source name, file path) imported: the file's identity when it was read (size,
modification time, a hash of its first bytes) and the byte offset just after the last frame whose
batch was committed. The table is described in ``witskit.storage.schema``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from witskit.storage.migrations._types import MYSQL_TABLE, utc_type

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create import_progress."""
    op.create_table(
        "import_progress",
        sa.Column("file_key", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("head_len", sa.Integer(), nullable=False),
        sa.Column("head_sha256", sa.String(64), nullable=False),
        sa.Column("byte_offset", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("frames", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", utc_type(), nullable=False),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    """Drop import_progress (the next import of a file reads it from the start)."""
    op.drop_table("import_progress")
