"""Ingest sources of a running service: listed, added, started and stopped at run time.

A *connection* is a named source URL. Started, it is a :class:`~witskit.transport.base.Source`
read by the pipeline (:meth:`Pipeline.add_source <witskit.pipeline.Pipeline.add_source>`);
stopped, its source is closed and removed, and starting it again opens a new one from the URL.
The name is the source name frames are stored under.

Through the API only network, serial and simulated sources may be added: a ``file://`` URL would
let a caller make the server read any file it can open, so files come from the pipeline file
(which only the operator of the machine writes).

Connections added through the API are kept in the ``connections`` table (revision 0003, kept by
:class:`ConnectionStore`) as :class:`StoredConnection` rows, their URL as given (it may carry a
password: it is shown and logged only through :attr:`Connection.display_url`); stopping and
starting one sets its ``enabled`` flag, removing it deletes the row. :meth:`Service.open
<witskit.service.runtime.Service.open>` restores them after the pipeline file's sources.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Boolean, Column, String, Table, Text, insert, select, true, update

from witskit.errors import UsageError
from witskit.pipeline import Pipeline
from witskit.service._tables import TableStore, clip, metadata, utcnow
from witskit.storage.schema import UTCDateTime
from witskit.transport.base import LinkState, LinkStatus, Source

__all__ = [
    "API_SCHEMES",
    "STORED_NAME_MAX",
    "Connection",
    "ConnectionManager",
    "ConnectionNotFound",
    "ConnectionStore",
    "StoredConnection",
    "connections",
    "open_named_source",
    "scheme_of",
]

log = logging.getLogger("witskit.service.connections")

#: Schemes that may be added at run time through the API.
API_SCHEMES: Final = frozenset({"tcp", "tls", "tcp-listen", "tls-listen", "serial", "sim"})
#: The longest name of a connection kept in the database (the ``connections.name`` column).
STORED_NAME_MAX: Final = 100
#: Schemes whose sources accept a ``name`` keyword (the simulator takes it positionally).
_NAMED: Final = frozenset({"tcp", "tls", "tcp-listen", "tls-listen", "file"})
#: Schemes whose sources are reconnecting links that report their state (``on_status``).
_LINKS: Final = frozenset({"tcp", "tls", "serial", "tcp-listen", "tls-listen"})


class ConnectionNotFound(UsageError):
    """No connection by that name."""


def scheme_of(url: str) -> str:
    """The URL's scheme, lower case ("" when there is none)."""
    head, sep, _ = url.strip().partition("://")
    return head.lower() if sep else ""


def open_named_source(
    url: str,
    name: str | None = None,
    options: dict[str, Any] | None = None,
    *,
    on_status: Callable[[LinkStatus], None] | None = None,
) -> Source:
    """A source for ``url`` named ``name`` (``sim://`` is a scheme ``open_source`` always knows)."""
    from witskit.transport.urls import open_source

    opts = dict(options or {})
    scheme = scheme_of(url)
    if on_status is not None and scheme in _LINKS:
        opts.setdefault("on_status", on_status)
    if name and scheme in _NAMED:
        opts.setdefault("name", name)
    source = open_source(url, **opts)
    if name and source.name != name:
        source.name = name  # read when iteration starts, so renaming before that is safe
    return source


