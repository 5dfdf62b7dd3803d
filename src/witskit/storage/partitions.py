"""PostgreSQL time partitions of ``points``, ``frames`` and ``point_blocks``: names, bounds, creation.

The layout (revision 0012; it replaced 0006's one leaf per (month, source))::

    points                        PARTITION BY RANGE (time)      frames: RANGE (frame_time)
      points_p202601              one calendar month (UTC)        point_blocks: RANGE (hour)
                                  PARTITION BY LIST (source_id)
        points_p202601_s3         source 3's own leaf: only a source with its own retention
        points_p202601_d          DEFAULT, PARTITION BY HASH (source_id): every other source
          points_p202601_h0 .. h7 the hash buckets (MODULUS 8): the leaves

A month is the unit because it is what the global retention and the archive move. Within a month,
every source without a retention of its own shares :data:`BUCKETS` hash buckets, so the number of
leaves a write touches does not grow with the fleet: a batch of a thousand rigs' frames writes
8 leaves per table, where one leaf per (month, source) made it ~2,000 (each with its index, and a
lock on each: the commit slowed ~100x and ran out of ``max_locks_per_transaction``). A source with
its own retention gets its own leaf from the next month on (``ensure_own_leaves``), so that
retention stays a ``DROP TABLE``; its rows from before stay in the buckets (``docs/history.md``).

Writers create only month levels (the month, its DEFAULT and buckets, and the own leaves of the
sources that have them), for the months of their frames and the next month ahead. Everything is
made as a detached table and then ATTACHed (SHARE UPDATE EXCLUSIVE on the parent, which does not
block readers or other writers), under a transaction-scoped advisory lock, after checking the
catalog again under that lock: two writers that need the same new month create it once.

An own leaf is never attached to a month whose DEFAULT holds rows of that source: PostgreSQL would
have to scan the whole DEFAULT (under an ACCESS EXCLUSIVE lock, blocking every writer) to prove it
holds none; ``ensure_own_leaves`` checks first and makes it only where that is cheap and true.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from witskit.storage.blocks import SUMMARY_COLUMNS
from witskit.storage.schema import from_micros

__all__ = [
    "BUCKETS",
    "PARTITIONED_TABLES",
    "Leaf",
    "Month",
    "ensure_months",
    "ensure_own_leaves",
    "list_months",
    "month_of",
    "months_for",
    "next_month",
    "own_sources",
]

#: Each partitioned table and the column it is partitioned by.
PARTITIONED_TABLES: Final = (("points", "time"), ("frames", "frame_time"), ("point_blocks", "hour"))

#: Hash buckets of a month's DEFAULT partition. Eight: a 1000-rig write holds 29 relation locks
#: (buckets and their indexes in points and frames; the default allows 64 per transaction), a
#: thousand rigs' month of live rows is split into pieces that vacuum and index comfortably, and a
#: query for one source reads one bucket. More buckets add locks and planning to every write and
#: gain nothing measurable at a thousand rigs; fewer make each bucket's index deeper.
BUCKETS: Final = 8

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


class Month(NamedTuple):
    """One month level of the three tables."""

    month: tuple[int, int]

    def name(self, table: str) -> str:
        """``points_p202601``."""
        return f"{table}_p{self.month[0]:04d}{self.month[1]:02d}"

    def default(self, table: str) -> str:
        """``points_p202601_d``: the month's DEFAULT partition (hash-partitioned)."""
        return f"{self.name(table)}_d"

    def bucket(self, table: str, i: int) -> str:
        """``points_p202601_h3``: a hash bucket of the DEFAULT."""
        return f"{self.name(table)}_h{i}"

    def own(self, table: str, source_id: int) -> str:
        """``points_p202601_s3``: a source's own leaf."""
        return f"{self.name(table)}_s{int(source_id)}"

    @property
    def start(self) -> datetime:
        """The first instant of the month."""
        return month_start(self.month)

    @property
    def end(self) -> datetime:
        """The first instant after the month."""
        return month_start(next_month(self.month))


