"""Synchronous and pandas conveniences over a URL: :func:`query_sync` and :func:`to_dataframe`.

Each opens a :class:`~witskit.storage.store.Store` on the URL, reads, and closes it, so this
module sits above ``store.py`` (which imports :mod:`witskit.storage.query`, never this). Both are
public as ``witskit.storage.query_sync`` and ``witskit.storage.to_dataframe``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from witskit.errors import UsageError
from witskit.storage._url import SecretLike
from witskit.storage.query import DEFAULT_BATCH_SIZE, DataFrame, PointRow, TimeBound, import_pandas
from witskit.storage.store import Store

__all__ = ["query_sync", "to_dataframe"]


def _no_running_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(f"{what} cannot run inside an event loop; use the async Store API there")


def query_sync(
    url: str | SecretLike,
    *,
    source: str | Iterable[str] | None = None,
    codes: str | Iterable[str] | None = None,
    start: TimeBound = None,
    end: TimeBound = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    timeout: float = 30.0,
) -> Iterator[PointRow]:
    """Stream points from the store at ``url`` to synchronous code (the CLI), in constant memory.

    Same filters as :meth:`Store.query <witskit.storage.store.Store.query>`. The store is opened
    without migrating (a read never changes the schema: run ``witskit db upgrade`` first) and
    closed when the iterator is exhausted or closed. A SQLite file that does not exist raises
    :class:`~witskit.storage.errors.DatabaseNotFound` instead of being created.
    """
    _no_running_loop("query_sync()")
    return _sync_rows(url, source, codes, start, end, batch_size, timeout)


def _sync_rows(
    url: str | SecretLike,
    source: str | Iterable[str] | None,
    codes: str | Iterable[str] | None,
    start: TimeBound,
    end: TimeBound,
    batch_size: int,
    timeout: float,
) -> Iterator[PointRow]:
    with asyncio.Runner() as runner:
        store = runner.run(Store.open(url, migrate=False, pool_size=1, timeout=timeout, must_exist=True))
        try:
            batches = store.query_batches(
                source=source, codes=codes, start=start, end=end, batch_size=batch_size
            )
            try:
                while True:
                    try:
                        batch = runner.run(anext(batches))
                    except StopAsyncIteration:
                        break
                    yield from batch
            finally:
                runner.run(batches.aclose())
        finally:
            runner.run(store.aclose())


def to_dataframe(
    url: str | SecretLike,
    *,
    source: str | Iterable[str] | None = None,
    codes: str | Iterable[str] | None = None,
    start: TimeBound = None,
    end: TimeBound = None,
    wide: bool = False,
    timeout: float = 30.0,
) -> DataFrame:
    """Load points from the store at ``url`` into a pandas DataFrame (needs ``witskit[pandas]``).

    Long format: columns ``time`` (UTC), ``source``, ``code``, ``value`` (float, NaN for null and
    text readings) and ``text`` (the text of A items). ``wide=True`` pivots the numeric values to
    one column per code, indexed by (source, time). Async code: ``await store.to_dataframe(...)``.
    """
    import_pandas()  # fail before touching the database
    _no_running_loop("to_dataframe()")

    async def run() -> DataFrame:
        store = await Store.open(url, migrate=False, pool_size=1, timeout=timeout, must_exist=True)
        try:
            return await store.to_dataframe(source=source, codes=codes, start=start, end=end, wide=wide)
        finally:
            await store.aclose()

    return asyncio.run(run())
