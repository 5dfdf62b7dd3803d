"""The one place where database exceptions become :class:`~witskit.storage.errors.StorageError`.

Every store operation runs inside :func:`translate`. It maps SQLAlchemy's wrappers, each driver's
exceptions (asyncpg, asyncmy, aiosqlite / sqlite3), and the OS errors of a failed connection into the
storage error tree, with a message that names the sanitized URL and never the password: the
driver's text is scrubbed of the URL's secrets before it is quoted. Anything else (a TypeError, a
KeyError) is a bug in WitsKit and is left alone so that it shows as one.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from sqlalchemy import exc as sa_exc

from witskit.storage._base import BackendImpl
from witskit.storage.errors import DatabaseUnavailable, StorageError, StorageFull

__all__ = ["driver_exception", "is_driver_exception", "translate"]

#: Modules whose exceptions are database errors (anything they raise is translated).
_DRIVER_MODULES: Final = ("asyncpg", "asyncmy", "aiosqlite", "sqlite3", "pymysql")
_MAX_DETAIL: Final = 300


def driver_exception(exc: BaseException) -> BaseException:
    """The driver's own exception inside SQLAlchemy's wrappers (or ``exc`` itself)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        inner: BaseException = exc.orig
        # asyncpg's dialect emulates a DBAPI hierarchy whose instances hold the real error in .orig
        nested = getattr(inner, "orig", None)
        if isinstance(nested, BaseException):
            inner = nested
        return inner
    return exc


def is_driver_exception(exc: BaseException) -> bool:
    """True for an exception raised by a database driver (or SQLAlchemy on its behalf)."""
    return type(exc).__module__.split(".")[0] in _DRIVER_MODULES or isinstance(
        exc, sa_exc.DBAPIError | sa_exc.TimeoutError | sa_exc.DisconnectionError
    )


def _detail(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    return first if len(first) <= _MAX_DETAIL else first[: _MAX_DETAIL - 3] + "..."


def _map(exc: BaseException, backend: BackendImpl) -> tuple[type[StorageError], str] | None:
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseUnavailable, f"no free connection in the pool in time ({_detail(exc)})"
    inner = driver_exception(exc)
    hit = backend.classify(inner)
    if hit is not None:
        return hit
    if isinstance(inner, TimeoutError):
        return DatabaseUnavailable, "timed out"
    if isinstance(inner, OSError):
        if inner.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageFull, f"the disk is full ({_detail(inner)})"
        return DatabaseUnavailable, f"cannot reach the server ({_detail(inner)})"
    if isinstance(exc, sa_exc.DisconnectionError):
        return DatabaseUnavailable, f"the connection was lost ({_detail(exc)})"
    if is_driver_exception(inner) or is_driver_exception(exc):
        return StorageError, f"{type(inner).__name__}: {_detail(inner)}"
    return None


def error_for(exc: BaseException, backend: BackendImpl, action: str) -> StorageError | None:
    """The StorageError for ``exc`` (None when it is not a database error)."""
    if isinstance(exc, StorageError):
        return exc
    hit = _map(exc, backend)
    if hit is None:
        return None
    cls, reason = hit
    url = backend.url
    return cls(url.scrub(f"could not {action} {url.display}: {reason}"), url=url.display)


@contextmanager
def translate(backend: BackendImpl, action: str) -> Iterator[None]:
    """Raise database and connection errors as StorageErrors; ``action`` completes "could not ..."."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # narrowed by error_for: bugs are re-raised unchanged
        err = error_for(exc, backend, action)
        if err is None:
            raise
        raise err from exc
