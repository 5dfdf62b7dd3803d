"""LAS 2.0 and WITSML downloads of stored channels (``data:read``), thin over :func:`witskit.export.render`.

``GET /api/v1/data/las`` and ``GET /api/v1/data/witsml`` parse the query into an
:class:`~witskit.export.ExportRequest` (the well and its uids from the settings:
:meth:`witskit.config.WitsConfig.well_for`) and send the document ``render`` builds, as an
attachment. Every way a request can fail is a 4xx naming what is missing: an unknown source (404),
an unknown or text code, a range with no data, a depth index without the depth items (422).

A document is built in memory (LAS and WITSML headers give its extent before its data), so each
request is bounded three ways, all settings:

* its size: at most ``WITS_EXPORT_MAX_VALUES`` values (rows x channels); a larger log is refused
  with 422 before it is built, naming the limit (422 rather than 413: what is too large is the
  answer the request asks for, not the request);
* its time: at most ``WITS_EXPORT_TIMEOUT`` seconds, a slow query included; past it the export
  stops and the answer is 422 (ask for a shorter range);
* the process: at most ``WITS_EXPORT_MAX_CONCURRENT`` exports are built at once, and one per
  caller (a user and the API keys they own). One more is refused at once with ``Retry-After``,
  never queued (a queue of heavy requests is a backlog any client could grow): 429 when the
  caller has one being built, else 503.

Each export runs in a worker thread with an event loop and a database connection of its own
(:class:`_Worker`): reading the points, building the log and writing the document, so the
service's event loop keeps serving the API, the WebSocket and ingest meanwhile (they still share
the GIL: ``bench/bench_export_route.py`` measures what two exports cost a cheap request). A client
that goes away stops its export at the next batch of points, and its slot is free only once the
worker has stopped, so leaving early cannot exceed the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response, status

from witskit.errors import UsageError
from witskit.export import ExportFormat, ExportRequest, IndexKind, WitsmlVersion, render
from witskit.export.table import Point, clean_text
from witskit.security.rbac import Permission
from witskit.service.deps import AppContext, Context, client_address, guard
from witskit.storage.query import parse_time
from witskit.storage.store import Store

__all__ = ["ExportSlots", "content_disposition", "router"]

log = logging.getLogger("witskit.service.exports")
router = APIRouter(tags=["data"])


#: What a 503 asks the client to wait: an export of the default size takes seconds.
_RETRY_AFTER: Final = "10"
#: Exports one caller (a user, with the API keys they own) may have built at once: so that one
#: account cannot hold every slot while others wait.
PER_CALLER: Final = 1
#: A file name keeps these characters of the source name (the rest become ``_``).
_UNSAFE_FILENAME: Final = re.compile(r"[^A-Za-z0-9._-]+")

_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    404: {"description": "Unknown source"},
    422: {
        "description": "Unknown or text code, a range with no data, no depth items for a depth "
        "index, a document larger than WITS_EXPORT_MAX_VALUES, or an export past WITS_EXPORT_TIMEOUT"
    },
    429: {"description": "The caller has an export being built (one at a time): retry after Retry-After"},
    503: {"description": "WITS_EXPORT_MAX_CONCURRENT exports are being built: retry after Retry-After"},
}


class ExportSlots:
    """At most ``limit`` exports at once in one app, and :data:`PER_CALLER` per caller."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._callers: Counter[str] = Counter()

    def busy(self, caller: str) -> bool:
        """Whether ``caller`` has as many exports being built as one caller may."""
        return self._callers[caller] >= PER_CALLER

    def take(self, caller: str = "") -> bool:
        """Take a slot for ``caller``, if one is free."""
        if self.active >= self.limit:
            return False
        self.active += 1
        self._callers[caller] += 1
        return True

    def give(self, caller: str = "") -> None:
        """Give ``caller``'s slot back (when the worker has finished)."""
        self.active -= 1
        self._callers[caller] -= 1
        if self._callers[caller] <= 0:
            del self._callers[caller]

    @classmethod
    def of(cls, app: FastAPI, limit: int) -> ExportSlots:
        """The app's slots (made on first use: the bound is per process, as the memory is)."""
        slots = getattr(app.state, "witskit_export_slots", None)
        if not isinstance(slots, ExportSlots):
            slots = app.state.witskit_export_slots = cls(limit)
        return slots


class _Abandoned(Exception):
    """The request went away: the worker stops reading."""


