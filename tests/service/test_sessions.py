"""Server-side sessions and the shared login throttle, over real HTTP on every backend.

Refresh tokens are ``refresh_sessions`` rows: rotation spends a token, a spent token presented again
revokes its whole family, logout revokes a family, account changes revoke every family of the user,
and of two concurrent refreshes with one token exactly one wins. The login throttle's counters are
``login_throttle`` rows, shared by every service on the database and kept across restarts.

Each backend gets one database for the module (SQLite in a temporary directory; PostgreSQL and
MariaDB from the storage tests' helpers, which skip an unreachable server, or fail under
``CI=true``). Tests keep apart by their own user names and client addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_helpers import database
from service_helpers import PASSWORD, make_config, running_service

from support.databases import BACKENDS
from witskit.security.auth import TokenType
from witskit.service.sessions import RefreshSessionRecord
from witskit.service.throttling import LoginThrottle

API = "/api/v1"


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per backend for the module."""
    with database(str(request.param), tmp_path_factory.mktemp("sessions")) as url:
        yield url


@dataclass
class Api:
    """A running service on the module's database, and a client with its own address."""

    service: Any
    client: httpx.AsyncClient

    async def user(self, roles: tuple[str, ...] = ("viewer",)) -> str:
        name = f"u-{uuid.uuid4().hex[:10]}"
        await self.service.identity.add_user(name, PASSWORD, list(roles), actor="test", client="local")
        return name

    async def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        return await self.client.post(f"{API}/auth/token", data={"username": name, "password": password})

    async def tokens(self, name: str) -> dict[str, Any]:
        response = await self.login(name)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def refresh(self, token: str) -> httpx.Response:
        return await self.client.post(f"{API}/auth/refresh", json={"refresh_token": token})

    async def logout(self, token: str) -> httpx.Response:
        return await self.client.post(f"{API}/auth/logout", json={"refresh_token": token})

    async def session_of(self, token: str) -> RefreshSessionRecord:
        jti = self.service.identity.auth.decode_token(token, TokenType.REFRESH)["jti"]
        found = await self.service.accounts.get_refresh_session(jti)
        assert found is not None
        return found  # type: ignore[no-any-return]

    async def audit(self, action: str) -> list[Any]:
        await self.service.audit.flush()
        return await self.service.accounts.list_audit(action=action)  # type: ignore[no-any-return]


_ADDRESSES = itertools.count(uuid.uuid4().int % 40_000)


def unique_address() -> str:
    """A client address no other test uses (the address throttle counts per address): drawn in
    turn from a random start, as random draws collided (50 of 62,500 collide about 2% of the time)."""
    n = next(_ADDRESSES) % 62_500
    return f"198.18.{n // 250}.{n % 250 + 1}"


