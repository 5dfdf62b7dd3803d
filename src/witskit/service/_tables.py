"""What the service's own tables share: one ``MetaData`` and the base of the stores over them.

Each kind of record has its module, which defines its table on :data:`metadata` and its store (a
:class:`TableStore` on the shared :class:`~witskit.storage.database.Database`): users and API keys
in :mod:`~witskit.service.accounts`, refresh sessions in :mod:`~witskit.service.sessions`, the
audit log in :mod:`~witskit.service.audit`, the login throttle in :mod:`~witskit.service.throttling`
the connections added through the API in :mod:`~witskit.service.connections`, the alarm rules
and webhooks added through the API in :mod:`~witskit.service.alarm_settings`, and the rigs' stored
states in :mod:`~witskit.service.analytics`.
:data:`witskit.service.accounts.accounts_metadata` is this ``MetaData`` once all of them are
imported; the Alembic revisions ``0002``, ``0003`` and ``0006`` create the tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, MetaData, Select

from witskit.storage.database import Database

__all__ = ["TableStore", "clip", "metadata", "utcnow", "where_given"]

_S = TypeVar("_S", bound=Select[Any])

metadata = MetaData()


def utcnow() -> datetime:
    """Now, in UTC (the tables store UTC)."""
    return datetime.now(UTC)


def clip(text: str | None, width: int) -> str | None:
    """``text`` cut to the width of its column; None for no text or an empty one."""
    return text[:width] if text else None


def where_given(stmt: _S, *equal: tuple[ColumnElement[Any], Any]) -> _S:
    """``stmt`` narrowed to the rows whose column equals the value, for each (column, value) pair
    whose value is not None (a filter left out of a list)."""
    for column, value in equal:
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


class TableStore:
    """Async access to some of the service's tables, on a database the store has migrated.

    Errors are raised as :class:`~witskit.storage.errors.StorageError`, the URL sanitized.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def database(self) -> Database:
        """The database handle the store works on (other stores of the service may share it)."""
        return self._db
