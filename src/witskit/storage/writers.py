"""Which backends take several writing processes, and the lock that keeps SQLite to one.

PostgreSQL and MariaDB/MySQL take any number of writers on one database: each write is one
transaction, frames are inserted with ``ON CONFLICT DO NOTHING`` (MySQL: retried after a lost race)
in a fixed order, source rows are created with ``ON CONFLICT (name) DO NOTHING``, and migrations
run under a server-side lock (see ``witskit.storage.migrations``), so concurrent starts migrate once.

SQLite has one writer at a time per file; several processes would take turns on its write lock and
time out under load. A fleet worker therefore holds :func:`single_writer` for the whole run: a
second one on the same SQLite file is refused at start, with the holder named.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from witskit.errors import UsageError
from witskit.storage._url import SecretLike, parse_url

__all__ = ["MULTI_WRITER_BACKENDS", "single_writer"]

#: Backends on which several processes may write one database at once.
MULTI_WRITER_BACKENDS = frozenset({"postgresql", "mysql"})


@contextlib.contextmanager
def single_writer(url: str | SecretLike, *, role: str) -> Iterator[None]:
    """Hold the writer lock of a SQLite database (``<file>.writer``) while the block runs.

    For a server database this does nothing (they take several writers). A second holder gets a
    :class:`~witskit.errors.UsageError` naming the process that has it and saying what to use.
    """
    parsed = parse_url(url)
    path = parsed.sqlite_path
    if path is None or sys.platform == "win32":
        yield
        return
    import fcntl

    lock_path = path.with_name(path.name + ".writer")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            holder = "".join(ch if ch.isprintable() else "?" for ch in holder)
            raise UsageError(
                f"{parsed.display}: SQLite takes one writer and {holder} is writing it; run one "
                f"{role} per SQLite file, or use PostgreSQL for several"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({role})".encode(), 0)
        yield
    finally:
        os.close(fd)
