"""Retention: history older than N days (globally, or per source) leaves the hot store.

Each engine does it the way it does best (``docs/history.md``):

* **PostgreSQL** drops whole (month, source) leaves of ``points`` and ``frames`` (see
  ``partitions.py``) whose month ended before the source's cut-off: a catalog change, never a mass
  ``DELETE``. One short transaction per leaf, with a lock timeout: a leaf that cannot be dropped
  now is reported by name and the others go on. The source's counters are corrected in the same
  transaction, from exact counts of the leaf. With an archive, the leaf's frames are counted
  before the archive is asked and again under the leaf's ACCESS EXCLUSIVE lock: a frame
  back-filled in between (the count differs) keeps the leaf, named, for the next archive run.
* **SQLite** and **MariaDB/MySQL** have one table each: rows are deleted by primary-key range, one
  (source, code, day) range per statement and one day per transaction, so the writer is never held
  for long and the work resumes where it stopped.

When an archive is on, ``archived(source, start, end)`` is asked first for each range, and a range
that it does not confirm stays in the hot store (reported), so nothing is removed before its
archive copy is verified.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from witskit.errors import UsageError
from witskit.storage._base import BackendImpl
from witskit.storage.partitions import (
    PARTITIONED_TABLES,
    Leaf,
    LeafInfo,
    ensure_leaves,
    list_leaves,
    next_month,
)
from witskit.storage.query import distinct_codes
from witskit.storage.schema import frames, points, sources

__all__ = [
    "Archived",
    "Checked",
    "Removal",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionTarget",
    "apply_retention",
    "ensure_ahead",
    "plan_retention",
    "scheduled_retention",
]

logger = logging.getLogger("witskit.storage")

#: Asked before a range is removed while the archive is on: is [start, end) of this source archived?
Archived = Callable[[str, datetime, datetime], Awaitable[bool]]

#: Default longest wait (seconds) for a leaf's lock before it is reported and skipped (PostgreSQL).
LOCK_TIMEOUT: Final = 10.0
_DAY: Final = timedelta(days=1)


@dataclass(frozen=True)
class RetentionPolicy:
    """Days of history kept in the hot store: ``days`` for every source, ``per_source`` overrides.

    None (or a source absent from both) keeps everything.
    """

    days: int | None = None
    per_source: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, days in [("*", self.days), *self.per_source.items()]:
            if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
                raise UsageError(f"retention for {name!r} must be a whole number of days >= 1, got {days!r}")

    @classmethod
    def parse(cls, days: int | None, specs: list[str] | None) -> RetentionPolicy:
        """From ``--days N`` and ``--source NAME=DAYS`` options."""
        per: dict[str, int] = {}
        for spec in specs or []:
            name, sep, value = spec.rpartition("=")
            if not sep or not name or not value.strip().isdigit():
                raise UsageError(f"--source takes NAME=DAYS (e.g. rig-7=30), got {spec!r}")
            per[name] = int(value)
        return cls(days, per)

    def days_for(self, source: str) -> int | None:
        """The days kept for ``source`` (None: all)."""
        return self.per_source.get(source, self.days)

    def cutoff(self, source: str, now: datetime) -> datetime | None:
        """The instant before which ``source``'s history goes (None: kept)."""
        days = self.days_for(source)
        return None if days is None else now - timedelta(days=days)


@dataclass(frozen=True)
class Removal:
    """One range that retention removes (or removed): a source's [start, end)."""

    source: str
    start: datetime
    end: datetime
    #: What is dropped: partition names (PostgreSQL), or "rows" (SQLite, MariaDB/MySQL).
    target: str
    #: Bytes on disk of the partitions (PostgreSQL), None elsewhere.
    size: int | None = None
    points: int | None = None
    frames: int | None = None


@dataclass
class RetentionReport:
    """What a retention run planned or did."""

    applied: bool
    removed: list[Removal] = field(default_factory=list)
    #: One line per range kept although due: not archived yet, or could not be dropped.
    kept: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        """Points removed."""
        return sum(r.points or 0 for r in self.removed)