class Leaf(NamedTuple):
    """A source's own leaf of one month (of every table)."""

    month: tuple[int, int]
    source_id: int

    def name(self, table: str) -> str:
        """``points_p202601_s3``."""
        return Month(self.month).own(table, self.source_id)


def months_for(spans: Iterable[tuple[int, int]], now: datetime | None = None) -> set[Month]:
    """The months that (first µs, last µs) spans need, plus next month's for this month.

    A span may cover several months (a back-filled file): every month in it is included.
    """
    now = now or datetime.now(UTC)
    current = (now.year, now.month)
    out: set[Month] = set()
    for lo, hi in spans:
        month, last = month_of(lo), month_of(hi)
        while True:
            out.add(Month(month))
            if month == current:
                out.add(Month(next_month(month)))
            if month >= last:
                break
            month = next_month(month)
    return out


def _quote(ts: datetime) -> str:
    # A fixed UTC literal: the bound does not depend on the session's TimeZone.
    return f"'{ts.strftime('%Y-%m-%d %H:%M:%S')}+00'"


def _guarded(name: str, body: str) -> str:
    return f"DO $$ BEGIN IF to_regclass('{name}') IS NULL THEN {body} END IF; END $$"


#: What a new partition copies from its table: column defaults, and the columns' TOAST compression
#: (revision 0013: LZ4 for the arrays of ``point_blocks``), which ``LIKE`` alone leaves at the default.
_LIKE: Final = "INCLUDING DEFAULTS INCLUDING COMPRESSION"


#: Columns of a table whose statistics no query uses (revision 0014: point_blocks' arrays): a new
#: partition gets target 0 for them too (``LIKE`` does not copy a column's statistics target).
_NO_STATISTICS: Final = {"point_blocks": ("times", "frame_keys", "idxs", "nums", "texts", *SUMMARY_COLUMNS)}


def _no_statistics(table: str, name: str) -> str:
    """The statement that turns off ``name``'s unused statistics (recursing to its partitions)."""
    columns = _NO_STATISTICS.get(table)
    if not columns:
        return ""
    return f" ALTER TABLE {name} " + ", ".join(f"ALTER COLUMN {c} SET STATISTICS 0" for c in columns) + ";"


def own_leaf_ddl(month: Month, table: str, source_id: int) -> str:
    """Create and attach one own leaf (the month level must exist)."""
    name = month.own(table, source_id)
    return _guarded(
        name,
        f"CREATE TABLE {name} (LIKE {table} {_LIKE});{_no_statistics(table, name)} "
        f"ALTER TABLE {month.name(table)} ATTACH PARTITION {name} FOR VALUES IN ({int(source_id)});",
    )


def month_ddl(month: Month, own: Iterable[int] = ()) -> list[str]:
    """Statements that create and attach ``month`` in every table: its level, the own leaves of
    ``own`` sources (before the DEFAULT: then attaching them scans nothing), the DEFAULT and its
    buckets. Safe only under :data:`PARTITION_LOCK_KEY`; each step is guarded by ``to_regclass``,
    so a rerun completes a month that is partly there (a DEFAULT dropped by retention, say)."""
    out: list[str] = []
    bounds = f"FROM ({_quote(month.start)}) TO ({_quote(month.end)})"
    for table, _column in PARTITIONED_TABLES:
        level, default = month.name(table), month.default(table)
        out.append(
            _guarded(
                level,
                f"CREATE TABLE {level} (LIKE {table} {_LIKE}) PARTITION BY LIST (source_id);"
                f"{_no_statistics(table, level)} "
                f"ALTER TABLE {table} ATTACH PARTITION {level} FOR VALUES {bounds};",
            )
        )
        out += [own_leaf_ddl(month, table, sid) for sid in sorted(set(own))]
        buckets = " ".join(
            f"CREATE TABLE {month.bucket(table, i)} PARTITION OF {default} "
            f"FOR VALUES WITH (MODULUS {BUCKETS}, REMAINDER {i});"
            for i in range(BUCKETS)
        )
        out.append(
            _guarded(
                default,
                f"CREATE TABLE {default} (LIKE {table} {_LIKE}) PARTITION BY HASH (source_id); "
                f"{buckets}{_no_statistics(table, default)} "
                f"ALTER TABLE {level} ATTACH PARTITION {default} DEFAULT;",
            )
        )
    return out


