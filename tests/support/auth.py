"""Passwords and tokens in tests: cheap Argon2id, and logging in to a running service.

Only the Argon2 cost is lowered (the algorithm stays Argon2id; production parameters cost ~50 ms
per hash), so that a test creating five users does not spend a second hashing.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import httpx
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

#: Argon2id parameters of the tests.
FAST_ARGON2: dict[str, int] = {"time_cost": 1, "memory_cost": 64, "parallelism": 1}

#: Where a service issues tokens for a user name and password (form fields).
TOKEN_PATH = "/api/v1/auth/token"


def fast_hashing(service: Any) -> None:
    """Give an open service's AuthManager cheap Argon2id parameters."""
    service.identity.auth.pwd_context = PasswordHash((Argon2Hasher(**FAST_ARGON2),))


@contextlib.contextmanager
def fast_argon2_everywhere() -> Iterator[None]:
    """Cheap Argon2id for every AuthManager built in the block (a server building its own)."""
    import witskit.security.auth as auth_module

    original = auth_module.Argon2Hasher
    auth_module.Argon2Hasher = functools.partial(original, **FAST_ARGON2)  # type: ignore[misc]
    try:
        yield
    finally:
        auth_module.Argon2Hasher = original  # type: ignore[misc]


def _access_token(response: httpx.Response) -> str:
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def login(url: str, username: str, password: str) -> str:
    """An access token of ``username`` from the service at ``url`` (its base URL)."""
    form = {"username": username, "password": password}
    return _access_token(httpx.post(f"{url}{TOKEN_PATH}", data=form, timeout=10))


async def login_async(url: str, username: str, password: str) -> str:
    """:func:`login` for async tests."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        return _access_token(await http.post(TOKEN_PATH, data={"username": username, "password": password}))
