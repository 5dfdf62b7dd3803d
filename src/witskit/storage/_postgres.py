"""PostgreSQL, the production store, through asyncpg.

asyncpg speaks the binary protocol, has the COPY API (``copy_records_to_table``) and is the async
driver SQLAlchemy recommends for PostgreSQL. A write is:

1. the keys already stored are looked up (``frame_key = ANY($keys)``), so a replayed frame costs one
   index probe and its points are never sent;
2. the new frames are COPYed into a temporary staging table, each with its points as three array
   literals (codes, numbers, texts), then one statement inserts them
   (``INSERT INTO frames SELECT ... ON CONFLICT DO NOTHING RETURNING``: the RETURNING list is exact
   even when another writer stores the same frames at the same moment) and makes the point rows of
   exactly those frames from the arrays, sorted by (source, code, time) so that index inserts land
   next to each other. No ON CONFLICT is needed for points: only the transaction that inserted a
   frame row writes that frame's points, and the frames primary key lets only one transaction do
   that. The server making the rows spares the client building and encoding 7 values a point
   (most of a fleet worker's CPU);
3. a source's many frames in one write (an import, a replayed spool) go to hourly blocks instead,
   made by the client and COPYed in binary (:mod:`witskit.storage.block_copy`): new blocks
   straight into ``point_blocks``, blocks already stored appended through a stage. A few dozen
   frames of a source in one hour (a fleet backlog's bundle) go to blocks too, unless that hour's
   stored block is over 4 times as large (``_NEW_BLOCK_MIN_FRAMES``); otherwise they stay rows.

Many writers (a fleet's central workers) share one database without deadlocks: every lock a write
takes is taken in one global order, phase by phase: new source rows by name, frame rows by
(source, key), then the source rows it updates by id (locked ``FOR UPDATE`` in id order first).
Two writers then only ever wait for each other, never on each other in a circle.
"""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
    Set,
)
from datetime import datetime
from itertools import chain, repeat
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from witskit.storage._base import (
    HOUR_US,
    BackendImpl,
    Classified,
    Pending,
    RawPoint,
    ScanFilter,
    WriteRace,
    layouts,
    split,
)
from witskit.storage._url import ParsedURL
from witskit.storage.block_copy import (
    BLOCK_COLUMNS,
    COPY_HEADER,
    COPY_TRAILER,
    SUMMARIZED_COLUMNS,
    Block,
    encode_blocks,
    make_blocks,
)
from witskit.storage.block_scan import MAX_HOURS, scan_hours
from witskit.storage.blocks import SUMMARY_COLUMNS
from witskit.storage.errors import (
    AuthenticationFailed,
    DatabaseNotFound,
    DatabaseUnavailable,
    SchemaMismatch,
    StorageConfigError,
    StorageError,
    StorageFull,
)
from witskit.storage.partitions import Month, ensure_months, months_for
from witskit.storage.schema import VERSION_TABLE, from_micros, to_micros

__all__ = ["PostgresBackend"]

logger = logging.getLogger("witskit.storage")

_STAGE: Final = "witskit_stage_frames"
_STAGE_READY: Final = "witskit_stage_ready"
_FRAME_COLS: Final = ("source_id", "frame_key", "received_at", "frame_time", "raw", "errors")
_POINT_COLS: Final = ("frame_key", "time", "value_num", "source_id", "idx", "code", "value_text")

# ON COMMIT DELETE ROWS: the stage empties itself at every commit or rollback; it is created once
# per connection (not per write) so the system catalogs do not churn.
# Each frame travels with its points as three array literals (codes, numbers, texts: NULL when it
# has no text), and the server makes the point rows: the client encodes 3 strings a frame instead
# of 7 values a point. A fleet batch of 1,000 frames is 40,000 points: making and encoding them as
# COPY rows was most of a worker's CPU, and asyncpg's array encoder (an isinstance check per
# element) cost as much again; joining the reprs of 40 numbers is one C loop.
_CREATE_STAGE: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (LIKE frames, codes text, nums text, texts text) "
    "ON COMMIT DELETE ROWS"
)
_STAGE_COLS: Final = (*_FRAME_COLS, "codes", "nums", "texts")
_COLS: Final = ", ".join(_FRAME_COLS)
# In key order: writers that insert overlapping frames take their index entries in one order, so
# one waits for the other instead of each holding what the other needs (a deadlock). The points of
# exactly the frames inserted (RETURNING) are made from the stage's arrays in the same statement,
# sorted as the key so that index inserts land next to each other; frames whose points go to
# blocks (``codes`` NULL) get theirs from ``_MOVE_BLOCKS``.
_MOVE_ALL_FRAMES: Final = f"""
WITH moved AS (
    INSERT INTO frames ({_COLS}) SELECT {_COLS} FROM {_STAGE}
    ORDER BY source_id, frame_key ON CONFLICT DO NOTHING RETURNING source_id, frame_key
), made AS (
    INSERT INTO points ({", ".join(_POINT_COLS)})
    SELECT s.frame_key, s.frame_time, u.num, s.source_id, (u.i - 1)::int2, u.code, u.txt
    FROM {_STAGE} s JOIN moved m ON m.source_id = s.source_id AND m.frame_key = s.frame_key
    CROSS JOIN LATERAL unnest(s.codes::text[], s.nums::float8[], s.texts::text[])
        WITH ORDINALITY AS u(code, num, txt, i)
    WHERE s.codes IS NOT NULL
    ORDER BY s.source_id, u.code, s.frame_time, s.frame_key
)
SELECT source_id, frame_key FROM moved
"""  # noqa: S608 - fixed text

