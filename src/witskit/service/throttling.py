"""Login throttling, per user name and per client address, in the database.

Password guessing is slowed two ways: a user name that has failed ``max_user_failures`` times
within ``window`` seconds of its first failure is refused (whoever asks) until that first failure
leaves the window, and an address that has failed ``max_address_failures`` times (across any
names: password spraying) is refused the same way. A refused attempt never reaches the password
check, so it tells the client nothing about the password, and it costs the server no Argon2 hash.

The counters are rows of the ``login_throttle`` table (:mod:`witskit.service.accounts`), so every
process serving the same database shares them (``witskit run`` and ``witskit serve`` side by side,
or several replicas) and a restart does not clear them. Each key counts its failures in a window
that starts at its first failure and ends ``window`` seconds later (stored as ``locked_until``); a
failure after the end starts a new window. Every attempt is counted *before* its password is
checked (:meth:`LoginThrottle.reserve`: one transaction that counts, reads the counts back under
the row lock, and rolls back when over the limit), so 40 concurrent guesses cannot all pass a check
made before any of them was counted; a correct password then clears the name's count and takes
back the address's one. A login attempt costs that transaction, plus one ``DELETE`` and one
``UPDATE`` on success. Ended windows are deleted by
:meth:`LoginThrottle.prune`, which the service calls now and then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from witskit.service.accounts import AccountStore

__all__ = [
    "DEFAULT_MAX_ADDRESS_FAILURES",
    "DEFAULT_MAX_USER_FAILURES",
    "DEFAULT_WINDOW",
    "LoginThrottle",
]

#: Five wrong passwords in five minutes is more than a person mistyping, far less than a guesser needs.
DEFAULT_MAX_USER_FAILURES: Final = 5
#: An office or a rig site behind one NAT address has several people; a sprayer has thousands of tries.
DEFAULT_MAX_ADDRESS_FAILURES: Final = 20
#: Seconds a failure counts against a name or an address.
DEFAULT_WINDOW: Final = 300.0
#: Keys longer than this (the key column holds 255 characters) are stored as their SHA-256: a login
#: form accepts a user name of any length.
_MAX_KEY: Final = 200

_USER: Final = "user:"
_ADDRESS: Final = "addr:"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _key(prefix: str, value: str) -> str:
    key = prefix + value
    if len(key) <= _MAX_KEY:
        return key
    return prefix + "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class LoginThrottle:
    """Refuses login attempts for a name or an address that failed too often recently."""

    def __init__(
        self,
        accounts: AccountStore,
        *,
        max_user_failures: int = DEFAULT_MAX_USER_FAILURES,
        max_address_failures: int = DEFAULT_MAX_ADDRESS_FAILURES,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], datetime] = _utcnow,
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
