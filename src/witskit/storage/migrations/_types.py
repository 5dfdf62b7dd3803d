"""Column types and table options shared by the migration scripts in ``versions/``.

A migration describes the schema as it was when it was written, so these are fixed: change the
schema with a new migration, never by editing what is here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = ["MYSQL_TABLE", "utc_type"]

#: Table options on MySQL/MariaDB: InnoDB for transactions, binary collation so codes and names
#: compare byte for byte, utf8mb4 for any text a rig sends.
MYSQL_TABLE: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def utc_type() -> sa.types.TypeEngine[Any]:
    """A UTC instant: timestamptz on PostgreSQL; DATETIME(6) holding UTC on MySQL; integer
    microseconds since 1970 UTC on SQLite."""
    return (
        sa.DateTime(timezone=True)
        .with_variant(sa.BigInteger(), "sqlite")
        .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    )
