"""Refresh sessions: one ``refresh_sessions`` row per refresh token issued (Alembic revision ``0003``).

A refresh token is accepted only while its row (by the token's ``jti``) is neither used, revoked
nor expired. Rotation marks it used and records its successor in the same ``family``; a whole
family is revoked at logout, on reuse of a used token, and (with every family of the user) when the
user is disabled or changes password or roles (:meth:`AccountStore.update_user
<witskit.service.accounts.AccountStore.update_user>`, with :func:`revoke_user_sessions`). The
policy is :class:`~witskit.service.identity.Identity`'s; this module keeps the rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Integer, String, Table, delete, insert, select, update
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from witskit.service._tables import TableStore, clip, metadata, utcnow, where_given
from witskit.storage.schema import UTCDateTime

__all__ = ["RefreshSessionRecord", "SessionStore", "refresh_sessions", "revoke_user_sessions"]

refresh_sessions = Table(
    "refresh_sessions",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("family", String(64), nullable=False, index=True),
    Column("user_id", Integer, nullable=False, index=True),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("client", String(64), nullable=True),
)


@dataclass(frozen=True, slots=True)
class RefreshSessionRecord:
    """One refresh token issued: its ``jti``, its ``family`` (one login and every rotation of it),
    whose it is, when it was issued and expires, and whether it was used (rotated) or revoked."""

    jti: str
    family: str
    user_id: int
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None
    client: str | None = None


def _row(session: RefreshSessionRecord) -> dict[str, Any]:
    return {**dataclasses.asdict(session), "client": clip(session.client, 64)}


def _revoke(which: ColumnElement[bool], now: datetime) -> Update:
    return (
        update(refresh_sessions).where(which, refresh_sessions.c.revoked_at.is_(None)).values(revoked_at=now)
    )


def revoke_user_sessions(user_id: Any, now: datetime) -> Update:
    """The statement that revokes every session of a user not revoked yet (``user_id``: a value or
    a scalar subquery), for the transaction that changes the user."""
    return _revoke(refresh_sessions.c.user_id == user_id, now)


class SessionStore(TableStore):
    """The ``refresh_sessions`` table."""

    async def add_refresh_session(self, session: RefreshSessionRecord) -> None:
        """Record a refresh token issued at a login."""
        async with self._db.write("record a session in") as conn:
            await conn.execute(insert(refresh_sessions).values(**_row(session)))

    async def get_refresh_session(self, jti: str) -> RefreshSessionRecord | None:
        """The session of a refresh token, or None."""
        async with self._db.read("read a session from") as conn:
            row = (await conn.execute(select(refresh_sessions).where(refresh_sessions.c.jti == jti))).first()
        return None if row is None else RefreshSessionRecord(**row._mapping)

    async def list_refresh_sessions(
        self, *, user_id: int | None = None, family: str | None = None
    ) -> list[RefreshSessionRecord]:
        """Sessions (of a user, of a family), oldest first."""
        stmt = where_given(
            select(refresh_sessions).order_by(refresh_sessions.c.issued_at, refresh_sessions.c.jti),
            (refresh_sessions.c.user_id, user_id),
            (refresh_sessions.c.family, family),
        )
        async with self._db.read("read the sessions of") as conn:
            rows = (await conn.execute(stmt)).all()
        return [RefreshSessionRecord(**r._mapping) for r in rows]

    async def rotate_refresh_session(self, jti: str, successor: RefreshSessionRecord) -> bool:
        """Mark ``jti`` used and record ``successor``, in one transaction; False (and nothing
        written) unless ``jti`` was still unused, unrevoked and unexpired.

        The check and the mark are one ``UPDATE ... WHERE used_at IS NULL``: of two rotations of the
        same token, however concurrent, exactly one gets the row.
        """
        now = utcnow()
        async with self._db.write("rotate a session in") as conn:
            result = await conn.execute(
                update(refresh_sessions)
                .where(
                    refresh_sessions.c.jti == jti,
                    refresh_sessions.c.used_at.is_(None),
                    refresh_sessions.c.revoked_at.is_(None),
                    refresh_sessions.c.expires_at > now,
                )
                .values(used_at=now)
            )
            if result.rowcount != 1:
                return False
            await conn.execute(insert(refresh_sessions).values(**_row(successor)))
        return True

    async def revoke_refresh_family(self, family: str) -> int:
        """Revoke every session of a family not revoked yet; how many were."""
        async with self._db.write("revoke sessions in") as conn:
            result = await conn.execute(_revoke(refresh_sessions.c.family == family, utcnow()))
        return int(result.rowcount)

    async def prune_refresh_sessions(self, now: datetime | None = None) -> int:
        """Delete the sessions whose token has expired (used, revoked or not); how many.

        A used or revoked row is kept until then: a stolen token presented again before it expires
        must still be recognised as reused.
        """
        async with self._db.write("prune the sessions of") as conn:
            result = await conn.execute(
                delete(refresh_sessions).where(refresh_sessions.c.expires_at <= (now or utcnow()))
            )
        return int(result.rowcount)
