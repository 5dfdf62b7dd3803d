"""The SQL schema (SQLAlchemy Core) and the frame key that makes every write idempotent.

Narrow layout, one row per data point::

    sources (id PK, name UNIQUE, created_at, first_time, last_time, frame_count, point_count)
    frames  (source_id, frame_key, received_at, frame_time, raw, errors)     PK (source_id, frame_key)
            INDEX (source_id, frame_time)
    points  (source_id, frame_key, idx, time, code, value_num, value_text)
            PK (source_id, code, time, frame_key, idx)

On PostgreSQL both tables are partitioned by month, then by source (revision 0006,
``witskit.storage.partitions``), and the frames key there is (source_id, frame_key, frame_time): a
partitioned table's unique key must hold its partition column. There, closed hours of ``points``
are compacted into ``point_blocks`` (revision 0009: one row of arrays per source, code and hour,
``witskit.storage.blocks``) and read through the view ``points_all``.

``frames`` keeps every frame's bytes exactly as received, so any stored value can be traced to the
bytes it came from (``points.frame_key`` -> ``frames.raw``). ``points.idx`` is the point's position
in its frame. A numeric value goes to ``value_num``, a text value (type A items) to ``value_text``,
and a null reading keeps its row with both NULL: a sensor that reports "no reading" is information.

Why the points key is (source_id, code, time, frame_key, idx): ``(source_id, frame_key, idx)`` is
unique by construction (``time`` and ``code`` are fixed by the frame and the position in it), so
adding them to the key keeps exactly the same uniqueness, and the one B-tree then also serves every
query by (source, code, time). A separate (source, code, time) index would cost a second B-tree
insert per point, twice the index bytes, and on clustered engines (SQLite ``WITHOUT ROWID``, InnoDB)
a random-order table, since ``frame_key`` is a hash. Measured in ``docs/storage.md``: about twice the
write speed and half the bytes per point.

Times are UTC. PostgreSQL stores ``timestamptz``; MariaDB/MySQL ``DATETIME(6)`` holding the UTC wall
time (DATETIME has no time zone and is not converted by the session's ``time_zone``, unlike
``TIMESTAMP``, which also ends in 2038); SQLite an integer count of microseconds since 1970-01-01 UTC
(8 bytes instead of a 26-character string, and compared as integers). :class:`UTCDateTime` does the
conversions, so queries see timezone-aware UTC datetimes on every backend.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    CHAR,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    column,
    table,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

# The frame key and the time conversions live in a module without SQLAlchemy (a file reader
# process of `witskit import` computes keys); they are part of this module's interface too.
from witskit.storage.prepare import (
    DEFAULT_SOURCE,
    _utc,
    frame_key,
    from_micros,
    to_micros,
)

__all__ = [
    "DEFAULT_SOURCE",
    "VERSION_TABLE",
    "UTCDateTime",
    "alarm_events",
    "fleet_rigs",
    "frame_key",
    "frames",
    "from_micros",
    "import_progress",
    "metadata",
    "point_blocks",
    "point_keys",
    "points",
    "points_all",
    "postgres_metadata",
    "sources",
    "to_micros",
]

#: Alembic's version table, prefixed so a database shared with another Alembic project is safe.
VERSION_TABLE: Final = "witskit_alembic_version"


class UTCDateTime(TypeDecorator[datetime]):
    """A UTC instant: ``timestamptz`` on PostgreSQL, ``DATETIME(6)`` UTC on MySQL, int µs on SQLite.

    Binds any aware datetime (converted to UTC) or a naive one (taken as UTC); results are always
    timezone-aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return to_micros(value)
        if dialect.name in ("mysql", "mariadb"):
            return _utc(value).replace(tzinfo=None)
        return _utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_micros(int(value))
        if isinstance(value, datetime):
            return _utc(value)
        raise TypeError(f"unexpected time value {value!r} from {dialect.name}")


def _code_type() -> TypeEngine[str]:
    # Byte-wise collations: codes compare as in every other backend, and faster than a locale's rules.
    return (
        CHAR(4)
        .with_variant(CHAR(4, collation="C"), "postgresql")
        .with_variant(mysql.CHAR(4, charset="ascii", collation="ascii_bin"), "mysql", "mariadb")
    )