#: From this many new frames of one source in one write (an import, a replayed spool), their points
#: are written straight as hourly blocks (revision 0009), not as rows to be compacted later: one
#: row per (code, hour) instead of one per point. Fewer (a live rig's second) stay rows: appending
#: to a block rewrites it, so a block is grown only by writes that bring many points at once.
_BLOCK_MIN_FRAMES: Final = 256
#: From this many new frames of one source in one UTC hour of a smaller write (a fleet backlog's
#: bundle, a spool replayed after an outage), the hour's points go to blocks too: rows cost the
#: server several times as much CPU, and are compacted into blocks later anyway. Appending rewrites
#: the whole block, so an hour whose stored block holds more than ``_APPEND_RATIO`` times the
#: write's frames gets rows instead (merged by the next compaction): each append then grows a block
#: by a quarter at least, and all the rewrites of an hour add up to at most 5 times its final
#: size, where writes of a few frames into a growing block would rewrite it again and again.
_NEW_BLOCK_MIN_FRAMES: Final = 16
_APPEND_RATIO: Final = 4


def _by_key(p: Pending) -> int:
    return p.key


_BLOCK_STAGE: Final = "witskit_stage_points"
_BLOCK_COLS: Final = ("source_id", "code", "hour", "times", "frame_keys", "idxs", "nums", "texts")
_CREATE_BLOCK_STAGE: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_BLOCK_STAGE} (LIKE points) ON COMMIT DELETE ROWS"
)
# The reference path (``client_blocks = False``; the tests compare the client's blocks with its):
# the points are COPYed flat (as rows, the fast binary path) to a stage, and the server makes the
# blocks: one per (source, code, hour), sorted by time (one sort per aggregate on PostgreSQL 15;
# 16 sorts once for aggregates sharing an ORDER BY). Without the ORDER BY the grouping's sort left
# the arrays out of time order, and a block out of order gets no per-minute summaries (revision
# 0011). This path leaves the summaries of the blocks it writes NULL (the client path computes
# those of its new blocks of numbers; an appended block's are reset): the next compaction
# computes them (``witskit.storage.blocks.summarize_pending``). A block already stored for that
# key gets the new points appended (still in time order when they come after its last point, as
# an import's next write does; otherwise it gets no summaries and series read it point by point).
# ``texts`` is NULL while no value of a block is text, so it is padded with NULLs when one side
# has none.
#: What a block already stored for a key gets from a new one: the new points appended (``texts``
#: padded with NULLs when one side has none), the summaries reset for the next compaction.
_APPEND_TO_STORED: Final = f"""
ON CONFLICT (source_id, code, hour) DO UPDATE SET
    times = o.times || EXCLUDED.times,
    frame_keys = o.frame_keys || EXCLUDED.frame_keys,
    idxs = o.idxs || EXCLUDED.idxs,
    nums = o.nums || EXCLUDED.nums,
    texts = CASE WHEN o.texts IS NULL AND EXCLUDED.texts IS NULL THEN NULL ELSE
        COALESCE(o.texts, array_fill(NULL::text, ARRAY[cardinality(o.times)]))
        || COALESCE(EXCLUDED.texts, array_fill(NULL::text, ARRAY[cardinality(EXCLUDED.times)])) END,
    {", ".join(f"{c} = NULL" for c in SUMMARY_COLUMNS)}
"""
_MOVE_BLOCKS: Final = f"""
INSERT INTO point_blocks AS o ({", ".join(_BLOCK_COLS)})
SELECT source_id, code, hour, array_agg(time), array_agg(frame_key), array_agg(idx),
    array_agg(value_num), CASE WHEN bool_or(value_text IS NOT NULL) THEN array_agg(value_text) END
FROM (
    SELECT source_id, code, date_trunc('hour', time, 'UTC') AS hour, time, frame_key, idx, value_num,
        value_text
    FROM {_BLOCK_STAGE} ORDER BY source_id, code, hour, time, frame_key, idx
) s GROUP BY source_id, code, hour{_APPEND_TO_STORED}"""  # noqa: S608 - fixed text

