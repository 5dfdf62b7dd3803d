"""The alarm rules and webhooks added through the API, kept in the database (``alarm_settings``).

Each row is one rule or one webhook: its kind, its name and its definition as JSON, exactly as the
API accepted it, so that ``witskit run`` validates and applies it again at the next start. The
table is created by revision ``0007``; :class:`AlarmSettingStore` is one of the stores
:class:`~witskit.service.accounts.AccountStore` joins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Column, String, Table, Text, insert, select

from witskit.errors import UsageError
from witskit.service._tables import TableStore, clip, metadata, utcnow
from witskit.storage.schema import UTCDateTime

__all__ = ["RULE", "WEBHOOK", "AlarmSettingStore", "StoredAlarmSetting", "alarm_settings"]

#: The kinds of row.
RULE: Final = "rule"
WEBHOOK: Final = "webhook"
#: The longest name of a rule or webhook kept here (a rule name is at most 100 characters too).
NAME_MAX: Final = 100

alarm_settings = Table(
    "alarm_settings",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(NAME_MAX), primary_key=True),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(255), nullable=True),
)


@dataclass(frozen=True, slots=True)
class StoredAlarmSetting:
    """A rule or webhook added through the API."""

    kind: str
    name: str
    body: dict[str, Any] = field(repr=False)  # a webhook's holds its signing key
    created_at: datetime
    created_by: str | None


class AlarmSettingStore(TableStore):
    """The ``alarm_settings`` table."""

    async def list_alarm_settings(self, kind: str) -> list[StoredAlarmSetting]:
        """Every kept rule (or webhook), oldest first."""
        t = alarm_settings
        async with self._db.read("list the alarm settings of") as conn:
            rows = (
                await conn.execute(select(t).where(t.c.kind == kind).order_by(t.c.created_at, t.c.name))
            ).all()
        return [
            StoredAlarmSetting(
                kind=r.kind,
                name=r.name,
                body=json.loads(r.body),
                created_at=r.created_at,
                created_by=r.created_by,
            )
            for r in rows
        ]

    async def add_alarm_setting(
        self, kind: str, name: str, body: dict[str, Any], *, created_by: str | None = None
    ) -> None:
        """Keep a rule or webhook; :class:`UsageError` when one of that kind has the name already."""
        t = alarm_settings
        async with self._db.write("add an alarm setting to") as conn:
            taken = (await conn.execute(select(t.c.name).where(t.c.kind == kind, t.c.name == name))).first()
            if taken is not None:
                raise UsageError(f"a {kind} named {name!r} already exists")
            await conn.execute(
                insert(t).values(
                    kind=kind,
                    name=name,
                    body=json.dumps(body, separators=(",", ":")),
                    created_at=utcnow(),
                    created_by=clip(created_by, 255),
                )
            )

    async def remove_alarm_setting(self, kind: str, name: str) -> bool:
        """Forget a rule or webhook; False when none of that kind has the name."""
        t = alarm_settings
        async with self._db.write("remove an alarm setting from") as conn:
            result = await conn.execute(t.delete().where(t.c.kind == kind, t.c.name == name))
        return bool(result.rowcount)
