"""Accounts: users, API keys and the audit log of the secure service.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02

The tables are described in ``witskit.service.accounts``; as in ``0001``, the column types are
spelled out here so this migration keeps creating what it created the day it was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from witskit.storage.migrations._types import MYSQL_TABLE, utc_type

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create users, api_keys and audit_log."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("roles", sa.String(255), nullable=False, server_default=""),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", utc_type(), nullable=False),
        sa.Column("updated_at", utc_type(), nullable=False),
        sa.Column("last_login_at", utc_type(), nullable=True),
        sa.Column("tokens_valid_after", utc_type(), nullable=True),
        sa.UniqueConstraint("username", name="uq_users_username"),
        **MYSQL_TABLE,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("roles", sa.String(255), nullable=False, server_default=""),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("created_at", utc_type(), nullable=False),
        sa.Column("expires_at", utc_type(), nullable=True),
        sa.Column("last_used_at", utc_type(), nullable=True),
        sa.Column("revoked_at", utc_type(), nullable=True),
        sa.UniqueConstraint("key_id", name="uq_api_keys_key_id"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        **MYSQL_TABLE,
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("at", utc_type(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("target", sa.String(255), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        **MYSQL_TABLE,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    """Drop the accounts tables (users, keys and the audit trail with them)."""
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
    op.drop_table("users")
