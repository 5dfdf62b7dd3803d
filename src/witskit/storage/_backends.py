"""The backend factory: the implementation of :class:`~witskit.storage._base.BackendImpl` for a URL.

Apart from ``_base.py`` so that the backends import their base and this module imports the
backends, one way (the factory in ``_base.py`` made ``_base`` and the three backends a circle).
"""

from __future__ import annotations

from witskit.storage._base import BackendImpl
from witskit.storage._url import ParsedURL

__all__ = ["backend_for"]


def backend_for(url: ParsedURL) -> BackendImpl:
    """The backend implementation for a parsed URL (its module imported on first use)."""
    if url.backend == "sqlite":
        from witskit.storage._sqlite import SQLiteBackend

        return SQLiteBackend(url)
    if url.backend == "postgresql":
        from witskit.storage._postgres import PostgresBackend

        return PostgresBackend(url)
    from witskit.storage._mysql import MySQLBackend

    return MySQLBackend(url)