#: Blocks made by the client (:mod:`witskit.storage.block_copy`) that append to a block already
#: stored go through this stage (COPY cannot ``ON CONFLICT``); new blocks are COPYed straight into
#: ``point_blocks``. Its arrays are kept uncompressed (STORAGE EXTERNAL): they are read once, by the
#: move, and compressing them twice would cost what the direct path saves.
_APPEND_STAGE: Final = "witskit_stage_blocks"
_CREATE_APPEND_STAGE: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_APPEND_STAGE} (LIKE point_blocks) ON COMMIT DELETE ROWS",
    *(
        f"ALTER TABLE {_APPEND_STAGE} ALTER COLUMN {c} SET STORAGE EXTERNAL"
        for c in _BLOCK_COLS[3:]  # the arrays
    ),
)
_APPEND_BLOCKS: Final = f"""
INSERT INTO point_blocks AS o ({", ".join(SUMMARIZED_COLUMNS)})
SELECT {", ".join(SUMMARIZED_COLUMNS)} FROM {_APPEND_STAGE} ORDER BY source_id, code, hour
{_APPEND_TO_STORED}"""  # noqa: S608 - fixed text
#: The (source, code, hour) keys of the blocks already stored among those of a write, and the
#: bytes of their frame keys (8 a point: random, so stored uncompressed; read without detoasting).
_STORED_BLOCKS: Final = (
    "SELECT source_id, code, hour, pg_column_size(frame_keys) FROM point_blocks "
    "WHERE source_id = ANY($3::int[]) AND hour >= $4 AND hour <= $5 "
    "AND (source_id, hour) IN (SELECT * FROM unnest($1::int[], $2::timestamptz[]))"
)
#: Bytes of COPY data sent at a time: the server stores one chunk while the client encodes the next.
_COPY_CHUNK: Final = 1 << 18

_DAY_US: Final = 86_400_000_000

#: Sort memory of one export's transaction (the server default, 4MB, sorts ~50k points in memory).
_SCAN_WORK_MEM: Final = "64MB"

#: SQLSTATE (exact, or its two-character class) -> (error class, reason).
_SQLSTATES: Final[dict[str, tuple[type[StorageError], str]]] = {
    "28P01": (AuthenticationFailed, "password authentication failed"),
    "28000": (AuthenticationFailed, "the server refused the user"),
    "3D000": (DatabaseNotFound, "the database does not exist"),
    "42P01": (SchemaMismatch, "a table is missing: run `witskit db upgrade`"),
    "42703": (SchemaMismatch, "a column is missing: run `witskit db upgrade`"),
    "42501": (StorageConfigError, "the user lacks a privilege"),
    "53100": (StorageFull, "the server's disk is full"),
    "25006": (DatabaseUnavailable, "the server is read-only (a standby, or a failover in progress)"),
    "40001": (DatabaseUnavailable, "serialization failure"),
    "40P01": (DatabaseUnavailable, "deadlock detected"),
    "55P03": (DatabaseUnavailable, "a lock could not be taken in time"),
    "57014": (DatabaseUnavailable, "the statement was cancelled (statement timeout)"),
    "08": (DatabaseUnavailable, "the connection failed"),
    "53": (DatabaseUnavailable, "the server is out of resources (connections, memory)"),
    "57": (DatabaseUnavailable, "the server is shutting down or restarting"),
    "58": (DatabaseUnavailable, "the server had an I/O error"),
}


#: Array literals of the code lists seen (a fleet's rigs send a few layouts), by the codes.
_CODES_LITERALS: dict[tuple[str, ...], str] = {}
_CODES_LITERALS_MAX: Final = 4096


async def _copy_stream(
    blocks: Sequence[tuple[int, Sequence[Block]]], *, summaries: bool = False
) -> AsyncIterator[bytes]:
    """A binary COPY stream of the blocks, in chunks: the server stores one while the next is made.

    ``summaries``: new blocks, with the summaries the client can make (:data:`SUMMARIZED_COLUMNS`).
    """
    chunk = [COPY_HEADER]
    size = len(COPY_HEADER)
    for sid, bs in blocks:
        for row in encode_blocks(sid, bs, summaries=summaries):
            chunk.append(row)
            size += len(row)
            if size >= _COPY_CHUNK:
                yield b"".join(chunk)
                chunk, size = [], 0
    chunk.append(COPY_TRAILER)
    yield b"".join(chunk)


