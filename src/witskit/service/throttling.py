"""Login throttling, per user name and per client address, in the database.

Password guessing is slowed two ways: a user name that has failed ``max_user_failures`` times
within ``window`` seconds of its first failure is refused (whoever asks) until that first failure
leaves the window, and an address that has failed ``max_address_failures`` times (across any
names: password spraying) is refused the same way. A refused attempt never reaches the password
check, so it tells the client nothing about the password, and it costs the server no Argon2 hash.

The counters are rows of the ``login_throttle`` table (Alembic revision ``0003``), which
:class:`ThrottleStore` keeps: one row per key (a user name or an address), with the failures
counted since ``window_start`` and ``locked_until``, the end of that window. So every process
serving the same database shares them (``witskit run`` and ``witskit serve`` side by side, or
several replicas) and a restart does not clear them. Each key counts its failures in a window that
starts at its first failure and ends ``window`` seconds later; a failure after the end starts a new
window. Every attempt is counted *before* its password is checked (:meth:`LoginThrottle.reserve`:
one transaction that counts, reads the counts back under the row lock, and rolls back when over
the limit), so 40 concurrent guesses cannot all pass a check made before any of them was counted;
a correct password then clears the name's count and takes back the address's one. A login attempt
costs that transaction, plus one ``DELETE`` and one ``UPDATE`` on success. Ended windows are
deleted by :meth:`LoginThrottle.prune`, which the service calls now and then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import Column, Integer, String, Table, case, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from witskit.service._tables import TableStore, metadata, utcnow
from witskit.storage.errors import DatabaseUnavailable
from witskit.storage.schema import UTCDateTime

__all__ = [
    "DEFAULT_MAX_ADDRESS_FAILURES",
    "DEFAULT_MAX_USER_FAILURES",
    "DEFAULT_WINDOW",
    "LoginThrottle",
    "ThrottleRecord",
    "ThrottleStore",
    "login_throttle",
]

T = TypeVar("T")

#: Five wrong passwords in five minutes is more than a person mistyping, far less than a guesser needs.
DEFAULT_MAX_USER_FAILURES: Final = 5
#: An office or a rig site behind one NAT address has several people; a sprayer has thousands of tries.
DEFAULT_MAX_ADDRESS_FAILURES: Final = 20
#: Seconds a failure counts against a name or an address.
DEFAULT_WINDOW: Final = 300.0
#: Keys longer than this (the key column holds 255 characters) are stored as their SHA-256: a login
#: form accepts a user name of any length.
_MAX_KEY: Final = 200

#: Times a throttle transaction chosen as a deadlock victim is run again (jittered, ~0.25 s in all).
_DEADLOCK_RETRIES: Final = 8

_USER: Final = "user:"
_ADDRESS: Final = "addr:"

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("window_start", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime(), nullable=True),
)


@dataclass(frozen=True, slots=True)
class ThrottleRecord:
    """The failed logins counted against one key since ``window_start``; the window ends at
    ``locked_until``."""

    key: str
    failures: int
    window_start: datetime
    locked_until: datetime


class _Refused(Exception):
    """Internal: rolls back a reservation over the limit (``over``: the keys over it)."""

    def __init__(self, over: dict[str, ThrottleRecord]) -> None:
        super().__init__("over the limit")
        self.over = over


def _rolled_back_for_retry(exc: DatabaseUnavailable) -> bool:
    """True for a deadlock or serialization failure: the database rolled the transaction back and
    asks for it to be run again."""
    text = str(exc).lower()
    return "deadlock" in text or "serialization failure" in text


def _count_failures(dialect: str, keys: Sequence[str], now: datetime, window: timedelta) -> Any:
    """One INSERT ... ON CONFLICT (upsert) counting a failure against every key.

    A new key, or one whose window has ended, starts a window of one failure at ``now``; a key in
    its window counts one more. SQL does no date arithmetic here (it differs per backend): the end
    of a window is computed once, in Python, when the window starts.
    """
    end = now + window
    # One statement may not touch a row twice (PostgreSQL: "ON CONFLICT DO UPDATE command cannot
    # affect row a second time"): a key named twice counts one failure, as it is one attempt.
    rows = [{"key": k, "failures": 1, "window_start": now, "locked_until": end} for k in dict.fromkeys(keys)]
    ended = login_throttle.c.locked_until <= literal(now, UTCDateTime())
    # MySQL evaluates the assignments left to right, each seeing the ones before it: locked_until,
    # which the others test, is assigned last.
    assignments: list[tuple[str, Any]] = [
        ("failures", case((ended, 1), else_=login_throttle.c.failures + 1)),
        ("window_start", case((ended, literal(now, UTCDateTime())), else_=login_throttle.c.window_start)),
        ("locked_until", case((ended, literal(end, UTCDateTime())), else_=login_throttle.c.locked_until)),
    ]
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        return mysql_insert(login_throttle).values(rows).on_duplicate_key_update(assignments)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return (
            pg_insert(login_throttle)
            .values(rows)
            .on_conflict_do_update(index_elements=[login_throttle.c.key], set_=dict(assignments))
        )
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return (
        sqlite_insert(login_throttle)
        .values(rows)
        .on_conflict_do_update(index_elements=[login_throttle.c.key], set_=dict(assignments))
    )


class ThrottleStore(TableStore):
    """The ``login_throttle`` table: the counters of :class:`LoginThrottle`."""

    async def throttle_records(self, keys: Sequence[str]) -> dict[str, ThrottleRecord]:
        """The failure counters of these keys (keys without failures are absent)."""
        async with self._db.read("read the login throttle of") as conn:
            rows = (await conn.execute(select(login_throttle).where(login_throttle.c.key.in_(keys)))).all()
        return {str(r.key): ThrottleRecord(**r._mapping) for r in rows}

    async def _throttle_write(self, action: str, body: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``body`` in a write transaction, again when the database picked it as a deadlock
        victim (MariaDB/MySQL: concurrent upserts of one new key; PostgreSQL likewise). Such a
        transaction was rolled back whole, so running it again is safe; anything else is raised."""
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                async with self._db.write(action) as conn:
                    return await body(conn)
            except DatabaseUnavailable as exc:
                if attempt == _DEADLOCK_RETRIES - 1 or not _rolled_back_for_retry(exc):
                    raise
            # Jittered: the transactions that collided must not collide again in step.
            await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")

    async def count_failure(self, keys: Sequence[str], now: datetime, window: timedelta) -> None:
        """Count one failure against every key (one statement), starting a window of length
        ``window`` for a key that has none running."""
        if not keys:
            return

        async def count(conn: AsyncConnection) -> None:
            await conn.execute(_count_failures(self._db.dialect, keys, now, window))

        await self._throttle_write("update the login throttle of", count)

    async def reserve_attempt(
        self, limits: Mapping[str, int], now: datetime, window: timedelta
    ) -> dict[str, ThrottleRecord] | None:
        """Count an attempt against every key of ``limits`` *before* it is checked, atomically.

        One transaction: the upsert that counts it locks the rows (SQLite: the database), the
        counts are read back under that lock, and when any key is over its limit the transaction
        rolls back (a refused attempt is not counted) and the records are returned. None means the
        attempt is reserved: of N concurrent attempts, at most ``limit`` get through, however
        concurrent, because none can read a count that another has not yet written.
        """
        if not limits:
            return None
        keys = list(limits)

        async def reserve(conn: AsyncConnection) -> None:
            await conn.execute(_count_failures(self._db.dialect, keys, now, window))
            stmt = select(login_throttle).where(login_throttle.c.key.in_(keys)).with_for_update()
            counted = [ThrottleRecord(**r._mapping) for r in (await conn.execute(stmt)).all()]
            over = {
                r.key: dataclasses.replace(r, failures=r.failures - 1)  # as before this attempt
                for r in counted
                if r.failures > limits[r.key]
            }
            if over:
                raise _Refused(over)  # rolls the count back

        try:
            await self._throttle_write("update the login throttle of", reserve)
        except _Refused as refused:
            return refused.over
        return None

    async def release_attempt(self, key: str) -> None:
        """Take back one reserved attempt of a key (an attempt that turned out right)."""

        async def release(conn: AsyncConnection) -> None:
            await conn.execute(
                update(login_throttle)
                .where(login_throttle.c.key == key, login_throttle.c.failures > 0)
                .values(failures=login_throttle.c.failures - 1)
            )

        await self._throttle_write("update the login throttle of", release)

    async def clear_failures(self, key: str) -> None:
        """Forget the failures counted against a key."""

        async def clear(conn: AsyncConnection) -> None:
            await conn.execute(delete(login_throttle).where(login_throttle.c.key == key))

        await self._throttle_write("update the login throttle of", clear)

    async def prune_login_throttle(self, now: datetime | None = None) -> int:
        """Delete the counters whose window has ended; how many.

        The ended keys are found first, then deleted by key (still only if ended): a ``DELETE``
        by time would scan and lock the whole table (InnoDB: its gaps too) under the logins.
        """
        cutoff = literal(now or utcnow(), UTCDateTime())
        async with self._db.read("prune the login throttle of") as conn:
            ended = [
                str(k)
                for k in (
                    await conn.execute(
                        select(login_throttle.c.key).where(login_throttle.c.locked_until <= cutoff)
                    )
                ).scalars()
            ]
        if not ended:
            return 0

        async def prune(conn: AsyncConnection) -> int:
            result = await conn.execute(
                delete(login_throttle).where(
                    login_throttle.c.key.in_(ended), login_throttle.c.locked_until <= cutoff
                )
            )
            return int(result.rowcount)

        return await self._throttle_write("prune the login throttle of", prune)


