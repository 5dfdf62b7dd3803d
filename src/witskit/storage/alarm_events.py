"""The alarm history: every firing and clearing of an alarm rule, in the SQL store's database.

The alarm engine (``witskit.analytics.alarms``) makes the events; this module keeps them in the
``alarm_events`` table (revision 0005) and reads them back, for the alarm history API and the
dashboard. Writes are idempotent by event id, so a spool replay that fires an alarm again stores
nothing new::

    events = await AlarmEventStore.open("sqlite:///wits.db")  # migrates the schema when needed
    try:
        await events.add([event])  # anything with AlarmEventLike's attributes
        history = await events.history(source="rig-7", limit=50)
        await events.acknowledge(history[0].event_id, by="operator")
    finally:
        await events.aclose()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import insert, select, update

from witskit.storage.database import Database
from witskit.storage.schema import alarm_events

__all__ = ["AlarmEventLike", "AlarmEventStore", "StoredAlarmEvent"]

#: The most events one history call returns: a page of a table, not a dump.
MAX_HISTORY = 10_000


class AlarmEventLike(Protocol):
    """What is stored of an event (``witskit.analytics.alarms.AlarmEvent`` has these)."""

    @property
    def event_id(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def rule_type(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def code(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def unit(self) -> str: ...
    @property
    def message(self) -> str: ...


@dataclass(frozen=True, slots=True)
class StoredAlarmEvent:
    """One row of the alarm history."""

    event_id: str
    rule: str
    rule_type: str
    state: str
    severity: str
    source: str
    time: datetime
    code: str
    value: float | None
    unit: str
    message: str
    stored_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


class AlarmEventStore:
    """Reads and writes the ``alarm_events`` table of one database."""

    def __init__(self, db: Database, *, owned: bool = False) -> None:
        """Use an open :class:`~witskit.storage.database.Database` (closed by :meth:`aclose` if ``owned``)."""
        self.db = db
        self._owned = owned

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, timeout: float = 30.0) -> AlarmEventStore:
        """A store on ``url``, its schema upgraded first (``migrate``) so the table exists."""
        if migrate:
            from witskit.storage.migrations import aupgrade

            await aupgrade(url, timeout=timeout)
        return cls(Database.open(url, pool_size=2, timeout=timeout), owned=True)

    async def add(self, events: Sequence[AlarmEventLike]) -> int:
        """Store events (one transaction); those already stored are skipped. Returns how many were new."""
        if not events:
            return 0
        now = datetime.now(UTC)
        rows: dict[str, dict[str, Any]] = {}
        for e in events:
            rows[e.event_id] = {
                "event_id": e.event_id,
                "time": e.time,
                "stored_at": now,
                "value": e.value,
                "source": _clip(e.source, 255),
                "rule": _clip(e.rule, 255),
                "rule_type": e.rule_type,
                "state": e.state,
                "severity": e.severity,
                "code": e.code,
                "unit": _clip(e.unit, 16),
                "message": e.message,
            }
        async with self.db.write("store alarm events in") as conn:
            found = await conn.execute(
                select(alarm_events.c.event_id).where(alarm_events.c.event_id.in_(list(rows)))
            )
            for (event_id,) in found:
                rows.pop(event_id, None)
            if rows:
                await conn.execute(insert(alarm_events), list(rows.values()))
        return len(rows)

    async def history(
        self,
        *,
        source: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        rule: str | None = None,
        limit: int = 1000,
    ) -> list[StoredAlarmEvent]:
        """Events, newest first, filtered by source, rule and time range (``start`` <= time < ``end``)."""
        t = alarm_events
        query = select(t).order_by(t.c.time.desc(), t.c.event_id).limit(max(1, min(limit, MAX_HISTORY)))
        if source is not None:
            query = query.where(t.c.source == source)
        if rule is not None:
            query = query.where(t.c.rule == rule)
        if start is not None:
            query = query.where(t.c.time >= start)
        if end is not None:
            query = query.where(t.c.time < end)
        async with self.db.read("read the alarm history of") as conn:
            result = await conn.execute(query)
            return [StoredAlarmEvent(**row._mapping) for row in result]

    async def get(self, event_id: str) -> StoredAlarmEvent | None:
        """One event by its id (None when there is none)."""
        t = alarm_events
        async with self.db.read("read an alarm event of") as conn:
            row = (await conn.execute(select(t).where(t.c.event_id == event_id))).first()
        return None if row is None else StoredAlarmEvent(**row._mapping)

    async def acknowledge(self, event_id: str, *, by: str, at: datetime | None = None) -> bool:
        """Mark an event acknowledged by ``by``; False when there is no such event or it already was."""
        t = alarm_events
        async with self.db.write("acknowledge an alarm in") as conn:
            result = await conn.execute(
                update(t)
                .where(t.c.event_id == event_id, t.c.acknowledged_at.is_(None))
                .values(acknowledged_at=at or datetime.now(UTC), acknowledged_by=_clip(by, 255))
            )
            return bool(result.rowcount)

    async def aclose(self) -> None:
        """Close the database handle if this store opened it."""
        if self._owned:
            await self.db.aclose()
