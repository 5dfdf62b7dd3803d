"""PostgreSQL time partitions of ``points`` and ``frames``: names, bounds and on-demand creation.

Both tables are partitioned in two levels (revision 0006)::

    points                      PARTITION BY RANGE (time)        frames: RANGE (frame_time)
      points_p202601            one calendar month (UTC)          PARTITION BY LIST (source_id)
        points_p202601_s3       the month's rows of source id 3   (a plain table: the leaf)

A month is the unit because it is what retention and the archive move (a rig-month of 1 Hz data is
~100 million points, a size PostgreSQL scans, indexes and drops comfortably), while a year of hot
history is 12 partitions per source and table: few enough that planning stays cheap for a fleet.
The source level makes a per-source retention a ``DROP TABLE`` of that source's leaves too, never a
``DELETE``.

There is no DEFAULT partition on purpose: every new partition would have to scan it (under an
ACCESS EXCLUSIVE lock) to prove it holds no row of the new range, and a frame with no partition
would land there silently. Instead every write makes sure its (month, source) leaves exist first:
a new leaf is created as a plain table and then ATTACHed (SHARE UPDATE EXCLUSIVE on the parent,
which does not block readers or other writers, unlike CREATE TABLE ... PARTITION OF on a busy
parent), under a transaction-scoped advisory lock, after checking the catalog again under that lock:
two writers that need the same new leaf create it once. The current month's write also creates the
next month's leaves, so the change of month finds them ready.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from witskit.storage.schema import from_micros

__all__ = [
    "PARTITIONED_TABLES",
    "Leaf",
    "ensure_leaves",
    "leaves_for",
    "list_leaves",
    "month_of",
    "next_month",
]

#: Each partitioned table and the column it is partitioned by.
PARTITIONED_TABLES: Final = (("points", "time"), ("frames", "frame_time"))

#: pg_advisory_xact_lock key of partition creation: "WITSPART" in ASCII (differs from migrations').
PARTITION_LOCK_KEY: Final = 0x57495453_50415254


def month_of(us: int) -> tuple[int, int]:
    """(year, month) in UTC of a time in µs since 1970."""
    ts = from_micros(us)
    return ts.year, ts.month


def next_month(month: tuple[int, int]) -> tuple[int, int]:
    """The calendar month after ``month``."""
    y, m = month
    return (y + 1, 1) if m == 12 else (y, m + 1)


def month_start(month: tuple[int, int]) -> datetime:
    """The first instant (UTC) of a month."""
    return datetime(month[0], month[1], 1, tzinfo=UTC)


class Leaf(NamedTuple):
    """One (month, source id) partition, of both tables."""

    month: tuple[int, int]
    source_id: int

    def name(self, table: str) -> str:
        """``points_p202601_s3``: the leaf of ``table``."""
        return f"{self.month_table(table)}_s{self.source_id}"

    def month_table(self, table: str) -> str:
        """``points_p202601``: the month level of ``table``."""
        return f"{table}_p{self.month[0]:04d}{self.month[1]:02d}"

    @property
    def start(self) -> datetime:
        """The first instant of the leaf's month."""
        return month_start(self.month)

    @property
    def end(self) -> datetime:
        """The first instant after the leaf's month."""
        return month_start(next_month(self.month))


def leaves_for(spans: Iterable[tuple[int, int, int]], now: datetime | None = None) -> set[Leaf]:
    """The leaves that (source id, first µs, last µs) spans need, plus next month's for this month.

    A span may cover several months (a back-filled file): every month in it is included.
    """
    now = now or datetime.now(UTC)
    current = (now.year, now.month)
    out: set[Leaf] = set()
    for sid, lo, hi in spans:
        month, last = month_of(lo), month_of(hi)
        while True:
            out.add(Leaf(month, sid))
            if month == current:
                out.add(Leaf(next_month(month), sid))
            if month >= last:
                break
            month = next_month(month)
    return out


def _quote(ts: datetime) -> str:
    # A fixed UTC literal: the bound does not depend on the session's TimeZone.
    return f"'{ts.strftime('%Y-%m-%d %H:%M:%S')}+00'"


def leaf_ddl(leaf: Leaf) -> list[str]:
    """Statements that create and attach ``leaf`` (and its month level) in both tables.

    Safe only under :data:`PARTITION_LOCK_KEY` after checking which relations exist: each step
    is guarded by ``to_regclass`` in SQL too, so a rerun after a crash between steps completes it.
    """
    out: list[str] = []
    bounds = f"FROM ({_quote(leaf.start)}) TO ({_quote(leaf.end)})"
    for table, _column in PARTITIONED_TABLES:
        month, name = leaf.month_table(table), leaf.name(table)
        out.append(
            f"DO $$ BEGIN IF to_regclass('{month}') IS NULL THEN "
            f"CREATE TABLE {month} (LIKE {table} INCLUDING DEFAULTS) PARTITION BY LIST (source_id); "
            f"ALTER TABLE {table} ATTACH PARTITION {month} FOR VALUES {bounds}; END IF; END $$"
        )
        out.append(
            f"DO $$ BEGIN IF to_regclass('{name}') IS NULL THEN "
            f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS); "
            f"ALTER TABLE {month} ATTACH PARTITION {name} FOR VALUES IN ({int(leaf.source_id)}); "
            "END IF; END $$"
        )
    return out


async def missing_leaves(drv: Any, leaves: Iterable[Leaf]) -> list[Leaf]:
    """Those of ``leaves`` whose ``points`` or ``frames`` leaf is not attached yet (asyncpg)."""
    wanted = sorted(leaves)
    if not wanted:
        return []
    names = [leaf.name(table) for leaf in wanted for table, _ in PARTITIONED_TABLES]
    rows = await drv.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = ANY($1::text[])",
        names,
    )
    present = {str(r[0]) for r in rows}
    return [leaf for leaf in wanted if any(leaf.name(t) not in present for t, _ in PARTITIONED_TABLES)]


async def ensure_leaves(drv: Any, leaves: Iterable[Leaf]) -> list[Leaf]:
    """Create the missing ``leaves`` in the caller's open transaction; return those created.

    The advisory lock is held to the end of that transaction, so a concurrent writer that needs the
    same leaf waits, then finds it (READ COMMITTED: its next statement sees the commit).
    """
    missing = await missing_leaves(drv, leaves)
    if not missing:
        return []
    await drv.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
    missing = await missing_leaves(drv, missing)
    for leaf in missing:
        for statement in leaf_ddl(leaf):
            await drv.execute(statement)
    return missing


class LeafInfo(NamedTuple):
    """A leaf as the catalog shows it."""

    table: str
    name: str
    month: tuple[int, int]
    source_id: int


async def list_leaves(drv: Any) -> list[LeafInfo]:
    """Every attached (month, source) leaf of ``points`` and ``frames``, oldest first (asyncpg)."""
    rows = await drv.fetch(
        "SELECT p.relname AS month_table, c.relname AS leaf FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND p.relname ~ '^(points|frames)_p[0-9]{6}$' "
        "AND c.relname ~ '^(points|frames)_p[0-9]{6}_s[0-9]+$' ORDER BY 2"
    )
    out: list[LeafInfo] = []
    for r in rows:
        table, rest = str(r["leaf"]).split("_p", 1)
        month, sid = rest.split("_s", 1)
        out.append(LeafInfo(table, str(r["leaf"]), (int(month[:4]), int(month[4:])), int(sid)))
    out.sort(key=lambda x: (x.month, x.source_id, x.table))
    return out