def _key(prefix: str, value: str) -> str:
    key = prefix + value
    if len(key) <= _MAX_KEY:
        return key
    return prefix + "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class LoginThrottle:
    """Refuses login attempts for a name or an address that failed too often recently."""

    def __init__(
        self,
        accounts: ThrottleStore,
        *,
        max_user_failures: int = DEFAULT_MAX_USER_FAILURES,
        max_address_failures: int = DEFAULT_MAX_ADDRESS_FAILURES,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.accounts = accounts
        self.max_user_failures = max_user_failures
        self.max_address_failures = max_address_failures
        self.window = timedelta(seconds=window)
        self._clock = clock

    @staticmethod
    def _user_key(username: str) -> str:
        # Case-folded: "Admin" and "admin" share one budget, whether or not both exist.
        return _key(_USER, username.strip().casefold())

    def _keys(self, username: str, address: str | None) -> dict[str, int]:
        keys = {self._user_key(username): self.max_user_failures}
        if address:
            keys[_key(_ADDRESS, address)] = self.max_address_failures
        return keys

    async def retry_after(self, username: str, address: str | None) -> float:
        """Seconds until an attempt for ``username`` from ``address`` is allowed (0: allowed now)."""
        limits = self._keys(username, address)
        now = self._clock()
        wait = 0.0
        for key, record in (await self.accounts.throttle_records(list(limits))).items():
            if record.failures >= limits[key] and record.locked_until > now:
                wait = max(wait, (record.locked_until - now).total_seconds(), 0.001)
        return wait

    async def reserve(self, username: str, address: str | None) -> float:
        """Count this attempt against the name and the address *before* the password is checked.

        Returns 0 when the attempt may go on (it is counted as a failure until :meth:`success`
        takes it back), else the seconds to wait (nothing is counted). Check and count are one
        transaction, so concurrent attempts cannot all pass a check made before any is counted.
        """
        limits = self._keys(username, address)
        now = self._clock()
        over = await self.accounts.reserve_attempt(limits, now, self.window)
        if not over:
            return 0.0
        return max(*((r.locked_until - now).total_seconds() for r in over.values()), 0.001)

    async def failure(self, username: str, address: str | None) -> None:
        """Count a failed attempt against the name and the address."""
        await self.accounts.count_failure(list(self._keys(username, address)), self._clock(), self.window)

    async def success(self, username: str, address: str | None = None) -> None:
        """A correct password clears the name's failures and takes back the attempt that
        :meth:`reserve` counted against ``address`` (only that one: a sprayer who guesses one
        account right must not reset its budget for the others)."""
        await self.accounts.clear_failures(self._user_key(username))
        if address:
            await self.accounts.release_attempt(_key(_ADDRESS, address))

    async def prune(self) -> int:
        """Delete the counters whose window has ended; how many."""
        return await self.accounts.prune_login_throttle(self._clock())
