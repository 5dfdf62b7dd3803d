"""Alarm events: every firing and clearing of an alarm rule (issue 15).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

One row per event, keyed by the event's id (a hash of source, rule, state and frame time: a replay
stores nothing new). The table is described in ``witskit.storage.schema``; the store API is
``witskit.storage.alarm_events``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from witskit.storage.migrations._types import MYSQL_TABLE, utc_type

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create alarm_events and its two indexes."""
    op.create_table(
        "alarm_events",
        sa.Column("event_id", sa.String(32), primary_key=True),
        sa.Column("time", utc_type(), nullable=False),
        sa.Column("stored_at", utc_type(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("rule_type", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("code", sa.String(8), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("acknowledged_at", utc_type(), nullable=True),
        sa.Column("acknowledged_by", sa.String(255), nullable=True),
        **MYSQL_TABLE,
    )
    op.create_index("ix_alarm_events_source_time", "alarm_events", ["source", "time"])
    op.create_index("ix_alarm_events_time", "alarm_events", ["time"])


def downgrade() -> None:
    """Drop alarm_events (the alarm history is lost; the data points are not touched)."""
    op.drop_index("ix_alarm_events_time", table_name="alarm_events")
    op.drop_index("ix_alarm_events_source_time", table_name="alarm_events")
    op.drop_table("alarm_events")
