"""The fleet view's table: per rig, the last frame a central worker committed and its lag.

A fleet's workers (``witskit.pipeline.worker``) call :meth:`FleetStatus.record` after each commit
with, per rig of the batch, its newest frame's receive time at the edge and the commit time;
``witskit serve`` reads :meth:`FleetStatus.rigs` for its fleet view. A row only moves forward: a
redelivered older frame does not make its rig look late. Rows are written in source order, so
workers that record the same rigs at once wait for each other and never deadlock::

    status = FleetStatus.open("postgresql://witskit@db/fleet")
    try:
        await status.record([RigRow("rig-7", "site-a", "w1", received, committed)])
        for rig in await status.rigs():
            print(rig.source, rig.lag_seconds)
    finally:
        await status.aclose()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from witskit.storage.database import Database
from witskit.storage.schema import fleet_rigs

__all__ = ["FleetStatus", "RigRow"]


@dataclass(frozen=True, slots=True)
class RigRow:
    """One rig's last committed frame: where it came from and when it was received and committed."""

    source: str
    edge: str
    worker: str
    last_received_at: datetime
    last_committed_at: datetime

    @property
    def lag_seconds(self) -> float:
        """Seconds from the frame reaching its edge to its central commit."""
        return (self.last_committed_at - self.last_received_at).total_seconds()


class FleetStatus:
    """The ``fleet_rigs`` table of one database (migrated by the store: revision 0010)."""

    def __init__(self, db: Database) -> None:
        """Use :meth:`open`."""
        self.db = db

    @classmethod
    def open(cls, url: str, *, pool_size: int = 1) -> FleetStatus:
        """On the database at ``url``; nothing connects until first use."""
        return cls(Database.open(url, pool_size=pool_size))

    async def aclose(self) -> None:
        """Close the connections."""
        await self.db.aclose()

    async def record(self, rows: Sequence[RigRow]) -> None:
        """Move each rig's row forward to ``rows`` (in one transaction; older rows change nothing)."""
        if not rows:
            return
        values = [
            {
                "source": r.source,
                "edge": r.edge[:64],
                "worker": r.worker[:255],
                "last_received_at": r.last_received_at,
                "last_committed_at": r.last_committed_at,
                "lag_seconds": r.lag_seconds,
            }
            for r in sorted(rows, key=lambda r: r.source)
        ]
        async with self.db.write("record the fleet status in") as conn:
            await conn.execute(self._upsert(), values)

    def _upsert(self) -> Any:
        table = fleet_rigs
        newer_cols = ("edge", "worker", "last_received_at", "last_committed_at", "lag_seconds")
        if self.db.dialect == "mysql":
            from sqlalchemy import func
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            stmt = mysql_insert(table)
            newer = stmt.inserted.last_received_at >= table.c.last_received_at
            return stmt.on_duplicate_key_update(
                {c: func.if_(newer, stmt.inserted[c], table.c[c]) for c in newer_cols}
            )
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pg = pg_insert(table)
            return pg.on_conflict_do_update(
                index_elements=[table.c.source],
                set_={c: pg.excluded[c] for c in newer_cols},
                where=pg.excluded.last_received_at >= table.c.last_received_at,
            )
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(table)
        return lite.on_conflict_do_update(
            index_elements=[table.c.source],
            set_={c: lite.excluded[c] for c in newer_cols},
            where=lite.excluded.last_received_at >= table.c.last_received_at,
        )

    async def rigs(self) -> list[RigRow]:
        """Every rig of the fleet, by name."""
        async with self.db.read("read the fleet status of") as conn:
            rows = (await conn.execute(select(fleet_rigs).order_by(fleet_rigs.c.source))).all()
        return [RigRow(r.source, r.edge, r.worker, r.last_received_at, r.last_committed_at) for r in rows]