@contextlib.asynccontextmanager
async def serving(database_url: str, tmp_path: Path, address: str | None = None) -> AsyncIterator[Api]:
    """A service on the module's database (users are created by the tests), with a client."""
    config = make_config(tmp_path, database_url=database_url)
    async with running_service(config, ingest=False, users=False) as running:
        transport = httpx.ASGITransport(app=running.service.app, client=(address or unique_address(), 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://witskit.test") as client:
            yield Api(running.service, client)


@contextlib.asynccontextmanager
async def two_services(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Api, Api]]:
    """Two services on the module's database, asked from one client address."""
    address = unique_address()
    async with (
        serving(database_url, tmp_path / "a", address) as first,
        serving(database_url, tmp_path / "b", address) as second,
    ):
        yield first, second


async def fail_logins(services: tuple[Api, Api], names: list[str], password: str) -> None:
    """A login per name of ``names`` with ``password``, asked of the two services in turn: all refused."""
    first, second = services
    for i, name in enumerate(names):
        ask = first if i % 2 else second
        assert (await ask.login(name, password)).status_code == 401


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(database_url, tmp_path) as running:
        yield running


# Rotation -------------------------------------------------------------------------------------
async def test_a_login_opens_a_session_and_each_refresh_continues_it(api: Api) -> None:
    name = await api.user()
    first = (await api.tokens(name))["refresh_token"]
    session = await api.session_of(first)
    record = await api.service.accounts.get_user(name)
    assert session.user_id == record.id
    assert session.used_at is None
    assert session.revoked_at is None
    assert session.client is not None
    assert session.client.startswith("198.18.")
    assert timedelta(days=6, hours=23) < session.expires_at - session.issued_at <= timedelta(days=7)

    second = await api.refresh(first)
    assert second.status_code == 200
    token = second.json()["refresh_token"]
    third = await api.refresh(token)
    assert third.status_code == 200
    rows = await api.service.accounts.list_refresh_sessions(family=session.family)
    assert len(rows) == 3
    spent = {r.jti: r.used_at is not None for r in rows}
    chain = [first, token, third.json()["refresh_token"]]
    assert [spent[(await api.session_of(t)).jti] for t in chain] == [True, True, False]
    assert {r.family for r in rows} == {session.family}
    assert all(r.revoked_at is None for r in rows)
    # Another login is another family.
    other = await api.session_of((await api.tokens(name))["refresh_token"])
    assert other.family != session.family


# The matrix: each scenario returns the refresh tokens it must have killed ---------------------
async def rotated_token_reused(api: Api, name: str) -> list[str]:
    old = (await api.tokens(name))["refresh_token"]
    new = (await api.refresh(old)).json()["refresh_token"]
    reuse = await api.refresh(old)
    assert reuse.status_code == 401
    entries = await api.audit("auth.refresh_reuse")
    assert any(e.actor == name and e.outcome == "denied" for e in entries)
    return [old, new]  # the thief's and the owner's: the whole family


async def logged_out(api: Api, name: str) -> list[str]:
    token = (await api.tokens(name))["refresh_token"]
    assert (await api.logout(token)).status_code == 204
    assert (await api.logout(token)).status_code == 204  # idempotent
    return [token]


async def logged_out_after_rotation(api: Api, name: str) -> list[str]:
    old = (await api.tokens(name))["refresh_token"]
    new = (await api.refresh(old)).json()["refresh_token"]
    newest = (await api.refresh(new)).json()["refresh_token"]
    assert (await api.logout(newest)).status_code == 204
    return [old, new, newest]


async def concurrent_double_refresh(api: Api, name: str) -> list[str]:
    token = (await api.tokens(name))["refresh_token"]
    first, second = await asyncio.gather(api.refresh(token), api.refresh(token))
    assert sorted([first.status_code, second.status_code]) == [200, 401]
    winner = first if first.status_code == 200 else second
    # The loser presented a spent token: the family is revoked, the winner's new token with it.
    return [token, winner.json()["refresh_token"]]


async def user_disabled(api: Api, name: str) -> list[str]:
    token = (await api.tokens(name))["refresh_token"]
    await api.service.identity.update_user(name, is_active=False, actor="test", client="local")
    await api.service.identity.update_user(name, is_active=True, actor="test", client="local")
    return [token]  # enabling the user again does not bring the session back


async def password_changed(api: Api, name: str) -> list[str]:
    tokens = await api.tokens(name)
    change = await api.client.post(
        f"{API}/auth/password",
        json={"current_password": PASSWORD, "new_password": PASSWORD + " and more"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert change.status_code == 204
    return [tokens["refresh_token"]]


async def roles_changed(api: Api, name: str) -> list[str]:
    token = (await api.tokens(name))["refresh_token"]
    await api.service.identity.update_user(name, roles=["operator"], actor="test", client="local")
    return [token]


async def unknown_session(api: Api, name: str) -> list[str]:
    # Validly signed, but no row: a token from before sessions were recorded, or a pruned one.
    auth = api.service.identity.auth
    forged = auth.create_refresh_token(
        (await api.service.accounts.get_user(name)).to_user()  # type: ignore[union-attr]
    )
    return [forged]


SCENARIOS: dict[str, Callable[[Api, str], Awaitable[list[str]]]] = {
    "rotated token reused": rotated_token_reused,
    "logged out": logged_out,
    "logged out after rotation": logged_out_after_rotation,
    "concurrent double refresh": concurrent_double_refresh,
    "user disabled": user_disabled,
    "password changed": password_changed,
    "roles changed": roles_changed,
    "unknown session": unknown_session,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_refresh_is_refused_after(api: Api, scenario: str) -> None:
    name = await api.user()
    dead = await SCENARIOS[scenario](api, name)
    for token in dead:
        response = await api.refresh(token)
        assert response.status_code == 401, (scenario, response.text)
        assert response.json() == {"detail": "invalid or expired refresh token"}
        assert response.headers["www-authenticate"] == "Bearer"
    # The user is not locked out: a new login is a new, working session.
    password = PASSWORD + " and more" if scenario == "password changed" else PASSWORD
    fresh = (await api.login(name, password)).json()["refresh_token"]
    assert (await api.refresh(fresh)).status_code == 200


async def test_revoked_sessions_are_marked_in_the_table(api: Api) -> None:
    name = await api.user()
    kept = (await api.tokens(name))["refresh_token"]
    old = (await api.tokens(name))["refresh_token"]
    new = (await api.refresh(old)).json()["refresh_token"]
    assert (await api.refresh(old)).status_code == 401  # reuse
    family = (await api.session_of(new)).family
    assert all(
        r.revoked_at is not None for r in await api.service.accounts.list_refresh_sessions(family=family)
    )
    # Only that family: the user's other session goes on.
    assert (await api.session_of(kept)).revoked_at is None
    assert (await api.refresh(kept)).status_code == 200


async def test_concurrent_rotations_of_one_token_exactly_one_wins(api: Api) -> None:
    # Straight at the table, so that every contender reaches the UPDATE (over HTTP the later ones
    # may already see the row used): the atomic UPDATE ... WHERE used_at IS NULL decides.
    name = await api.user()
    token = (await api.tokens(name))["refresh_token"]
    session = await api.session_of(token)
    now = datetime.now(UTC)

    def successor(i: int) -> RefreshSessionRecord:
        return RefreshSessionRecord(
            jti=f"{uuid.uuid4().hex}-{i}",
            family=session.family,
            user_id=session.user_id,
            issued_at=now,
            expires_at=now + timedelta(days=1),
        )

    results = await asyncio.gather(
        *(api.service.accounts.rotate_refresh_session(session.jti, successor(i)) for i in range(5))
    )
    assert sorted(results) == [False, False, False, False, True]
    rows = await api.service.accounts.list_refresh_sessions(family=session.family)
    assert len(rows) == 2  # the spent token and one successor, not five


# Logout ---------------------------------------------------------------------------------------
async def test_logout_answers_the_same_whatever_the_token(api: Api) -> None:
    name = await api.user()
    tokens = await api.tokens(name)
    auth = api.service.identity.auth
    now = int(datetime.now(UTC).timestamp())
    expired = auth._encode(
        {
            **auth.decode_token(tokens["refresh_token"], TokenType.REFRESH),
            "iat": now - 100,
            "nbf": now - 100,
            "exp": now - 10,
        }
    )
    answers = []
    for token in (
        tokens["refresh_token"],  # a live session
        tokens["refresh_token"],  # the same, again
        tokens["access_token"],  # not a refresh token
        expired,
        (await unknown_session(api, name))[0],
        "garbage",
    ):
        response = await api.logout(token)
        answers.append((response.status_code, response.content, response.headers.get("content-type")))
    assert answers == [(204, b"", None)] * len(answers)
    entries = await api.audit("auth.logout")
    mine = [(e.outcome, e.detail.get("reason")) for e in entries if e.actor in (name, None)][:6]
    assert ("success", None) in mine
    assert ("failure", "token expired") in mine
    assert (await api.logout("")).status_code == 422  # a missing token is a malformed request


async def test_logout_is_declared_public_and_needs_no_access_token(api: Api) -> None:
    schema = api.service.app.openapi()
    operation = schema["paths"][f"{API}/auth/logout"]["post"]
    assert operation["x-permission"] == "public"
    assert "204" in operation["responses"]


# Pruning --------------------------------------------------------------------------------------
async def test_expired_sessions_and_throttle_windows_are_pruned_at_login(api: Api) -> None:
    name = await api.user()
    record = await api.service.accounts.get_user(name)
    now = datetime.now(UTC)
    for jti, expires in (
        ("old-" + uuid.uuid4().hex, now - timedelta(seconds=1)),
        ("live-" + name, now + timedelta(days=1)),
    ):
        await api.service.accounts.add_refresh_session(
            RefreshSessionRecord(jti, "f-" + name, record.id, now - timedelta(days=7), expires)
        )
    ended = f"user:ended-{name}"
    await api.service.accounts.count_failure([ended], now - timedelta(seconds=400), timedelta(seconds=300))
    api.service.identity._pruned_at = float("-inf")  # as in a fresh process
    await api.tokens(name)
    left = {r.jti for r in await api.service.accounts.list_refresh_sessions(user_id=record.id)}
    assert "live-" + name in left
    assert not [j for j in left if j.startswith("old-")]
    assert await api.service.accounts.throttle_records([ended]) == {}


# The login throttle, shared -------------------------------------------------------------------
async def test_two_services_on_one_database_share_the_lockout(database_url: str, tmp_path: Path) -> None:
    async with two_services(database_url, tmp_path) as (first, second):
        name = await first.user()
        await fail_logins((first, second), [name] * 5, "not the password")
        for ask in (first, second):
            throttled = await ask.login(name)  # the right password, refused: the name is locked
            assert throttled.status_code == 429
            assert throttled.json() == {"detail": "too many failed logins; try again later"}
            assert 290 <= int(throttled.headers["retry-after"]) <= 300
        # The same name in another case shares the budget; another user is not affected.
        assert (await second.login(name.upper())).status_code == 429
        assert (await second.login(await first.user())).status_code == 200
    # And a restart does not clear it.
    async with serving(database_url, tmp_path / "c", unique_address()) as third:
        assert (await third.login(name)).status_code == 429


async def test_the_address_lockout_is_shared_too(database_url: str, tmp_path: Path) -> None:
    async with two_services(database_url, tmp_path) as (first, second):
        name = await first.user()
        sprayed = [f"sprayed-{uuid.uuid4().hex[:8]}" for _ in range(20)]
        await fail_logins((first, second), sprayed, "Winter2026!")
        assert (await first.login(name)).status_code == 429
        assert (await second.login(name)).status_code == 429
    async with serving(database_url, tmp_path / "c", unique_address()) as elsewhere:
        assert (await elsewhere.login(name)).status_code == 200  # the name itself never failed


class Clock:
    """A settable UTC clock."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_the_throttle_window_policy(api: Api) -> None:
    clock = Clock()
    throttle = LoginThrottle(api.service.accounts, max_user_failures=3, max_address_failures=5, clock=clock)
    name, address = f"t-{uuid.uuid4().hex[:8]}", unique_address()
    for _ in range(2):
        await throttle.failure(name, address)
    assert await throttle.retry_after(name, address) == 0.0
    clock.now += timedelta(seconds=100)
    await throttle.failure(name, address)  # the third failure, 100 s into the window
    assert await throttle.retry_after(name, None) == pytest.approx(200.0)  # until the first leaves
    assert await throttle.retry_after(name.upper(), "192.0.2.99") == pytest.approx(200.0)
    assert await throttle.retry_after("someone-else", address) == 0.0  # the address has 3 of 5
    clock.now += timedelta(seconds=200)
    assert await throttle.retry_after(name, address) == 0.0  # the window ended
    await throttle.failure(name, address)  # a new window of one failure
    assert await throttle.retry_after(name, address) == 0.0
    await throttle.failure(name, address)
    await throttle.success(name)  # clears the name, not the address
    for _ in range(2):
        await throttle.failure(name, address)
    assert await throttle.retry_after(name, None) == 0.0
    await throttle.failure("another", address)  # the address's fifth in its new window
    assert await throttle.retry_after("a third name", address) == pytest.approx(300.0)
    clock.now += timedelta(seconds=301)
    assert await throttle.prune() >= 3
    assert await throttle.retry_after(name, address) == 0.0


async def test_a_user_name_of_any_length_is_throttled(api: Api) -> None:
    clock = Clock()
    throttle = LoginThrottle(api.service.accounts, max_user_failures=1, clock=clock)
    long_name = "x" * 5000 + uuid.uuid4().hex
    await throttle.failure(long_name, None)
    assert await throttle.retry_after(long_name, None) > 0
    assert await throttle.retry_after(long_name[:-1], None) == 0.0


class CountingVerifier:
    """Counts the password checks of a service (wraps its real Argon2id verifier)."""

    def __init__(self, service: Any) -> None:
        self.calls = 0
        self._auth = service.identity.auth
        self._verify = self._auth.verify_password
        self._auth.verify_password = self

    def __call__(self, password: str, hashed: str) -> bool:
        self.calls += 1
        return bool(self._verify(password, hashed))


async def test_concurrent_wrong_logins_reach_the_password_check_at_most_the_limit(api: Api) -> None:
    name = await api.user()
    verifier = CountingVerifier(api.service)
    answers = await asyncio.gather(*(api.login(name, f"guess number {i:02}") for i in range(40)))
    statuses = sorted(a.status_code for a in answers)
    assert verifier.calls <= 5, f"{verifier.calls} of 40 concurrent guesses reached the password check"
    assert statuses.count(401) == verifier.calls
    assert statuses.count(429) == 40 - verifier.calls
    assert (await api.login(name)).status_code == 429  # the right password, too late
    assert verifier.calls <= 5


async def test_a_right_password_gives_back_its_reservation(api: Api) -> None:
    name = await api.user()
    for _ in range(4):
        assert (await api.login(name, "not the password")).status_code == 401
    assert (await api.login(name)).status_code == 200  # the name's count is cleared
    for _ in range(5):
        assert (await api.login(name, "not the password")).status_code == 401
    assert (await api.login(name)).status_code == 429


async def test_the_password_change_is_throttled_like_a_login(api: Api) -> None:
    name = await api.user()
    access = {"Authorization": f"Bearer {(await api.tokens(name))['access_token']}"}
    verifier = CountingVerifier(api.service)

    async def change(current: str) -> httpx.Response:
        body = {"current_password": current, "new_password": "a brand new passphrase"}
        return await api.client.post(f"{API}/auth/password", json=body, headers=access)

    answers = await asyncio.gather(*(change(f"guess number {i:02}") for i in range(40)))
    statuses = [a.status_code for a in answers]
    assert verifier.calls <= 5, f"{verifier.calls} of 40 guesses reached the password check"
    assert statuses.count(400) == verifier.calls
    assert statuses.count(429) == 40 - verifier.calls
    refused = await change(PASSWORD)  # the right one, too late: a token thief gets no further
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert (await api.login(name)).status_code == 429  # and the login shares the count
    assert next(a.detail.get("reason") for a in await api.audit("user.password") if a.actor == name) == (
        "throttled"
    )


async def test_a_right_current_password_clears_the_count(api: Api) -> None:
    name = await api.user()
    access = {"Authorization": f"Bearer {(await api.tokens(name))['access_token']}"}
    for _ in range(4):
        body = {"current_password": "not it at all", "new_password": "a brand new passphrase"}
        assert (await api.client.post(f"{API}/auth/password", json=body, headers=access)).status_code == 400
    body = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    assert (await api.client.post(f"{API}/auth/password", json=body, headers=access)).status_code == 204
    assert (await api.login(name, "a brand new passphrase")).status_code == 200


async def start_of_a_second() -> None:
    """Wait until just after a whole second, so what follows happens within one second."""
    now = datetime.now(UTC)
    await asyncio.sleep(1.0 - now.microsecond / 1e6 + 0.01)


@pytest.mark.parametrize("change", ["roles", "password", "disable and enable"])
async def test_a_token_issued_in_the_same_second_before_a_change_is_revoked(api: Api, change: str) -> None:
    name = await api.user()
    await start_of_a_second()
    tokens = await api.tokens(name)
    if change == "roles":
        await api.service.identity.update_user(name, roles=["operator"], actor="test", client="local")
    elif change == "password":
        await api.service.identity.update_user(name, password=PASSWORD + "!", actor="test", client="local")
    else:
        await api.service.identity.update_user(name, is_active=False, actor="test", client="local")
        await api.service.identity.update_user(name, is_active=True, actor="test", client="local")
    record = await api.service.accounts.get_user(name)
    issued = api.service.identity.auth.decode_token(tokens["access_token"])["iat"]
    assert int(issued) == int(record.tokens_valid_after.timestamp()), "not in one second: rerun"
    old = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await api.client.get(f"{API}/auth/me", headers=old)).status_code == 401
    # A login right after the change, in the same second, is valid.
    fresh = await api.tokens(name) if change != "password" else (await api.login(name, PASSWORD + "!")).json()
    new = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert (await api.client.get(f"{API}/auth/me", headers=new)).status_code == 200


async def test_a_key_named_twice_in_one_failure_counts_once(api: Api) -> None:
    """One statement may not update a row twice (PostgreSQL refused it with a cardinality error):
    a failure naming one key twice counts one failure against it."""
    accounts = api.service.accounts
    key = f"addr:{unique_address()}"
    now = datetime.now(UTC)
    await accounts.count_failure([key, key], now, timedelta(seconds=300))
    await accounts.count_failure([key], now, timedelta(seconds=300))
    refused = await accounts.reserve_attempt({key: 2}, now, timedelta(seconds=300))
    assert refused is not None
    assert refused[key].failures == 2
    assert await accounts.reserve_attempt({key: 3}, now, timedelta(seconds=300)) is None


async def test_concurrent_reservations_and_a_prune_all_complete(api: Api) -> None:
    """40 attempts at once on one new name, with the prune of ended windows running among them,
    on a table that holds other keys: no attempt fails (MariaDB picked deadlock victims, which
    answered 503 before they were run again)."""
    accounts = api.service.accounts
    window = timedelta(seconds=300)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    await accounts.count_failure([f"user:old-{uuid.uuid4().hex[:8]}" for _ in range(50)], long_ago, window)
    await accounts.count_failure([f"addr:{unique_address()}" for _ in range(50)], datetime.now(UTC), window)
    for _ in range(10):
        limits = {f"user:u-{uuid.uuid4().hex[:10]}": 5, f"addr:{unique_address()}": 20}
        now = datetime.now(UTC)
        results = await asyncio.gather(
            accounts.prune_login_throttle(),
            *(accounts.reserve_attempt(limits, now, window) for _ in range(40)),
            return_exceptions=True,
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert sum(r is None for r in results[1:]) == 5