class _Worker:
    """Builds one document in a worker thread, on a store of its own: the thread has its own
    event loop, so nothing of the export (reading the points, building the log, writing the
    document) runs on the service's loop.

    It is the :class:`~witskit.export.PointReader` ``render`` reads: the store's batches, one at a
    time, stopping at the next one once the request was abandoned. The whole build runs under
    ``timeout`` seconds, a slow query included.
    """

    def __init__(self, url: str, db_timeout: float, timeout: float) -> None:
        self._url = url
        self._db_timeout = db_timeout
        self._timeout = timeout
        self._store: Store | None = None
        self.abandoned = threading.Event()
        self.points = 0

    def build(self, request: ExportRequest, fmt: ExportFormat, version: WitsmlVersion) -> bytes:
        """The document (in the calling thread, on an event loop of its own)."""
        return asyncio.run(self._build(request, fmt, version))

    async def _build(self, request: ExportRequest, fmt: ExportFormat, version: WitsmlVersion) -> bytes:
        # One connection, for this export only (at most WITS_EXPORT_MAX_CONCURRENT at once). Opening
        # is bounded by the database timeout, and not cancelled: a connect cut short would leave
        # the driver's thread answering a loop that is gone.
        store = await Store.open(self._url, migrate=False, pool_size=1, timeout=self._db_timeout)
        self._store = store
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                return await render(self, request, fmt, version)
        except TimeoutError:
            if not deadline.expired():
                raise  # not ours: the database's, say
            raise UsageError(
                f"the export took longer than {self._timeout:g} s (WITS_EXPORT_TIMEOUT): "
                "ask for a shorter range or fewer codes"
            ) from None
        finally:
            await store.aclose()  # after any read in flight has ended

    async def query_batches(
        self, source: str, codes: list[str], start: datetime | None, end: datetime | None
    ) -> AsyncGenerator[Sequence[Point], None]:
        """The store's batches of ``source`` and ``codes`` in ``[start, end)``, in time order."""
        assert self._store is not None
        batches = self._store.query_batches(source, codes, start, end)
        async with contextlib.aclosing(batches):
            async for batch in batches:
                if self.abandoned.is_set():
                    raise _Abandoned
                self.points += len(batch)
                yield batch


def content_disposition(source: str, index: IndexKind, extension: str) -> str:
    """``attachment`` with a file name made of the source name's safe characters (so no name can
    add a header or a path), and the name itself percent-encoded in ``filename*`` (RFC 6266)."""
    stem = _UNSAFE_FILENAME.sub("_", source).strip("._")[:100] or "export"
    name = f"{stem}_{index.value}.{extension}"
    full = quote(f"{clean_text(source, 100)}_{index.value}.{extension}", safe="")
    return f"attachment; filename=\"{name}\"; filename*=UTF-8''{full}"


def _codes(values: list[str]) -> list[str]:
    return [part.strip() for item in values for part in item.split(",") if part.strip()]


async def _export(
    request: Request,
    context: AppContext,
    *,
    source: str,
    codes: list[str],
    index: IndexKind,
    start: str | None,
    end: str | None,
    step: float | None,
    fmt: ExportFormat,
    version: WitsmlVersion = WitsmlVersion.v1411,
) -> Response:
    config = context.config
    # No stored source has a NUL in its name (writes refuse it), and PostgreSQL text cannot hold one.
    if "\x00" in source or source not in {s.name for s in await context.store.sources()}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {source!r}")
    well = config.well_for(source, index.value)
    export = ExportRequest(
        source=source,
        codes=_codes(codes),
        index=index,
        start=parse_time(start, "start"),
        end=parse_time(end, "end"),
        step=step,
        metric=context.metric_units,
        well=well.name,
        well_uid=well.well_uid,
        wellbore_uid=well.wellbore_uid,
        log_uid=well.log_uid,
        tz=UTC,
        max_values=config.export_max_values,
    )
    principal = getattr(request.state, "principal", None)
    # A user's API keys count as the user: more keys give no more exports at once.
    caller = str(getattr(principal, "owner", None) or getattr(principal, "name", None) or "")
    slots = ExportSlots.of(request.app, config.export_max_concurrent)
    if slots.busy(caller):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "an export of yours is being built; one at a time per user",
            headers={"Retry-After": _RETRY_AFTER},
        )
    if not slots.take(caller):
        log.info("export refused: %d exports are being built", slots.active)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the service builds {slots.limit} export(s) at a time (WITS_EXPORT_MAX_CONCURRENT) and is "
            "building them now; try again shortly",
            headers={"Retry-After": _RETRY_AFTER},
        )
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    worker = _Worker(config.database_url_value, config.database_timeout, config.export_timeout)

    work = loop.run_in_executor(None, worker.build, export, fmt, version)

    def done(finished: asyncio.Future[bytes]) -> None:
        # The slot is the worker's: it is free when the thread is, whatever happened to the
        # request. An abandoned export's outcome is read here, so that nothing reports it unread.
        slots.give(caller)
        if not finished.cancelled():
            finished.exception()

    work.add_done_callback(done)
    try:
        document = await asyncio.shield(work)
    except asyncio.CancelledError:
        worker.abandoned.set()
        raise
    # Names and sizes only: never a value of the document, never the query's raw text.
    log.info(
        "export %s of %r (%s index, %d codes): %d points read, %d bytes in %.2f s for %s",
        f"witsml {version.value}" if fmt is ExportFormat.witsml else "las",
        source,
        index.value,
        len(export.codes),
        worker.points,
        len(document),
        time.monotonic() - t0,
        getattr(principal, "name", None) or client_address(request),
    )
    media = "application/xml" if fmt is ExportFormat.witsml else "text/plain; charset=utf-8"
    extension = "xml" if fmt is ExportFormat.witsml else "las"
    headers = {
        "Content-Disposition": content_disposition(source, index, extension),
        "X-Content-Type-Options": "nosniff",
    }
    return Response(document, media_type=media, headers=headers)


