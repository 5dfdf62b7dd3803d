"""The storage errors: what went wrong with a database, and whether waiting will fix it.

Every error from a SQL store is a :class:`StorageError` whose message names the database by its
*sanitized* URL (``postgresql://wits:***@db:5432/wits``): the password never appears in a message,
a ``repr``, a log line or a chained exception. ``transient`` tells the pipeline what to do: a
transient error (the database is down, busy, or its disk is full) is counted by the circuit
breaker and retried later while the spool keeps the frames; a permanent one (a bad URL, wrong
credentials, a database that does not exist) will not go away by retrying and needs a person.

::

    WitsKitError
    └── StorageError                      a SQL store failed (``transient`` says if retrying helps)
        ├── StorageConfigError (ValueError)   permanent: the settings are wrong
        │   ├── DriverNotInstalled (ImportError)  the backend's driver is missing: install the extra
        │   ├── AuthenticationFailed          the user or password was refused
        │   ├── DatabaseNotFound              the database (or the SQLite directory) does not exist
        │   └── SchemaMismatch                the schema is older or newer than this WitsKit
        └── DatabaseUnavailable (ConnectionError)  transient: unreachable, timed out, busy, restarting
            └── StorageFull                   the database's disk (or quota) is full

The base class itself is raised for a database error that fits none of these (a bug, or a
constraint violated by something outside WitsKit); it is not transient.
"""

from __future__ import annotations

from typing import ClassVar

from witskit.errors import WitsKitError

__all__ = [
    "AuthenticationFailed",
    "DatabaseNotFound",
    "DatabaseUnavailable",
    "DriverNotInstalled",
    "SchemaMismatch",
    "StorageConfigError",
    "StorageError",
    "StorageFull",
]


class StorageError(WitsKitError):
    """A SQL store failed; the message names the database by its sanitized URL.

    ``url`` is that sanitized URL (credentials masked) or ``None`` when no URL was involved.
    ``transient`` is a class attribute: ``True`` when the same call may succeed later unchanged.
    """

    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class StorageConfigError(StorageError, ValueError):
    """The storage settings are wrong (URL, scheme, driver, credentials): retrying will not help."""


class DriverNotInstalled(StorageConfigError, ImportError):
    """The database driver for the URL's backend is not installed; the message names the extra."""


class AuthenticationFailed(StorageConfigError):
    """The database refused the user name or password."""


class DatabaseNotFound(StorageConfigError):
    """The database named in the URL does not exist (for SQLite: its directory does not exist)."""


class SchemaMismatch(StorageConfigError):
    """The database schema is not the one this WitsKit expects.

    Either it was never migrated (run ``witskit db upgrade``, or open the store with
    ``migrate=True``) or a newer WitsKit upgraded it.
    """


class DatabaseUnavailable(StorageError, ConnectionError):
    """The database cannot serve us right now: unreachable, timed out, restarting, busy, locked.

    Transient: the pipeline's circuit breaker counts these and the spool keeps the frames.
    """

    transient: ClassVar[bool] = True


class StorageFull(DatabaseUnavailable):
    """The database's disk or quota is full. Transient: it clears once someone frees space."""
