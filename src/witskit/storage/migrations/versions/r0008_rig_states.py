"""Rig states: the live rig state of each source, stored as intervals (issue 15).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

One row per interval of one state of one source: ``witskit run`` classifies each source's record-1
frames as they arrive and writes a row when the state changes (the open interval's end moves on
every few seconds). A rig changes state a few hundred times a day, so a day is a few hundred rows,
not the 86,400 a per-second channel would take. The table is described in
``witskit.service.analytics``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from witskit.storage.migrations._types import MYSQL_TABLE, utc_type

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create rig_states and its index by source and start."""
    op.create_table(
        "rig_states",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("start_time", utc_type(), nullable=False),
        sa.Column("end_time", utc_type(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        **MYSQL_TABLE,
    )
    op.create_index("ix_rig_states_source_start", "rig_states", ["source", "start_time"])


def downgrade() -> None:
    """Drop rig_states (the stored states are lost; they can be classified again from the points)."""
    op.drop_index("ix_rig_states_source_start", table_name="rig_states")
    op.drop_table("rig_states")