async def _source_rows(engine: AsyncEngine) -> list[tuple[int, str, datetime | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(sources.c.id, sources.c.name, sources.c.first_time))
        return [(int(i), str(n), t) for i, n, t in rows]


# PostgreSQL ---------------------------------------------------------------------------------------
async def _due_leaves(
    engine: AsyncEngine, policy: RetentionPolicy, now: datetime
) -> list[tuple[str, Leaf, list[LeafInfo], int]]:
    names = {sid: name for sid, name, _ in await _source_rows(engine)}
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        drv: Any = raw.driver_connection
        grouped: dict[Leaf, list[LeafInfo]] = {}
        for info in await list_leaves(drv):
            grouped.setdefault(Leaf(info.month, info.source_id), []).append(info)
        out: list[tuple[str, Leaf, list[LeafInfo], int]] = []
        for leaf, infos in sorted(grouped.items()):
            name = names.get(leaf.source_id)
            cutoff = None if name is None else policy.cutoff(name, now)
            if name is None or cutoff is None or leaf.end > cutoff:
                continue
            size = await drv.fetchval(
                "SELECT sum(pg_total_relation_size(c::regclass)) FROM unnest($1::text[]) c",
                [i.name for i in infos],
            )
            out.append((name, leaf, infos, int(size or 0)))
    return out


#: How the points of a leaf are counted, per table (a block holds many).
_COUNT: Final = {"point_blocks": "COALESCE(sum(cardinality(times)), 0)"}


class _Changed(Exception):
    """The leaf gained frames between its archive check and its lock: it is kept."""

    def __init__(self, seen: int, now: int) -> None:
        super().__init__(f"{seen} then, {now} now")
        self.seen, self.now = seen, now


async def _drop_leaf(
    drv: Any, leaf: Leaf, infos: list[LeafInfo], lock_timeout: float, seen: int | None
) -> tuple[int, int]:
    """Drop one (month, source) leaf of both tables; fix the source's counters. (points, frames).

    The leaves are locked first (ACCESS EXCLUSIVE: no write lands in them after this), each after
    its month level, the order in which writers' rows are routed and in which ``DROP TABLE`` locks
    (a leaf locked before its parent would deadlock with a writer holding the parent). With
    ``seen`` (the leaf's frames counted before the archive was asked), the leaf is dropped only if
    it still holds exactly that many: frames are never deleted but by retention, so the same count
    means the same frames, the ones the archive was verified to hold. Otherwise :class:`_Changed`.
    """
    by_table = {i.table: i.name for i in infos}
    async with drv.transaction():
        await drv.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms'")
        for table, name in by_table.items():
            await drv.execute(f"LOCK TABLE ONLY {leaf.month_table(table)} IN ACCESS EXCLUSIVE MODE")
            await drv.execute(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
        counts = {
            table: int(await drv.fetchval(f"SELECT {_COUNT.get(table, 'count(*)')} FROM {name}"))  # noqa: S608
            for table, name in by_table.items()
        }
        if seen is not None and counts.get("frames", 0) != seen:
            raise _Changed(seen, counts.get("frames", 0))
        # A block (revision 0009) holds an hour of points: they count as points.
        counts["points"] = counts.get("points", 0) + counts.pop("point_blocks", 0)
        for name in by_table.values():
            await drv.execute(f"DROP TABLE {name}")
        await drv.execute(
            "UPDATE sources SET point_count = point_count - $2, frame_count = frame_count - $3, "
            "first_time = (SELECT min(frame_time) FROM frames WHERE source_id = $1) WHERE id = $1",
            leaf.source_id,
            counts.get("points", 0),
            counts.get("frames", 0),
        )
        # A month level left without leaves goes too (nothing can be routed to it).
        for table, _column in PARTITIONED_TABLES:
            month = leaf.month_table(table)
            left = await drv.fetchval(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass($1)", month
            )
            if left == 0:
                await drv.execute(f"DROP TABLE IF EXISTS {month}")
    return counts.get("points", 0), counts.get("frames", 0)


#: Told the leaf's partition names after its archive check and before it is locked and dropped:
#: tests write a back-filled frame there, between the two, to prove the leaf is then kept.
Checked = Callable[[str], Awaitable[None]]


async def _postgres(
    engine: AsyncEngine,
    backend: BackendImpl,
    policy: RetentionPolicy,
    now: datetime,
    apply: bool,
    archived: Archived | None,
    lock_timeout: float,
    checked: Checked | None = None,
) -> RetentionReport:
    report = RetentionReport(applied=apply)
    due = await _due_leaves(engine, policy, now)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        drv: Any = raw.driver_connection
        for name, leaf, infos, size in due:
            target = ", ".join(sorted(i.name for i in infos))
            seen = None
            if archived is not None:
                # Counted before the archive is asked (which counts again, through another
                # connection): whatever lands in the leaf after this shows under the lock.
                frames_leaf = next((i.name for i in infos if i.table == "frames"), None)
                if apply and frames_leaf is not None:
                    seen = int(await drv.fetchval(f"SELECT count(*) FROM {frames_leaf}"))  # noqa: S608
                if not await archived(name, leaf.start, leaf.end):
                    report.kept.append(f"{target}: not in the archive yet (run `witskit archive`), kept")
                    continue
            if checked is not None:
                await checked(target)
            if not apply:
                report.removed.append(Removal(name, leaf.start, leaf.end, target, size))
                continue
            try:
                pts, frs = await _drop_leaf(drv, leaf, infos, lock_timeout, seen)
            except _Changed as changed:
                report.kept.append(
                    f"{target}: frames arrived after its archive check ({changed}), kept; "
                    "the next `witskit archive` and retention take it"
                )
                logger.warning("storage: retention kept %s: frames arrived after its archive check", target)
                continue
            except Exception as exc:  # one leaf's failure is reported; the others go on
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                report.kept.append(f"{target}: could not be dropped ({reason}), kept")
                logger.warning("storage: retention could not drop %s: %s", target, reason)
                continue
            finally:
                backend_leaves = getattr(backend, "known_leaves", None)
                if backend_leaves is not None:
                    backend_leaves.clear()
            report.removed.append(Removal(name, leaf.start, leaf.end, target, size, pts, frs))
            logger.info("storage: retention dropped %s (%d points, %d frames)", target, pts, frs)
    return report


async def ensure_ahead(engine: AsyncEngine, now: datetime | None = None) -> int:
    """PostgreSQL: make this month's and next month's leaves of every source; the number made."""
    now = now or datetime.now(UTC)
    month = (now.year, now.month)
    ids = [sid for sid, _, _ in await _source_rows(engine)]
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        drv: Any = raw.driver_connection
        async with drv.transaction():
            made = await ensure_leaves(drv, {Leaf(m, sid) for sid in ids for m in (month, next_month(month))})
    return len(made)


# SQLite, MariaDB/MySQL ----------------------------------------------------------------------------
async def _by_rows(
    engine: AsyncEngine, policy: RetentionPolicy, now: datetime, apply: bool, archived: Archived | None
) -> RetentionReport:
    report = RetentionReport(applied=apply)
    for sid, name, first in await _source_rows(engine):
        cutoff = policy.cutoff(name, now)
        if cutoff is None or first is None or first >= cutoff:
            continue
        # Whole UTC days only, as the archive holds them: [first day, the day of the cut-off).
        day = first.replace(hour=0, minute=0, second=0, microsecond=0)
        end = cutoff.replace(hour=0, minute=0, second=0, microsecond=0)
        if day >= end:
            continue
        async with engine.connect() as conn:
            codes = [str(c) for c in (await conn.execute(distinct_codes(sid))).scalars()]
        total_p = total_f = 0
        while day < end:
            nxt = day + _DAY
            if archived is not None and not await archived(name, day, nxt):
                report.kept.append(
                    f"{name} from {day:%Y-%m-%d}: not in the archive yet (run `witskit archive`), kept"
                )
                break
            p, f = await _delete_day(engine, sid, codes, day, nxt, apply)
            total_p, total_f = total_p + p, total_f + f
            day = nxt
        if total_p or total_f:
            report.removed.append(Removal(name, first, day, "rows", None, total_p, total_f))
    return report


async def _delete_day(
    engine: AsyncEngine, sid: int, codes: list[str], lo: datetime, hi: datetime, apply: bool
) -> tuple[int, int]:
    """One day of one source: each code's key range, then the frames, in one short transaction."""
    pts = frs = 0
    async with engine.begin() as conn:
        for code in codes:
            here = (points.c.source_id == sid, points.c.code == code, points.c.time >= lo, points.c.time < hi)
            if apply:
                pts += (await conn.execute(delete(points).where(*here))).rowcount
            else:
                pts += int((await conn.execute(select(func.count()).where(*here))).scalar_one())
        there = (frames.c.source_id == sid, frames.c.frame_time >= lo, frames.c.frame_time < hi)
        if apply:
            frs = (await conn.execute(delete(frames).where(*there))).rowcount
            if pts or frs:
                first = (
                    select(func.min(frames.c.frame_time)).where(frames.c.source_id == sid).scalar_subquery()
                )
                await conn.execute(
                    sources.update()
                    .where(sources.c.id == sid)
                    .values(
                        point_count=sources.c.point_count - pts,
                        frame_count=sources.c.frame_count - frs,
                        first_time=first,
                    )
                )
        else:
            frs = int((await conn.execute(select(func.count()).where(*there))).scalar_one())
    return pts, frs


async def plan_retention(
    engine: AsyncEngine,
    backend: BackendImpl,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    archived: Archived | None = None,
) -> RetentionReport:
    """What :func:`apply_retention` would remove now (nothing is changed)."""
    now = now or datetime.now(UTC)
    if backend.name == "postgresql":
        return await _postgres(engine, backend, policy, now, False, archived, LOCK_TIMEOUT)
    return await _by_rows(engine, policy, now, False, archived)


async def apply_retention(
    engine: AsyncEngine,
    backend: BackendImpl,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    archived: Archived | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
    checked: Checked | None = None,
) -> RetentionReport:
    """Remove the history that ``policy`` no longer keeps (see the module's notes per engine).

    ``lock_timeout`` (seconds, PostgreSQL): how long a partition's lock is waited for before that
    partition is reported as kept and the next one is tried. ``checked`` (PostgreSQL, tests) is
    awaited between a leaf's archive check and its drop.
    """
    now = now or datetime.now(UTC)
    if backend.name == "postgresql":
        return await _postgres(engine, backend, policy, now, True, archived, lock_timeout, checked)
    return await _by_rows(engine, policy, now, True, archived)


class RetentionTarget(Protocol):
    """What the scheduled job needs of a store (:class:`~witskit.storage.Store` has it)."""

    async def ensure_partitions_ahead(self, now: datetime | None = None) -> int: ...

    async def retention(
        self,
        policy: RetentionPolicy,
        *,
        apply: bool = False,
        now: datetime | None = None,
        archived: Archived | None = None,
    ) -> RetentionReport: ...


async def scheduled_retention(
    store: RetentionTarget,
    policy: RetentionPolicy,
    *,
    archived: Archived | None = None,
    now: datetime | None = None,
) -> RetentionReport:
    """The service's periodic job (wired in by the service): partitions ahead, then retention.

    Safe to run from several processes at once: leaf creation is serialised by its advisory lock,
    and a leaf already dropped by another run is simply gone from the next listing.
    """
    await store.ensure_partitions_ahead(now)
    report = await store.retention(policy, apply=True, now=now, archived=archived)
    for line in report.kept:
        logger.warning("storage: retention: %s", line)
    return report
