"""Retention: history older than N days (globally, or per source) leaves the hot store.

Each engine does it the way it does best (``docs/history.md``):

* **PostgreSQL** drops whole partitions (see ``partitions.py``): a month's DEFAULT (the hash
  buckets every source without an own leaf shares) once the month ended before the cut-off of every
  source in it, and a source's own leaf once its month ended before that source's cut-off: a
  catalog change, never a mass ``DELETE``. Rows of a source in the buckets whose cut-off passed
  while another source there still keeps the month (a shorter per-source retention, for the months
  before that source had its own leaves) are deleted by source. One short transaction per unit,
  with a lock timeout: one that cannot be removed now is reported by name and the others go on.
  The sources' counters are corrected in the same transaction, from exact counts.
  With an archive, the unit's frames are counted before the archive is asked and again under
  its lock: a frame back-filled in between (the counts differ) keeps the unit, named, for the next
  archive run.
* **SQLite** and **MariaDB/MySQL** have one table each: rows are deleted by primary-key range, one
  (source, code, day) range per statement and one day per transaction, so the writer is never held
  for long and the work resumes where it stopped.

When an archive is on, ``archived(source, start, end)`` is asked first for each range, and a range
that it does not confirm stays in the hot store (reported), so nothing is removed before its
archive copy is verified.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from witskit.errors import UsageError
from witskit.storage._base import BackendImpl
from witskit.storage.partitions import (
    PARTITIONED_TABLES,
    Month,
    ensure_months,
    ensure_own_leaves,
    list_months,
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
#: How the points of a relation are counted, per table (a block holds many).
_COUNT: Final = {"point_blocks": "COALESCE(sum(cardinality(times)), 0)"}

#: The distinct sources of a relation, by skipping through its (source_id, ...) key.
_SOURCES_IN: Final = """
WITH RECURSIVE s(id) AS (
    SELECT min(source_id) FROM {rel}
    UNION ALL SELECT (SELECT min(source_id) FROM {rel} WHERE source_id > s.id) FROM s WHERE s.id IS NOT NULL
) SELECT id FROM s WHERE id IS NOT NULL
"""


@dataclass
class _Unit:
    """What retention removes at once in one month: a source's own leaf, or the month's DEFAULT
    (every source's rows in its hash buckets), or one source's rows in that DEFAULT (DELETE)."""

    month: Month
    sources: list[tuple[int, str]]
    #: table -> relation
    rels: dict[str, str]
    #: True: DROP the relations; False: DELETE the source's rows from them.
    drop: bool

    @property
    def target(self) -> str:
        names = ", ".join(sorted(self.rels.values()))
        return names if self.drop else f"rows of {self.sources[0][1]} in {names}"


async def _sources_in(drv: Any, rels: list[str]) -> set[int]:
    out: set[int] = set()
    for rel in rels:
        out |= {int(r[0]) for r in await drv.fetch(_SOURCES_IN.format(rel=rel))}
    return out


async def _due_units(
    drv: Any, names: Mapping[int, str], policy: RetentionPolicy, now: datetime
) -> list[_Unit]:
    """The units due (their month ended before the cut-off of each source in them), oldest first.

    A month's DEFAULT goes whole when every source in it is due; otherwise each due source's rows
    are deleted from it (rows written before the source had its own leaves).
    """

    def due(sid: int, month: Month) -> bool:
        name = names.get(sid)
        cutoff = None if name is None else policy.cutoff(name, now)
        return cutoff is not None and month.end <= cutoff

    out: list[_Unit] = []
    for info in await list_months(drv):
        month = info.month
        for sid in sorted(info.own):
            if due(sid, month):
                rels = {t: month.own(t, sid) for t, _ in PARTITIONED_TABLES}
                out.append(_Unit(month, [(sid, names[sid])], rels, True))
        if not info.has_default:
            continue
        rels = {t: month.default(t) for t, _ in PARTITIONED_TABLES}
        inside = sorted(await _sources_in(drv, list(rels.values())))
        gone = [sid for sid in inside if due(sid, month)]
        if inside and len(gone) == len(inside):
            out.append(_Unit(month, [(sid, names[sid]) for sid in gone], rels, True))
        else:
            out += [_Unit(month, [(sid, names[sid])], rels, False) for sid in gone]
    return out


class _Changed(Exception):
    """The unit gained frames between its archive check and its lock: it is kept."""

    def __init__(self, seen: int, now: int) -> None:
        super().__init__(f"{seen} then, {now} now")
        self.seen, self.now = seen, now


async def _frames_in(drv: Any, unit: _Unit) -> dict[int, int]:
    """Frames per source in the unit's frames relation (all sources when it is dropped whole)."""
    where = "" if unit.drop else f" WHERE source_id = {int(unit.sources[0][0])}"
    rows = await drv.fetch(f"SELECT source_id, count(*) FROM {unit.rels['frames']}{where} GROUP BY 1")  # noqa: S608
    return {int(sid): int(n) for sid, n in rows}


async def _counts(drv: Any, unit: _Unit) -> dict[int, tuple[int, int]]:
    """(points, frames) per source of the unit's rows."""
    out: dict[int, list[int]] = {sid: [0, 0] for sid, _ in unit.sources}
    for table, rel in unit.rels.items():
        where = "" if unit.drop else f" WHERE source_id = {int(unit.sources[0][0])}"
        rows = await drv.fetch(
            f"SELECT source_id, {_COUNT.get(table, 'count(*)')} FROM {rel}{where} GROUP BY 1"  # noqa: S608
        )
        for sid, n in rows:
            if int(sid) in out:
                out[int(sid)][1 if table == "frames" else 0] += int(n)
    return {sid: (p, f) for sid, (p, f) in out.items()}


async def _remove(
    drv: Any, unit: _Unit, lock_timeout: float, seen: dict[int, int] | None
) -> dict[int, tuple[int, int]]:
    """Drop (or delete) one unit and fix its sources' counters, in one transaction.

    The relations are locked first, so no write lands in them after this and the counts are
    exactly what goes: a dropped one ACCESS EXCLUSIVE, each after its month level (the order in
    which writers' rows are routed and ``DROP TABLE`` locks: the other order deadlocks with a
    writer), one deleted from EXCLUSIVE (writes wait, reads go on). With ``seen`` (the frames
    counted before the archive was asked) the unit goes only if it still holds exactly those:
    frames are never deleted but by retention, so the same counts mean the frames the archive
    was verified to hold. Otherwise :class:`_Changed`.
    """
    async with drv.transaction():
        await drv.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms'")
        for table, rel in unit.rels.items():
            if unit.drop:
                await drv.execute(f"LOCK TABLE ONLY {unit.month.name(table)} IN ACCESS EXCLUSIVE MODE")
                await drv.execute(f"LOCK TABLE {rel} IN ACCESS EXCLUSIVE MODE")
            else:
                await drv.execute(f"LOCK TABLE {rel} IN EXCLUSIVE MODE")
        if seen is not None:
            now = await _frames_in(drv, unit)
            if now != seen:
                raise _Changed(sum(seen.values()), sum(now.values()))
        counts = await _counts(drv, unit)
        for rel in unit.rels.values():
            if unit.drop:
                await drv.execute(f"DROP TABLE {rel}")
            else:
                await drv.execute(f"DELETE FROM {rel} WHERE source_id = $1", unit.sources[0][0])  # noqa: S608
        ids = sorted(counts)
        await drv.execute("SELECT 1 FROM sources WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE", ids)
        await drv.execute(
            "UPDATE sources s SET point_count = s.point_count - u.p, frame_count = s.frame_count - u.f, "
            "first_time = (SELECT min(frame_time) FROM frames WHERE source_id = s.id) "
            "FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS u(id, p, f) WHERE s.id = u.id",
            ids,
            [counts[i][0] for i in ids],
            [counts[i][1] for i in ids],
        )
        # A month level left without partitions goes too (nothing can be routed to it).
        for table, _column in PARTITIONED_TABLES:
            level = unit.month.name(table)
            left = await drv.fetchval(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass($1)", level
            )
            if left == 0:
                await drv.execute(f"DROP TABLE IF EXISTS {level}")
    return counts


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
    names = {sid: name for sid, name, _ in await _source_rows(engine)}
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        drv: Any = raw.driver_connection
        for unit in await _due_units(drv, names, policy, now):
            month, target = unit.month, unit.target
            seen = None
            if archived is not None:
                # Counted before the archive is asked (which counts again, through another
                # connection): whatever lands in the unit after this shows under its lock.
                if apply:
                    seen = await _frames_in(drv, unit)
                missing = [n for _, n in unit.sources if not await archived(n, month.start, month.end)]
                if missing:
                    report.kept.append(
                        f"{target}: {', '.join(missing)} not in the archive yet (run `witskit archive`), kept"
                    )
                    continue
            if checked is not None:
                await checked(target)
            if not apply:
                size = None
                if unit.drop:
                    size = int(
                        await drv.fetchval(
                            "SELECT COALESCE(sum(pg_total_relation_size(relid)), 0) "
                            "FROM unnest($1::text[]) r "
                            "CROSS JOIN LATERAL pg_partition_tree(r::regclass) WHERE isleaf",
                            list(unit.rels.values()),
                        )
                    )
                # No counts: a month of a fleet's frames is billions of rows to count.
                report.removed += [Removal(n, month.start, month.end, target, size) for _, n in unit.sources]
                continue
            try:
                counts = await _remove(drv, unit, lock_timeout, seen)
            except _Changed as changed:
                report.kept.append(
                    f"{target}: frames arrived after its archive check ({changed}), kept; "
                    "the next `witskit archive` and retention take it"
                )
                logger.warning("storage: retention kept %s: frames arrived after its archive check", target)
                continue
            except Exception as exc:  # one unit's failure is reported; the others go on
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                report.kept.append(f"{target}: could not be dropped ({reason}), kept")
                logger.warning("storage: retention could not remove %s: %s", target, reason)
                continue
            finally:
                backend_leaves = getattr(backend, "known_leaves", None)
                if backend_leaves is not None:
                    backend_leaves.clear()
            for sid, n in unit.sources:
                pts, frs = counts[sid]
                report.removed.append(Removal(n, month.start, month.end, target, None, pts, frs))
            logger.info("storage: retention removed %s", target)
    return report


async def ensure_ahead(engine: AsyncEngine, now: datetime | None = None, own: Iterable[str] = ()) -> int:
    """PostgreSQL: make this month's and next month's levels, and next month's own leaves of the
    ``own`` sources (those with a retention of their own); the number of months and leaves made."""
    now = now or datetime.now(UTC)
    this = Month((now.year, now.month))
    ahead = Month(next_month(this.month))
    wanted = set(own)
    ids = [sid for sid, name, _ in await _source_rows(engine) if name in wanted]
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        drv: Any = raw.driver_connection
        async with drv.transaction():
            made = len(await ensure_months(drv, {this, ahead}))
            made += len(await ensure_own_leaves(drv, ahead, ids))
    return made


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
            # A day without frames holds no points (a point's time is its frame's): go straight to
            # the next day that has any, as a source that stood still for months (or one frame with
            # a wild clock) made this a statement per code for each empty day.
            later = await _next_frame_day(engine, sid, nxt)
            day = end if later is None else min(max(later, nxt), end)
        if total_p or total_f:
            report.removed.append(Removal(name, first, day, "rows", None, total_p, total_f))
    return report


async def _next_frame_day(engine: AsyncEngine, sid: int, start: datetime) -> datetime | None:
    """The UTC day of the source's first frame at or after ``start``; None when there is none."""
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                select(func.min(frames.c.frame_time)).where(
                    frames.c.source_id == sid, frames.c.frame_time >= start
                )
            )
        ).scalar_one()
    if found is None:
        return None
    moment: datetime = found if found.tzinfo is not None else found.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


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

    async def ensure_partitions_ahead(self, now: datetime | None = None, own: Iterable[str] = ()) -> int: ...

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
    await store.ensure_partitions_ahead(now, own=policy.per_source)
    report = await store.retention(policy, apply=True, now=now, archived=archived)
    for line in report.kept:
        logger.warning("storage: retention: %s", line)
    return report
