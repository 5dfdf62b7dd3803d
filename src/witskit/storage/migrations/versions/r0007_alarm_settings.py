"""Alarm settings: the alarm rules and webhooks added through the API (issue 15).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

One row per rule or webhook, keyed by kind (``rule`` or ``webhook``) and name, its definition as
JSON text exactly as the API accepted it (a webhook's signing key included: the service needs it
to sign, so it is kept as a connection's password is). ``witskit run`` loads them at start, after
the pipeline file's. The table is described in ``witskit.service.alarm_settings``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from witskit.storage.migrations._types import MYSQL_TABLE, utc_type

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create alarm_settings."""
    op.create_table(
        "alarm_settings",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", utc_type(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    """Drop alarm_settings (the rules and webhooks added through the API are forgotten)."""
    op.drop_table("alarm_settings")