_Source = Annotated[str, Query(min_length=1, max_length=255, description="Source name")]
_CodesQuery = Annotated[
    list[str],
    Query(description="Codes or mnemonics, comma-separated or repeated (e.g. DBTM,ROPA; at most 100)"),
]
_Start = Annotated[str | None, Query(description="Inclusive start, ISO 8601 (naive: UTC; none: the first)")]
_End = Annotated[str | None, Query(description="Exclusive end, ISO 8601 (naive: UTC; none: the last)")]
_Step = Annotated[
    float | None,
    Query(
        gt=0,
        le=1e6,
        description="Depth step (depth units, default 0.5) or time step (seconds; LAS default 1, "
        "WITSML default: a row per frame)",
    ),
]


@router.get(
    "/data/las",
    summary="A LAS 2.0 file of stored channels (depth or time index)",
    response_class=Response,
    **guard(
        Permission.READ_DATA,
        responses={200: {"description": "The LAS file", "content": {"text/plain": {}}}, **_RESPONSES},
    ),
)
async def las(
    request: Request,
    context: Context,
    source: _Source,
    codes: _CodesQuery,
    index: Annotated[IndexKind, Query(description="depth (resampled on bottom) or time")] = IndexKind.depth,
    start: _Start = None,
    end: _End = None,
    step: _Step = None,
) -> Response:
    """The channels ``codes`` of ``source`` between ``start`` and ``end`` as a LAS 2.0 file, the one
    ``witskit export las`` writes (docs/outputs.md); the well is ``WITS_WELL_NAME`` or
    ``WITS_WELLS``, else the feed's WID item, else the source."""
    return await _export(
        request,
        context,
        source=source,
        codes=codes,
        index=index,
        start=start,
        end=end,
        step=step,
        fmt=ExportFormat.las,
    )


@router.get(
    "/data/witsml",
    summary="A WITSML 1.4.1.1 or 2.0 log of stored channels (time or depth index)",
    response_class=Response,
    **guard(
        Permission.READ_DATA,
        responses={
            200: {"description": "The WITSML document", "content": {"application/xml": {}}},
            **_RESPONSES,
        },
    ),
)
async def witsml(
    request: Request,
    context: Context,
    source: _Source,
    codes: _CodesQuery,
    index: Annotated[IndexKind, Query(description="time or depth (resampled on bottom)")] = IndexKind.time,
    start: _Start = None,
    end: _End = None,
    step: _Step = None,
    version: Annotated[WitsmlVersion, Query(description="1.4.1.1 or 2.0")] = WitsmlVersion.v1411,
) -> Response:
    """The channels ``codes`` of ``source`` between ``start`` and ``end`` as a WITSML log, the one
    ``witskit export witsml`` writes (docs/outputs.md); the uids are ``WITS_WITSML_*_UID`` or
    ``WITS_WELLS``, else derived from the source."""
    return await _export(
        request,
        context,
        source=source,
        codes=codes,
        index=index,
        start=start,
        end=end,
        step=step,
        fmt=ExportFormat.witsml,
        version=version,
    )
