"""The fleet view: per rig, its last committed frame and its receive-to-commit lag (issue 12).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

One row per rig (source), written by the central workers of a fleet after each commit
(``witskit.storage.fleet_status``) and read by ``witskit serve``'s fleet view.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from witskit.storage.migrations._types import MYSQL_TABLE, utc_type

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create fleet_rigs."""
    op.create_table(
        "fleet_rigs",
        sa.Column("source", sa.String(255), primary_key=True),
        sa.Column("edge", sa.String(64), nullable=False),
        sa.Column("worker", sa.String(255), nullable=False),
        sa.Column("last_received_at", utc_type(), nullable=False),
        sa.Column("last_committed_at", utc_type(), nullable=False),
        sa.Column("lag_seconds", sa.Double(), nullable=False),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    """Drop fleet_rigs (the fleet view starts empty again; no frame is touched)."""
    op.drop_table("fleet_rigs")