connections = Table(
    "connections",
    metadata,
    Column("name", String(STORED_NAME_MAX), primary_key=True),
    Column("url", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("created_by", String(255), nullable=True),
)


@dataclass(frozen=True, slots=True)
class StoredConnection:
    """A connection added through the API, as the database keeps it."""

    name: str
    url: str = field(repr=False)  # as given: it may carry a password
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None


class ConnectionStore(TableStore):
    """The ``connections`` table: the connections added through the API."""

    async def list_connections(self) -> list[StoredConnection]:
        """Every kept connection, by name."""
        async with self._db.read("list the connections of") as conn:
            rows = (await conn.execute(select(connections).order_by(connections.c.name))).all()
        return [StoredConnection(**r._mapping) for r in rows]

    async def add_connection(
        self,
        name: str,
        url: str,
        *,
        enabled: bool = True,
        created_by: str | None = None,
        created_at: datetime | None = None,
    ) -> None:
        """Keep a connection (its URL as given); :class:`UsageError` when the name is kept already."""
        if not 0 < len(name) <= STORED_NAME_MAX:
            raise UsageError(
                f"a connection added through the API is named with 1-{STORED_NAME_MAX} characters"
            )
        now = utcnow()
        async with self._db.write("add a connection to") as conn:
            taken = (await conn.execute(select(connections.c.name).where(connections.c.name == name))).first()
            if taken is not None:
                raise UsageError(f"a connection named {name!r} already exists")
            await conn.execute(
                insert(connections).values(
                    name=name,
                    url=url,
                    enabled=enabled,
                    created_at=created_at or now,
                    updated_at=now,
                    created_by=clip(created_by, 255),
                )
            )

    async def set_connection_enabled(self, name: str, enabled: bool) -> bool:
        """Mark a kept connection started or stopped; False when none is kept by that name."""
        async with self._db.write("update a connection in") as conn:
            result = await conn.execute(
                update(connections)
                .where(connections.c.name == name)
                .values(enabled=enabled, updated_at=utcnow())
            )
        return bool(result.rowcount)

    async def remove_connection(self, name: str) -> bool:
        """Forget a kept connection; False when none is kept by that name."""
        async with self._db.write("remove a connection from") as conn:
            result = await conn.execute(connections.delete().where(connections.c.name == name))
        return bool(result.rowcount)


@dataclass
class Connection:
    """A named source URL and, while started, its source."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    source: Source | None = None
    added_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    last_status: LinkStatus | None = None

    @property
    def transport(self) -> str:
        """The URL scheme (the ``transport_type`` label of the metrics)."""
        return scheme_of(self.url)

    @property
    def running(self) -> bool:
        """True while started."""
        return self.source is not None

    @property
    def state(self) -> str:
        """``stopped``, ``running`` (sources without a link), or the link's state."""
        if self.source is None:
            return "stopped"
        state = getattr(self.source, "state", None)
        if isinstance(state, LinkState):
            return state.value
        return "running"

    @property
    def connected(self) -> bool:
        """True when started and (for a link) connected."""
        return self.state in ("connected", "running")

    @property
    def display_url(self) -> str:
        """The URL without any password it may carry."""
        from witskit.security.logging import redact_text
        from witskit.transport.urls import redact_url

        return redact_text(redact_url(self.url))


class ConnectionManager:
    """The connections of one pipeline (see the module docstring)."""

    def __init__(
        self, pipeline: Pipeline, *, on_status: Callable[[Connection, LinkStatus], None] | None = None
    ) -> None:
        self.pipeline = pipeline
        self._connections: dict[str, Connection] = {}
        self._on_status = on_status

    def __iter__(self) -> Any:
        return iter(list(self._connections.values()))

    def __len__(self) -> int:
        return len(self._connections)

    def get(self, name: str) -> Connection:
        """The connection, or :class:`ConnectionNotFound`."""
        try:
            return self._connections[name]
        except KeyError:
            raise ConnectionNotFound(f"no connection {name!r}") from None

    def _open(self, conn: Connection) -> Source:
        def status(event: LinkStatus) -> None:
            conn.last_status = event
            if self._on_status is not None:
                self._on_status(conn, event)

        return open_named_source(conn.url, conn.name, conn.options, on_status=status)

    def add(
        self,
        url: str,
        *,
        name: str | None = None,
        options: dict[str, Any] | None = None,
        start: bool = True,
        from_api: bool = False,
    ) -> Connection:
        """Add a connection (and start it); the URL is checked now, nothing connects yet."""
        url = url.strip()
        if from_api and scheme_of(url) not in API_SCHEMES:
            raise UsageError(
                f"{scheme_of(url) or 'this'}:// sources cannot be added through the API "
                f"(allowed: {', '.join(sorted(API_SCHEMES))}); put them in the pipeline file"
            )
        if name is not None and not (0 < len(name) <= 255):
            raise UsageError("a connection name is 1-255 characters")
        conn = Connection(name=name or "", url=url, options=dict(options or {}))
        source = self._open(conn)  # a bad URL fails here, before anything is registered
        conn.name = source.name
        if from_api and (not conn.name.isprintable() or conn.name != conn.name.strip()):
            # The name reaches log lines, terminals and the store: no forged line, no escape code.
            raise UsageError(
                f"a connection name must be printable text without surrounding spaces, got {conn.name!r}"
            )
        if conn.name in self._connections:
            raise UsageError(f"a connection named {conn.name!r} already exists")
        self._connections[conn.name] = conn
        if start:
            self._start(conn, source)
        return conn

    def _start(self, conn: Connection, source: Source) -> None:
        self.pipeline.add_source(source)
        conn.source = source
        conn.started_at = datetime.now(UTC)
        log.info("connection %s started (%s)", conn.name, conn.display_url)
        if conn.transport not in _LINKS:
            # A simulated or file source has no link to report on: started is connected.
            status = LinkStatus(conn.name, LinkState.CONNECTED)
            conn.last_status = status
            if self._on_status is not None:
                self._on_status(conn, status)

    def start(self, name: str) -> Connection:
        """Start a stopped connection (no-op when running)."""
        conn = self.get(name)
        if conn.source is None:
            self._start(conn, self._open(conn))
        return conn

    async def stop(self, name: str) -> Connection:
        """Stop a running connection (no-op when stopped); frames already spooled are kept."""
        conn = self.get(name)
        if conn.source is not None:
            await self.pipeline.remove_source(conn.name)
            conn.source = None
            conn.started_at = None
            log.info("connection %s stopped", conn.name)
        return conn

    async def remove(self, name: str) -> None:
        """Stop and forget a connection."""
        await self.stop(name)
        del self._connections[name]