async def _present(drv: Any, names: list[str]) -> set[str]:
    rows = await drv.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = ANY($1::text[])",
        names,
    )
    return {str(r[0]) for r in rows}


async def missing_months(drv: Any, months: Iterable[Month]) -> list[Month]:
    """Those of ``months`` whose DEFAULT is not attached in some table (asyncpg)."""
    wanted = sorted(months)
    if not wanted:
        return []
    present = await _present(drv, [m.default(t) for m in wanted for t, _ in PARTITIONED_TABLES])
    return [m for m in wanted if any(m.default(t) not in present for t, _ in PARTITIONED_TABLES)]


async def own_sources(drv: Any) -> set[int]:
    """The sources that have an own leaf in some month (they get one in every new month)."""
    rows = await drv.fetch(
        "SELECT DISTINCT substring(c.relname from '_s([0-9]+)$')::int FROM pg_class c "
        "JOIN pg_inherits i ON i.inhrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname ~ '^frames_p[0-9]{6}_s[0-9]+$'"
    )
    return {int(r[0]) for r in rows}


async def ensure_months(drv: Any, months: Iterable[Month]) -> list[Month]:
    """Create the missing ``months`` in the caller's open transaction; return those created.

    The advisory lock is held to the end of that transaction, so a concurrent writer that needs the
    same month waits, then finds it (READ COMMITTED: its next statement sees the commit).
    """
    missing = await missing_months(drv, months)
    if not missing:
        return []
    await drv.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
    missing = await missing_months(drv, missing)
    if missing:
        own = await own_sources(drv)
        for month in missing:
            for statement in month_ddl(month, own):
                await drv.execute(statement)
    return missing


async def ensure_own_leaves(drv: Any, month: Month, source_ids: Iterable[int]) -> list[Leaf]:
    """Give ``source_ids`` their own leaves in ``month`` where its DEFAULT holds none of their rows
    (otherwise the source stays in the buckets for this month); in the caller's transaction.
    The month level must exist (:func:`ensure_months`). Returns the leaves made."""
    await drv.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
    made: list[Leaf] = []
    for sid in sorted(set(source_ids)):
        names = [month.own(t, sid) for t, _ in PARTITIONED_TABLES]
        if len(await _present(drv, names)) == len(names):
            continue
        busy = False
        for table, _ in PARTITIONED_TABLES:
            busy = busy or bool(
                await drv.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {month.default(table)} WHERE source_id = $1)",  # noqa: S608
                    sid,
                )
            )
        if busy:
            continue
        for table, _ in PARTITIONED_TABLES:
            await drv.execute(own_leaf_ddl(month, table, sid))
        made.append(Leaf(month.month, sid))
    return made


class MonthInfo(NamedTuple):
    """A month as the catalog shows it: which own leaves it has, whether its DEFAULT is there."""

    month: Month
    own: frozenset[int]
    has_default: bool


async def list_months(drv: Any) -> list[MonthInfo]:
    """Every attached month level of ``frames`` (the three tables get theirs together), oldest first."""
    rows = await drv.fetch(
        "SELECT m.relname AS month, c.relname AS child FROM pg_inherits im "
        "JOIN pg_class m ON m.oid = im.inhrelid "
        "LEFT JOIN pg_inherits i ON i.inhparent = m.oid LEFT JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE im.inhparent = to_regclass('frames') AND m.relname ~ '^frames_p[0-9]{6}$'"
    )
    months: dict[str, tuple[set[int], bool]] = {}
    for r in rows:
        own, has_default = months.get(str(r["month"]), (set(), False))
        child = r["child"]
        if child is not None and str(child).endswith("_d"):
            has_default = True
        elif child is not None and "_s" in str(child):
            own.add(int(str(child).rsplit("_s", 1)[1]))
        months[str(r["month"])] = (own, has_default)
    out = [
        MonthInfo(Month((int(name[-6:-2]), int(name[-2:]))), frozenset(own), has_default)
        for name, (own, has_default) in months.items()
    ]
    return sorted(out)
