"""Login throttling, per user name and per client address.

Password guessing is slowed two ways: a user name that has failed ``max_user_failures`` times in
the last ``window`` seconds is refused (whoever asks) until its oldest failure leaves the window,
and an address that has failed ``max_address_failures`` times (across any names: password
spraying) is refused the same way. A refused attempt never reaches the password check, so it
tells the client nothing about the password, and it costs the server no Argon2 hash.

The counters live in memory: one process serves the API (``witskit run``), and a restart clearing
them is acceptable (the audit log keeps every attempt). Memory is bounded by ``max_entries``; the
least recently failed keys are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

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
#: Keys remembered (each holds at most its limit of timestamps): a few MB at most.
DEFAULT_MAX_ENTRIES: Final = 100_000


class _Window:
    """Failure times per key in a sliding window, with a bounded number of keys."""

    def __init__(self, limit: int, window: float, max_entries: int) -> None:
        self.limit = limit
        self.window = window
        self.max_entries = max_entries
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _live(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str, now: float) -> float:
        times = self._live(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return max(times[0] + self.window - now, 0.001)

    def add(self, key: str, now: float) -> None:
        times = self._live(key, now)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.limit)
            while len(self._failures) > self.max_entries:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        times.append(now)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginThrottle:
    """Refuses login attempts for a name or an address that failed too often recently."""

    def __init__(
        self,
        *,
        max_user_failures: int = DEFAULT_MAX_USER_FAILURES,
        max_address_failures: int = DEFAULT_MAX_ADDRESS_FAILURES,
        window: float = DEFAULT_WINDOW,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = _Window(max_user_failures, window, max_entries)
        self._addresses = _Window(max_address_failures, window, max_entries)
        self._clock = clock

    @staticmethod
    def _user_key(username: str) -> str:
        # Case-folded: "Admin" and "admin" share one budget, whether or not both exist.
        return username.strip().casefold()

    def retry_after(self, username: str, address: str | None) -> float:
        """Seconds until an attempt for ``username`` from ``address`` is allowed (0: allowed now)."""
        now = self._clock()
        wait = self._users.retry_after(self._user_key(username), now)
        if address:
            wait = max(wait, self._addresses.retry_after(address, now))
        return wait

    def failure(self, username: str, address: str | None) -> None:
        """Count a failed attempt against the name and the address."""
        now = self._clock()
        self._users.add(self._user_key(username), now)
        if address:
            self._addresses.add(address, now)

    def success(self, username: str) -> None:
        """A correct password clears the name's failures (not the address's: a sprayer who guesses
        one account right must not reset its budget for the others)."""
        self._users.clear(self._user_key(username))