def _blob_type() -> TypeEngine[bytes]:
    # MySQL's BLOB stops at 65,535 bytes and the parser allows 64 KiB frames (and more if asked).
    return LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")


def _long_text_type() -> TypeEngine[str]:
    # A frame may carry up to 1,000 error messages: more than MySQL's 64 KB TEXT.
    return Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


#: Constraint names are fixed so migrations can refer to them on every backend (primary keys keep
#: each backend's default name: MySQL's is always PRIMARY).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    }
)

#: Table options: InnoDB, and a binary collation so names compare byte-wise as in SQLite and
#: PostgreSQL ("Rig1" and "rig1" are two sources everywhere).
_MYSQL: Final[dict[str, Any]] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # Maintained by Store.write in the same transaction as the rows they count, so listing sources
    # never scans the points table.
    Column("first_time", UTCDateTime(), nullable=True),
    Column("last_time", UTCDateTime(), nullable=True),
    Column("frame_count", BigInteger, nullable=False, server_default="0"),
    Column("point_count", BigInteger, nullable=False, server_default="0"),
    **_MYSQL,
)

frames = Table(
    "frames",
    metadata,
    Column("source_id", Integer, nullable=False),
    Column("frame_key", BigInteger, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("frame_time", UTCDateTime(), nullable=False),
    Column("raw", _blob_type(), nullable=False),
    Column("errors", _long_text_type(), nullable=True),
    PrimaryKeyConstraint("source_id", "frame_key"),
    # Revision 0003: a source's frames in time order (what `witskit serve` tails for its live
    # WebSocket, and raw frames by time range) without reading every frame of the source.
    Index("ix_frames_source_id_frame_time", "source_id", "frame_time"),
    **_MYSQL,
)

points = Table(
    "points",
    metadata,
    # Column order is PostgreSQL's physical order: 8-byte columns first, then 4, 2 and the
    # variable-length ones, which leaves no alignment padding (8 bytes less per row).
    Column("frame_key", BigInteger, nullable=False),
    Column("time", UTCDateTime(), nullable=False),
    Column("value_num", Double(), nullable=True),
    Column("source_id", Integer, nullable=False),
    Column("idx", SmallInteger, nullable=False),
    Column("code", _code_type(), nullable=False),
    Column("value_text", Text(), nullable=True),
    PrimaryKeyConstraint("source_id", "code", "time", "frame_key", "idx"),
    # Rows are ~40 bytes: clustering them by the key stores each point once (no rowid, no second
    # B-tree) and makes a (source, code, time) range a sequential read.
    sqlite_with_rowid=False,
    **_MYSQL,
)

#: PostgreSQL only (revision 0009): the tables other engines do not have.
postgres_metadata = MetaData()

#: One row per (source, code, UTC hour): the hour's points as aligned arrays (in time order as
#: compaction writes them; a bulk write appends in write order, and readers always order by time);
#: ``texts`` is NULL when no value of the hour is text (``witskit.storage.blocks``).
point_blocks = Table(
    "point_blocks",
    postgres_metadata,
    Column("source_id", Integer, nullable=False),
    Column("code", _code_type(), nullable=False),
    Column("hour", UTCDateTime(), nullable=False),
    Column("times", ARRAY(DateTime(timezone=True)), nullable=False),
    Column("frame_keys", ARRAY(BigInteger), nullable=False),
    Column("idxs", ARRAY(SmallInteger), nullable=False),
    Column("nums", ARRAY(Double()), nullable=False),
    Column("texts", ARRAY(Text()), nullable=True),
    # Revision 0011: per-minute summaries (``witskit.storage.blocks.SUMMARY_COLUMNS``), NULL for a
    # block whose arrays are not in minute order.
    Column("m_count", ARRAY(Integer), nullable=True),
    Column("m_nulls", ARRAY(Integer), nullable=True),
    Column("m_min", ARRAY(Double()), nullable=True),
    Column("m_max", ARRAY(Double()), nullable=True),
    Column("m_sum", ARRAY(Double()), nullable=True),
    Column("m_t0", ARRAY(DateTime(timezone=True)), nullable=True),
    Column("m_n0", ARRAY(Integer), nullable=True),
    Column("m_v0", ARRAY(Double()), nullable=True),
    Column("m_t1", ARRAY(DateTime(timezone=True)), nullable=True),
    Column("m_n1", ARRAY(Integer), nullable=True),
    Column("m_v1", ARRAY(Double()), nullable=True),
    Column("m_offs", ARRAY(Integer), nullable=True),
    PrimaryKeyConstraint("source_id", "code", "hour"),
    # The blocks compaction has still to summarize (a bulk write's), found without a scan.
    Index("point_blocks_pending", "hour", postgresql_where=text("m_offs IS NULL")),
)

# Revision 0009, PostgreSQL only: the views over rows and hourly blocks (``witskit.storage.blocks``).
# Not in ``metadata``: views are made by the migration, and read only where the backend has them.
points_all = table(
    "points_all",
    column("frame_key", BigInteger()),
    column("time", UTCDateTime()),
    column("value_num", Double()),
    column("source_id", Integer()),
    column("idx", SmallInteger()),
    column("code", String()),
    column("value_text", Text()),
    column("span_start", UTCDateTime()),
)
point_keys = table("point_keys", column("source_id", Integer()), column("code", String()))

# Revision 0004: how far `witskit import` got in each file (see witskit.storage.imports), so an
# interrupted import resumes after the last committed batch instead of decoding the file again.
import_progress = Table(
    "import_progress",
    metadata,
    # sha256 of (source name, absolute path): a path can be longer than MySQL lets a key be.
    Column("file_key", String(64), primary_key=True),
    Column("source", String(255), nullable=False),
    Column("path", Text(), nullable=False),
    # The file as it was read: a file whose head or size no longer agree is imported afresh.
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("head_len", Integer, nullable=False),
    Column("head_sha256", String(64), nullable=False),
    # Just after the last frame of the last committed batch, and the input line there.
    Column("byte_offset", BigInteger, nullable=False),
    Column("line", BigInteger, nullable=False),
    Column("frames", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    **_MYSQL,
)

# Revision 0005: alarm events (witskit.storage.alarm_events): one row per firing or clearing of an
# alarm rule, keyed by the event's id (a hash of source, rule, state and frame time), so a spool
# replay that fires the same alarm again stores nothing new.
alarm_events = Table(
    "alarm_events",
    metadata,
    Column("event_id", String(32), primary_key=True),
    Column("time", UTCDateTime(), nullable=False),
    Column("stored_at", UTCDateTime(), nullable=False),
    Column("value", Double(), nullable=True),
    Column("source", String(255), nullable=False),
    Column("rule", String(255), nullable=False),
    Column("rule_type", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("code", String(8), nullable=False),
    Column("unit", String(16), nullable=False),
    Column("message", Text(), nullable=False),
    # Filled when an operator acknowledges the event (the alarm API, issue 15).
    Column("acknowledged_at", UTCDateTime(), nullable=True),
    Column("acknowledged_by", String(255), nullable=True),
    # The history of one rig, newest first, and the history of every rig in a time range.
    Index("ix_alarm_events_source_time", "source", "time"),
    Index("ix_alarm_events_time", "time"),
    **_MYSQL,
)

# Revision 0010: the fleet view (witskit.storage.fleet_status): per rig, the last frame a central
# worker committed, when the rig's edge received it and when it was committed. One row per rig,
# moved forward by every commit, never back (a redelivered old frame does not make a rig look late).
fleet_rigs = Table(
    "fleet_rigs",
    metadata,
    Column("source", String(255), primary_key=True),
    Column("edge", String(64), nullable=False),
    Column("worker", String(255), nullable=False),
    Column("last_received_at", UTCDateTime(), nullable=False),
    Column("last_committed_at", UTCDateTime(), nullable=False),
    Column("lag_seconds", Double(), nullable=False),
    **_MYSQL,
)
