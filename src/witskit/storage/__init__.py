"""Storage: the durable spool (write-ahead log) and the SQL stores, queries and export.

The SQL names below are loaded on first use (PEP 562 ``__getattr__``), so ``import witskit.storage``
and the spool need neither SQLAlchemy nor a database driver: ``from witskit.storage import Store``
imports them. See ``docs/storage.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from witskit.storage.errors import (
        AuthenticationFailed,
        DatabaseNotFound,
        DatabaseUnavailable,
        DriverNotInstalled,
        SchemaMismatch,
        StorageConfigError,
        StorageError,
        StorageFull,
    )
    from witskit.storage.formats import PointText
    from witskit.storage.migrations import aupgrade, upgrade
    from witskit.storage.query import PointRow, PointScan, RawPoint, SourceInfo
    from witskit.storage.schema import frame_key
    from witskit.storage.secure_connection import SecureDatabaseManager, sanitize_url
    from witskit.storage.series import CodeSeries, Series
    from witskit.storage.store import Store
    from witskit.storage.sync import query_sync, to_dataframe

#: Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "AuthenticationFailed": "witskit.storage.errors",
    "DatabaseNotFound": "witskit.storage.errors",
    "DatabaseUnavailable": "witskit.storage.errors",
    "DriverNotInstalled": "witskit.storage.errors",
    "SchemaMismatch": "witskit.storage.errors",
    "StorageConfigError": "witskit.storage.errors",
    "StorageError": "witskit.storage.errors",
    "StorageFull": "witskit.storage.errors",
    "aupgrade": "witskit.storage.migrations",
    "upgrade": "witskit.storage.migrations",
    "PointText": "witskit.storage.formats",
    "PointRow": "witskit.storage.query",
    "PointScan": "witskit.storage.query",
    "RawPoint": "witskit.storage.query",
    "SourceInfo": "witskit.storage.query",
    "query_sync": "witskit.storage.sync",
    "to_dataframe": "witskit.storage.sync",
    "frame_key": "witskit.storage.schema",
    "SecureDatabaseManager": "witskit.storage.secure_connection",
    "sanitize_url": "witskit.storage.secure_connection",
    "CodeSeries": "witskit.storage.series",
    "Series": "witskit.storage.series",
    "Store": "witskit.storage.store",
}

__all__ = [
    "AuthenticationFailed",
    "CodeSeries",
    "DatabaseNotFound",
    "DatabaseUnavailable",
    "DriverNotInstalled",
    "PointRow",
    "PointScan",
    "PointText",
    "RawPoint",
    "SchemaMismatch",
    "SecureDatabaseManager",
    "Series",
    "SourceInfo",
    "StorageConfigError",
    "StorageError",
    "StorageFull",
    "Store",
    "aupgrade",
    "frame_key",
    "query_sync",
    "sanitize_url",
    "to_dataframe",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'witskit.storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
