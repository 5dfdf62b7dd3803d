"""Service state: refresh-token sessions, connections added at run time, login throttle counters.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

The tables are described in ``witskit.service.accounts``. They move three things the service used to
keep in memory into the database, so that they survive a restart and are shared by every process
serving the same store:

* ``refresh_sessions``: one row per refresh token issued. Rotation marks the old row used; a used
  token presented again revokes its whole family (token theft), and logout revokes the row.
* ``connections``: ingest sources added through the API, restarted with the service.
* ``login_throttle``: failed-login counters per user name and per client address.

It also indexes ``frames`` by (source, frame time), which ``witskit serve`` tails for live frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from witskit.storage.migrations._types import MYSQL_TABLE, utc_type

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create refresh_sessions, connections and login_throttle; index frames by time."""
    op.create_index("ix_frames_source_id_frame_time", "frames", ["source_id", "frame_time"])
    op.create_table(
        "refresh_sessions",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", utc_type(), nullable=False),
        sa.Column("expires_at", utc_type(), nullable=False),
        sa.Column("used_at", utc_type(), nullable=True),
        sa.Column("revoked_at", utc_type(), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        **MYSQL_TABLE,
    )
    op.create_index("ix_refresh_sessions_family", "refresh_sessions", ["family"])
    op.create_index("ix_refresh_sessions_user_id", "refresh_sessions", ["user_id"])
    op.create_table(
        "connections",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", utc_type(), nullable=False),
        sa.Column("updated_at", utc_type(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        **MYSQL_TABLE,
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("window_start", utc_type(), nullable=False),
        sa.Column("locked_until", utc_type(), nullable=True),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    """Drop the service-state tables (sessions end, API-added connections are forgotten)."""
    op.drop_table("login_throttle")
    op.drop_table("connections")
    op.drop_index("ix_refresh_sessions_user_id", table_name="refresh_sessions")
    op.drop_index("ix_refresh_sessions_family", table_name="refresh_sessions")
    op.drop_table("refresh_sessions")
    op.drop_index("ix_frames_source_id_frame_time", table_name="frames")