def _element(text: str | None) -> str:
    """One element of an array literal: NULL, or the text quoted and escaped."""
    if text is None:
        return "NULL"
    return '"' + text.replace("\x00", "\ufffd").replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_literal(items: Iterable[str | None]) -> str:
    """A PostgreSQL text[] literal: every element quoted (a code or text may hold any character)."""
    return "{" + ",".join(map(_element, items)) + "}"


def _no_nul(text: str | None) -> str | None:
    """PostgreSQL text cannot hold U+0000: store U+FFFD instead (``frames.raw`` keeps the byte).

    A NUL on the wire would otherwise fail every retry of the write and stall the pipeline.
    """
    return text.replace("\x00", "\ufffd") if text and "\x00" in text else text


class PostgresBackend(BackendImpl):
    """PostgreSQL through asyncpg."""

    name = "postgresql"

    def __init__(self, url: ParsedURL) -> None:
        super().__init__(url)
        #: Month levels known to be attached and committed (see ``_ensure_partitions``).
        self.known_leaves: set[Month] = set()

    def engine_options(self, *, pool_size: int, timeout: float) -> dict[str, Any]:
        """Pool with pre-ping (a restarted server costs one failed checkout, not one failed write)."""
        return {
            "pool_size": pool_size,
            "pool_timeout": timeout,
            "pool_pre_ping": True,
            "connect_args": {
                "timeout": timeout,
                "server_settings": {
                    "application_name": "witskit",
                    # A 20,000-frame batch stages ~10 MB; the default 8 MB would spill it to disk.
                    "temp_buffers": "32MB",
                },
            },
        }

    async def setup(self, drv: Any, info: MutableMapping[Any, Any]) -> None:
        """Create the staging table once per connection, outside any transaction.

        Inside a write's transaction a rollback would drop it again while the flag said it exists.
        """
        if not info.get(_STAGE_READY):
            await drv.execute(_CREATE_STAGE)
            await drv.execute(_CREATE_BLOCK_STAGE)
            for statement in _CREATE_APPEND_STAGE:
                await drv.execute(statement)
            info[_STAGE_READY] = True

    async def begin(self, drv: Any) -> None:
        """BEGIN on the asyncpg connection."""
        await drv.execute("BEGIN")

    async def commit(self, drv: Any) -> None:
        """COMMIT."""
        await drv.execute("COMMIT")

    async def rollback(self, drv: Any) -> None:
        """ROLLBACK, if a transaction is open."""
        self.known_leaves.clear()
        if drv.is_in_transaction():
            await drv.execute("ROLLBACK")

    async def ensure_sources(self, drv: Any, names: Sequence[str], now: datetime) -> dict[str, int]:
        """INSERT ... ON CONFLICT (name) DO NOTHING, then read the ids."""
        await drv.execute(
            "INSERT INTO sources (name, created_at) SELECT n, $2 FROM unnest($1::text[]) AS n ORDER BY n "
            "ON CONFLICT (name) DO NOTHING",
            sorted(names),
            now,
        )
        rows = await drv.fetch("SELECT id, name FROM sources WHERE name = ANY($1::text[])", list(names))
        return {r["name"]: int(r["id"]) for r in rows}

    async def existing_many(
        self, drv: Any, wanted: Mapping[int, Sequence[int]], spans: Mapping[int, tuple[int, int]]
    ) -> dict[int, dict[int, tuple[int, bytes]]]:
        """One statement for every source of the batch (not one round trip per rig).

        One primary-key probe per wanted key (the LATERAL makes it so): a join of the whole
        list against the frames in the batch's time span, as it was, became a nested loop over
        every pair once the statement's plan was generic (a 1000-frame write of 1000 rigs
        compared 9 million pairs when the span held 9000 stored frames: 1.1 s). Each probe is
        bounded by the batch's time span too, so it reads only that month's leaves.
        """
        sids = [sid for sid, keys in wanted.items() for _ in keys]
        keys = [key for ks in wanted.values() for key in ks]
        rows = await drv.fetch(
            "SELECT f.source_id, f.frame_key, f.frame_time, f.raw "
            "FROM unnest($1::int[], $2::bigint[]) AS w(sid, k) CROSS JOIN LATERAL ("
            "SELECT source_id, frame_key, frame_time, raw FROM frames "
            "WHERE source_id = w.sid AND frame_key = w.k AND frame_time >= $3 AND frame_time <= $4"
            ") AS f",
            sids,
            keys,
            from_micros(min(lo for lo, _ in spans.values())),
            from_micros(max(hi for _, hi in spans.values())),
        )
        out: dict[int, dict[int, tuple[int, bytes]]] = {sid: {} for sid in wanted}
        for r in rows:
            out[int(r[0])][int(r[1])] = (to_micros(r[2]), bytes(r[3]))
        return out

    async def insert_many(
        self,
        drv: Any,
        groups: Mapping[int, Sequence[Pending]],
        info: MutableMapping[Any, Any],
        *,
        contended: bool = False,
    ) -> list[tuple[int, list[Pending], int]]:
        """The frames: a bulk write's COPYed into ``frames``, the others to the stage and moved
        (their points with them, when they become rows); then one COPY of the hourly blocks (a bulk
        write's, and those of hours with ``_NEW_BLOCK_MIN_FRAMES`` frames or more)."""
        if not groups:
            return []
        await self._ensure_partitions(drv, groups, info)
        # A bulk write's frames (client-made blocks) go straight into ``frames``: the caller has
        # looked them up and kept only those not stored (``Store._new_frames``), so the stage and
        # its INSERT ... ON CONFLICT (a third of such a write's server time) would only catch a
        # concurrent writer storing the same frames meanwhile; the key then fails the COPY and the
        # write is retried (WriteRace) through the stage, which skips them. In key order, as the
        # stage's move: writers with overlapping frames wait for each other, never deadlock.
        # Only when every source of the write goes so: frames COPYed straight and others moved
        # through the stage would not be inserted in one key order (two such writers could deadlock).
        direct = (
            dict(groups)
            if self.client_blocks
            and not contended
            and all(len(frames) >= _BLOCK_MIN_FRAMES for frames in groups.values())
            else {}
        )
        moved: set[tuple[int, int]] = set()
        if direct:
            try:
                await drv.copy_records_to_table(
                    "frames",
                    records=[
                        (sid, p.key, p.received_at, p.time, p.raw, _no_nul(p.errors))
                        for sid in sorted(direct)
                        for p in sorted(direct[sid], key=_by_key)
                    ],
                    columns=_FRAME_COLS,
                )
            except Exception as exc:
                if getattr(exc, "sqlstate", None) == "23505":  # unique_violation: a concurrent writer
                    raise WriteRace from exc
                raise
            moved.update((sid, p.key) for sid, frames in direct.items() for p in frames)
        rest = [(sid, frames) for sid, frames in groups.items() if sid not in direct]
        # Frames whose points become new blocks (``_NEW_BLOCK_MIN_FRAMES``), by source.
        fresh = await self._fresh_hours(drv, rest) if self.client_blocks else {}
        if rest:
            await drv.copy_records_to_table(_STAGE, records=self._staged(rest, fresh), columns=_STAGE_COLS)
            moved.update((int(r[0]), int(r[1])) for r in await drv.fetch(_MOVE_ALL_FRAMES))
        out: list[tuple[int, list[Pending], int]] = []
        staged: list[Iterator[tuple[Any, ...]]] = []
        blocks: dict[int, list[Block]] = {}
        block_points = 0
        for sid, frames in groups.items():
            new = [p for p in frames if (sid, p.key) in moved]
            if sid in fresh:
                made = make_blocks([p for p in new if p.key in fresh[sid]])
                if made:
                    blocks[sid] = made
                count = sum(len(p.codes) for p in new)
            elif len(frames) >= _BLOCK_MIN_FRAMES:
                if self.client_blocks:
                    made = make_blocks(new)
                    if made:  # frames without a point make no block
                        blocks[sid] = made
                    count = sum(len(p.codes) for p in new)
                else:
                    rows, count = self._point_rows(sid, new)
                    staged.append(rows)
                block_points += count
            else:
                count = sum(len(p.codes) for p in new)
            out.append((sid, new, count))
        if blocks:
            await self._copy_blocks(drv, blocks, staged=fresh.keys())
        elif block_points:
            await drv.copy_records_to_table(
                _BLOCK_STAGE, records=chain.from_iterable(staged), columns=_POINT_COLS
            )
            await drv.execute(_MOVE_BLOCKS)
        return out

    #: False: a bulk write's blocks are made by the server from staged point rows (``_MOVE_BLOCKS``),
    #: the reference the client-made blocks are tested against.
    client_blocks = True

    async def _stored_blocks(
        self, drv: Any, blocks: Mapping[int, Sequence[Block]]
    ) -> set[tuple[int, str, int]]:
        """The (source id, code, hour in µs) of ``blocks`` that are stored already."""
        return set(await self._stored_keys(drv, {(sid, b.hour_us) for sid, bs in blocks.items() for b in bs}))

    @staticmethod
    async def _stored_keys(drv: Any, pairs: set[tuple[int, int]]) -> dict[tuple[int, str, int], int]:
        """The (source id, code, hour in µs) of the blocks stored for these (source id, hour in µs),
        each with about how many points it holds."""
        hours = sorted(pairs)
        rows = await drv.fetch(
            _STORED_BLOCKS,
            [sid for sid, _ in hours],
            [from_micros(h) for _, h in hours],
            sorted({sid for sid, _ in hours}),
            from_micros(min(h for _, h in hours)),
            from_micros(max(h for _, h in hours)),
        )
        # 24 bytes of array header, then 8 a point.
        return {
            (int(r[0]), str(r[1]).strip(), to_micros(r[2])): max(int(r[3] or 0) - 24, 0) // 8 for r in rows
        }

    async def _fresh_hours(
        self, drv: Any, groups: Sequence[tuple[int, Sequence[Pending]]]
    ) -> dict[int, dict[int, Pending]]:
        """Per source with fewer than ``_BLOCK_MIN_FRAMES`` frames in the write, its frames (by key)
        in the UTC hours that have ``_NEW_BLOCK_MIN_FRAMES`` of them and no stored block larger than
        ``_APPEND_RATIO`` times that."""
        by_hour: dict[tuple[int, int], list[Pending]] = {}
        for sid, frames in groups:
            if _NEW_BLOCK_MIN_FRAMES <= len(frames) < _BLOCK_MIN_FRAMES:
                for p in frames:
                    by_hour.setdefault((sid, p.time_us - p.time_us % HOUR_US), []).append(p)
        candidates = {pair for pair, frames in by_hour.items() if len(frames) >= _NEW_BLOCK_MIN_FRAMES}
        if not candidates:
            return {}
        largest: dict[tuple[int, int], int] = {}
        for (sid, _, hour), points in (await self._stored_keys(drv, candidates)).items():
            largest[sid, hour] = max(largest.get((sid, hour), 0), points)
        out: dict[int, dict[int, Pending]] = {}
        for sid, hour in sorted(candidates):
            frames = by_hour[sid, hour]
            if largest.get((sid, hour), 0) <= _APPEND_RATIO * len(frames):
                out.setdefault(sid, {}).update((p.key, p) for p in frames)
        return out

    async def _copy_blocks(
        self, drv: Any, blocks: Mapping[int, Sequence[Block]], staged: Set[int] = frozenset()
    ) -> None:
        """COPY client-made blocks: appends through the stage, new blocks straight into the table,
        but those of the ``staged`` sources (a backlog's bundles), which go through the stage too.

        A block that another writer creates between the lookup and a COPY straight into the table
        fails the COPY on the key: the write is retried (:class:`WriteRace`), and then appends to
        it. Through the stage it is appended to at once (after that writer's commit): two workers
        with bundles of one rig's new hour, routine in a fleet's catch-up, do not redo a write.
        """
        stored = await self._stored_blocks(drv, blocks)
        fresh: list[tuple[int, list[Block]]] = []
        append: list[tuple[int, list[Block]]] = []
        new_staged: list[tuple[int, list[Block]]] = []
        for sid in sorted(blocks):
            old: list[Block] = []
            new: list[Block] = []
            for b in blocks[sid]:
                (old if (sid, b.code, b.hour_us) in stored else new).append(b)
            append.append((sid, old))
            (new_staged if sid in staged else fresh).append((sid, new))
        if any(bs for _, bs in append) or any(bs for _, bs in new_staged):
            if any(bs for _, bs in append):
                await drv.copy_to_table(
                    _APPEND_STAGE, source=_copy_stream(append), columns=BLOCK_COLUMNS, format="binary"
                )
            if any(bs for _, bs in new_staged):
                await drv.copy_to_table(
                    _APPEND_STAGE,
                    source=_copy_stream(new_staged, summaries=True),
                    columns=SUMMARIZED_COLUMNS,
                    format="binary",
                )
            await drv.execute(_APPEND_BLOCKS)
        if any(bs for _, bs in fresh):
            try:
                await drv.copy_to_table(
                    "point_blocks",
                    source=_copy_stream(fresh, summaries=True),
                    columns=SUMMARIZED_COLUMNS,
                    format="binary",
                )
            except Exception as exc:
                if getattr(exc, "sqlstate", None) == "23505":  # unique_violation: a concurrent writer
                    raise WriteRace from exc
                raise

    @classmethod
    def _staged(
        cls, groups: Sequence[tuple[int, Sequence[Pending]]], fresh: Mapping[int, Mapping[int, Pending]]
    ) -> Iterator[tuple[Any, ...]]:
        """The stage rows of a write: a frame whose points become rows carries them as arrays, one
        whose points go to blocks (a bulk write's, a fresh hour's) carries NULLs."""
        for sid, frames in groups:
            if sid in fresh:
                rows: Sequence[Pending] = [p for p in frames if p.key not in fresh[sid]]
                bare: Iterable[Pending] = fresh[sid].values()
            elif len(frames) < _BLOCK_MIN_FRAMES:
                rows, bare = frames, ()
            else:
                rows, bare = (), frames
            yield from cls._stage_records(sid, rows)
            for p in bare:
                yield (sid, p.key, p.received_at, p.time, p.raw, _no_nul(p.errors), None, None, None)

    @staticmethod
    def _stage_records(sid: int, frames: Sequence[Pending]) -> Iterator[tuple[Any, ...]]:
        """Stage rows of frames whose points become rows: each with its points as array literals.

        ``str()`` of a list of numbers is the array literal but for its brackets (and ``None`` for
        ``NULL``), made in C; the codes' literal is made once per layout.
        """
        cache = _CODES_LITERALS
        for p in frames:
            codes = tuple(p.codes)
            lit = cache.get(codes)
            if lit is None:
                if len(cache) >= _CODES_LITERALS_MAX:
                    cache.clear()
                lit = cache[codes] = _array_literal(codes)
            values = p.values
            texts = None
            if str in set(map(type, values)):
                texts = _array_literal([v if type(v) is str else None for v in values])
                values = [None if type(v) is str else v for v in values]
            nums = "{" + str(list(values))[1:-1].replace("None", "NULL") + "}"
            yield (sid, p.key, p.received_at, p.time, p.raw, _no_nul(p.errors), lit, nums, texts)

    async def _ensure_partitions(
        self, drv: Any, groups: Mapping[int, Sequence[Pending]], info: MutableMapping[Any, Any]
    ) -> None:
        """Make sure the month levels of the batch exist (see ``partitions.py``).

        Months seen attached by an earlier write are not looked up again; the memory is dropped on
        any rollback (a month created by a rolled-back write, or dropped by retention since, is then
        looked up afresh).
        """
        # A span per UTC day that has frames, never the batch's (first, last): one frame with a
        # wild clock (a corrupt date, 1970 among today's) would make every month between a table,
        # for good, under the lock every writer waits on.
        days = {p.time_us // _DAY_US for ps in groups.values() for p in ps}
        known = self.known_leaves
        needed = months_for([(day * _DAY_US, day * _DAY_US) for day in days]) - known
        if not needed:
            return
        created = await ensure_months(drv, needed)
        if created:
            logger.info("storage: created partitions %s", ", ".join(m.name("points") for m in created))
        # Months that existed before this write are safe to remember; the new ones only after commit.
        known.update(needed - set(created))

    def _point_rows(self, source_id: int, new: Sequence[Pending]) -> tuple[Iterator[tuple[Any, ...]], int]:
        """The point rows of ``new`` frames, sorted by code, as a lazy iterator, and their count.

        Lazy, so COPY encodes and sends rows as they are made: the server starts inserting the
        first rows while the client is still making the rest, instead of idling while a list of
        every row is built first (the two run on different cores).
        """
        by_code: dict[str, list[Iterator[tuple[Any, ...]]]] = {}
        count = 0
        sid = repeat(source_id)
        for lay in layouts(new):
            keys, times = lay.keys, [p.time for p in lay.frames]
            for idx, (code, col) in enumerate(zip(lay.codes, lay.columns, strict=True)):
                nums: Iterable[Any]
                texts: Iterable[str | None]
                if str in set(map(type, col)):
                    nums, texts = split(col)
                    if any("\x00" in t for t in texts if t):
                        texts = [_no_nul(t) for t in texts]
                else:  # a numeric column (the common case): no per-value split
                    nums, texts = col, repeat(None)
                by_code.setdefault(code, []).append(
                    zip(keys, times, nums, sid, repeat(idx), repeat(code), texts, strict=False)
                )
                count += len(col)
        return chain.from_iterable(part for code in sorted(by_code) for part in by_code[code]), count

    async def bump_sources(self, drv: Any, bumps: Sequence[tuple[int, int, int, datetime, datetime]]) -> None:
        """One UPDATE for every source of the batch, its rows locked in id order first."""
        ids, frames, points, firsts, lasts = (list(col) for col in zip(*sorted(bumps), strict=True))
        # An UPDATE ... FROM locks rows in the order of its join, which no one controls: take the
        # locks here, in id order, so concurrent writers cannot each hold one the other waits for.
        await drv.execute("SELECT 1 FROM sources WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE", ids)
        await drv.execute(
            "UPDATE sources s SET frame_count = s.frame_count + u.f, point_count = s.point_count + u.p, "
            "first_time = LEAST(s.first_time, u.a), last_time = GREATEST(s.last_time, u.b) "
            "FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[]) "
            "AS u(id, f, p, a, b) WHERE s.id = u.id",
            ids,
            frames,
            points,
            firsts,
            lasts,
        )

    points_relation = "points_all"
    has_spans = True
    frames_once = True

    #: µs computed by the server: no datetime object per row on the client.
    time_us_sql = "(EXTRACT(EPOCH FROM p.time) * 1000000)::int8"

    def placeholder(self, n: int) -> str:
        """asyncpg's numbered placeholder."""
        return f"${n}"

    def bind_time(self, us: int) -> Any:
        """An aware datetime for the timestamptz column."""
        return from_micros(us)

    async def scan(
        self, drv: Any, where: ScanFilter, batch_size: int
    ) -> AsyncGenerator[list[RawPoint], None]:
        """A server-side cursor in a read-only transaction, ``batch_size`` rows per fetch; a range
        of at most a week is read hour by hour from the blocks' arrays instead
        (:mod:`witskit.storage.block_scan`).

        ``work_mem`` is raised for this transaction only: the sort by time of a long export then
        stays in memory instead of spilling to temporary files.
        """
        if (
            where.lo_us is not None
            and where.hi_us is not None
            and where.hi_us - where.lo_us <= MAX_HOURS * HOUR_US
        ):
            async for rows in scan_hours(drv, where, batch_size, where.lo_us, where.hi_us):
                yield rows
            return
        sql, args = self.scan_sql(where)
        async with drv.transaction(readonly=True):
            await drv.execute(f"SET LOCAL work_mem = '{_SCAN_WORK_MEM}'")
            # The planner estimates an unnested block at a few rows, and would then join the
            # frames CTE in a nested loop: one scan of the CTE per point. Hash or merge instead.
            await drv.execute("SET LOCAL enable_nestloop = off")
            # That penalty's cost would also cross JIT's thresholds: compiling took 650 ms of a
            # 1-hour window's 1.2 s. A scan is I/O and sorting, nothing JIT speeds up.
            await drv.execute("SET LOCAL jit = off")
            cur = await drv.cursor(sql, *args)
            while rows := await cur.fetch(batch_size):
                yield rows

    async def size_on_disk(self, conn: AsyncConnection) -> int | None:
        """Tables, indexes and TOAST of WitsKit's tables and all their partitions (not other tables)."""
        result = await conn.execute(
            text(
                "SELECT COALESCE(SUM(pg_total_relation_size(t.relid)), 0) FROM pg_class c "  # noqa: S608
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "CROSS JOIN LATERAL (SELECT c.oid AS relid WHERE c.relkind = 'r' "
                "UNION SELECT relid FROM pg_partition_tree(c.oid) WHERE c.relkind = 'p' AND isleaf) t "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname IN "
                f"('sources', 'frames', 'points', 'point_blocks', '{VERSION_TABLE}')"
            )
        )
        return int(result.scalar_one())

    def classify(self, exc: BaseException) -> Classified:
        """By SQLSTATE for server errors; connection-level client errors are transient."""
        state = getattr(exc, "sqlstate", None)
        if isinstance(state, str) and state:
            hit = _SQLSTATES.get(state) or _SQLSTATES.get(state[:2])
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else state
            if hit is not None:
                cls, reason = hit
                return cls, f"{reason} ({message})"
            return StorageError, f"{message} (SQLSTATE {state})"
        if type(exc).__module__.startswith("asyncpg"):
            # By class name: asyncpg ships no type information, and these classes are stable.
            kinds = {c.__name__ for c in type(exc).__mro__}
            if "ClientConfigurationError" in kinds:
                return StorageConfigError, str(exc)
            text_ = str(exc).lower()
            if "ConnectionDoesNotExistError" in kinds or "closed" in text_:
                return DatabaseUnavailable, f"the connection was lost ({exc})"
            return StorageError, f"{type(exc).__name__}: {exc}"
        return None
