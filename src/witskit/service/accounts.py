"""Accounts: users, API keys and the audit log, in the same database as the data.

The tables are created by the Alembic revision ``0002`` (``storage/migrations/versions/``), which
follows the store's schema; this module holds their SQLAlchemy Core definitions and
:class:`AccountStore`, the async access to them. Nothing here knows about HTTP.

* ``users``: one row per person or service account. ``password_hash`` is an Argon2id PHC string
  (:meth:`witskit.security.auth.AuthManager.hash_password`); ``roles`` are role names
  (:class:`~witskit.security.rbac.Role`), comma-separated; ``tokens_valid_after`` revokes every
  token issued before it (set when a user is disabled, changes password or changes roles).
* ``api_keys``: only the SHA-256 of each key is stored (:func:`~witskit.security.auth.hash_api_key`);
  ``key_id`` is a short public handle to list and revoke it by.
* ``audit_log``: who did what, when (UTC), from where, and how it ended. Never a secret.

Revision ``0003`` adds the state the service shares across restarts and processes:
``refresh_sessions`` (one row per refresh token: rotation, reuse detection, logout),
``connections`` (ingest sources added through the API) and ``login_throttle`` (failed-login counters).

* ``refresh_sessions``: a refresh token is accepted only while its row (by the token's ``jti``) is
  neither used, revoked nor expired. Rotation marks it used and records its successor in the same
  ``family``; a whole family is revoked at logout, on reuse of a used token, and (with every family
  of the user) when the user is disabled or changes password or roles.
* ``login_throttle``: one row per throttled key (a user name or an address): the failures counted
  since ``window_start``, and ``locked_until``, the end of that window (a key at its limit is
  refused until then). The policy is :class:`witskit.service.throttling.LoginThrottle`'s.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from witskit.errors import UsageError
from witskit.security.auth import User
from witskit.security.rbac import Role
from witskit.storage.database import Database
from witskit.storage.errors import DatabaseUnavailable
from witskit.storage.schema import UTCDateTime

if TYPE_CHECKING:  # the record of a kept connection is defined with the connections
    from witskit.service.connections import StoredConnection

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "AccountExists",
    "AccountNotFound",
    "AccountStore",
    "ApiKeyRecord",
    "AuditEvent",
    "AuditRecord",
    "LastAdminError",
    "RefreshSessionRecord",
    "ThrottleRecord",
    "UserRecord",
    "accounts_metadata",
    "api_keys",
    "audit_log",
    "check_password",
    "check_username",
    "connections",
    "login_throttle",
    "new_key_id",
    "parse_roles",
    "refresh_sessions",
    "users",
]

T = TypeVar("T")

#: Times a throttle transaction chosen as a deadlock victim is run again (jittered, ~0.25 s in all).
_DEADLOCK_RETRIES: Final = 8
#: Long enough that a guessed password is unlikely within the login throttle's limits.
MIN_PASSWORD_LENGTH: Final = 12
#: Argon2 hashes any length, but a megabyte "password" per login attempt is a cheap denial of service.
MAX_PASSWORD_LENGTH: Final = 1024

# \A...\Z, not ^...$: "$" also matches before a final newline, and "alice\n" is not "alice".
_USERNAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}\Z")

accounts_metadata = MetaData()

users = Table(
    "users",
    accounts_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("email", String(255), nullable=True),
    Column("password_hash", String(255), nullable=False),
    Column("roles", String(255), nullable=False, server_default=""),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("last_login_at", UTCDateTime(), nullable=True),
    Column("tokens_valid_after", UTCDateTime(), nullable=True),
)

api_keys = Table(
    "api_keys",
    accounts_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", String(32), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("roles", String(255), nullable=False, server_default=""),
    Column("owner", String(64), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

audit_log = Table(
    "audit_log",
    accounts_metadata,
    # INTEGER PRIMARY KEY is SQLite's rowid (autoincrementing); BIGINT elsewhere.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False, index=True),
    Column("actor", String(255), nullable=True),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("target", String(255), nullable=True),
    Column("client", String(64), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("detail", Text, nullable=True),
)

# Revision 0003: state the service shares between restarts and processes.

refresh_sessions = Table(
    "refresh_sessions",
    accounts_metadata,
    Column("jti", String(64), primary_key=True),
    Column("family", String(64), nullable=False, index=True),
    Column("user_id", Integer, nullable=False, index=True),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("client", String(64), nullable=True),
)

connections = Table(
    "connections",
    accounts_metadata,
    Column("name", String(100), primary_key=True),
    Column("url", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("created_by", String(255), nullable=True),
)

login_throttle = Table(
    "login_throttle",
    accounts_metadata,
    Column("key", String(255), primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("window_start", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime(), nullable=True),
)


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


class AccountExists(UsageError):
    """A user (or API key) by that name already exists."""


class AccountNotFound(UsageError):
    """No user (or API key) by that name or id."""


class LastAdminError(UsageError):
    """The change would leave no active super_admin (and so nobody to manage users)."""


def _now() -> datetime:
    return datetime.now(UTC)


def check_username(name: str) -> str:
    """The user name, or :class:`UsageError`: 1-64 of letters, digits and ``_ . @ -``."""
    if not isinstance(name, str) or not _USERNAME.match(name):
        raise UsageError(
            "a user name is 1-64 characters: letters, digits and _ . @ -, starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    """The password, or :class:`UsageError` when shorter than 12 or longer than 1024 characters."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"a password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UsageError(f"a password must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def parse_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Role names, checked against :class:`Role`, in order and without repeats."""
    out: dict[str, None] = {}
    for item in roles:
        for part in str(item).split(","):
            name = part.strip().lower()
            if not name:
                continue
            try:
                out[Role(name).value] = None
            except ValueError:
                known = ", ".join(r.value for r in Role)
                raise UsageError(f"unknown role {name!r} (known: {known})") from None
    return tuple(out)


def new_key_id() -> str:
    """A short public handle for an API key (not a secret: it names the key in lists and logs)."""
    return "k" + secrets.token_hex(6)


def _roles_text(roles: Sequence[str]) -> str:
    return ",".join(roles)


def _roles_of(text: str | None) -> tuple[str, ...]:
    return tuple(r for r in (text or "").split(",") if r)


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user (the password hash is kept out of ``repr``)."""

    id: int
    username: str
    email: str | None
    roles: tuple[str, ...]
    is_active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    tokens_valid_after: datetime | None
    password_hash: str = field(repr=False)

    def to_user(self) -> User:
        """The plan's :class:`~witskit.security.auth.User` model."""
        return User(
            username=self.username,
            email=self.email,
            roles=list(self.roles),
            is_active=self.is_active,
            created_at=self.created_at,
        )


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored API key (its hash is kept out of ``repr``)."""

    id: int
    key_id: str
    name: str
    roles: tuple[str, ...]
    owner: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    key_hash: str = field(repr=False)

    def usable(self, now: datetime | None = None) -> bool:
        """True when neither revoked nor expired."""
        now = now or _now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit entry to write: who (``actor``), what (``action``, ``target``), how it ended
    (``outcome``: success, failure, denied), when (UTC), from where (``client``)."""

    action: str
    outcome: str
    actor: str | None = None
    target: str | None = None
    client: str | None = None
    request_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored audit entry."""

    id: int
    at: datetime
    actor: str | None
    action: str
    outcome: str
    target: str | None
    client: str | None
    request_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RefreshSessionRecord:
    """One refresh token issued: its ``jti``, its ``family`` (one login and every rotation of it),
    whose it is, when it was issued and expires, and whether it was used (rotated) or revoked."""

    jti: str
    family: str
    user_id: int
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None
    client: str | None = None


@dataclass(frozen=True, slots=True)
class ThrottleRecord:
    """The failed logins counted against one key since ``window_start``; the window ends at
    ``locked_until``."""

    key: str
    failures: int
    window_start: datetime
    locked_until: datetime


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=int(row.id),
        username=str(row.username),
        email=row.email,
        roles=_roles_of(row.roles),
        is_active=bool(row.is_active),
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login_at=row.last_login_at,
        tokens_valid_after=row.tokens_valid_after,
        password_hash=str(row.password_hash),
    )


def _api_key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=int(row.id),
        key_id=str(row.key_id),
        name=str(row.name),
        roles=_roles_of(row.roles),
        owner=row.owner,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        key_hash=str(row.key_hash),
    )


def _session(row: Any) -> RefreshSessionRecord:
    return RefreshSessionRecord(
        jti=str(row.jti),
        family=str(row.family),
        user_id=int(row.user_id),
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        revoked_at=row.revoked_at,
        client=row.client,
    )


def _session_row(session: RefreshSessionRecord) -> dict[str, Any]:
    return {
        "jti": session.jti,
        "family": session.family,
        "user_id": session.user_id,
        "issued_at": session.issued_at,
        "expires_at": session.expires_at,
        "used_at": session.used_at,
        "revoked_at": session.revoked_at,
        "client": (session.client or None) and session.client[:64],
    }


def _count_failures(dialect: str, keys: Sequence[str], now: datetime, window: timedelta) -> Any:
    """One INSERT ... ON CONFLICT (upsert) counting a failure against every key.

    A new key, or one whose window has ended, starts a window of one failure at ``now``; a key in
    its window counts one more. SQL does no date arithmetic here (it differs per backend): the end
    of a window is computed once, in Python, when the window starts.
    """
    end = now + window
    rows = [{"key": k, "failures": 1, "window_start": now, "locked_until": end} for k in keys]
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


async def _keep_an_admin(
    conn: AsyncConnection, username: str, roles: str | None, is_active: bool | None
) -> None:
    """Raise :class:`LastAdminError` when changing ``username`` this way leaves no active super_admin.

    Reads the active users ``FOR UPDATE``, in id order (one lock order: no deadlock between two
    such changes): a concurrent change waits for this transaction and then sees its result.
    """
    admin = Role.SUPER_ADMIN.value
    stmt = (
        select(users.c.username, users.c.roles)
        .where(users.c.is_active == true())
        .order_by(users.c.id)
        .with_for_update()
    )
    admins = {str(r.username) for r in (await conn.execute(stmt)).all() if admin in _roles_of(r.roles)}
    if username not in admins:
        return  # not an active super_admin now: nothing to lose
    stays = is_active is not False and (roles is None or admin in _roles_of(roles))
    if stays or admins - {username}:
        return
    raise LastAdminError(
        f"{username!r} is the last active super_admin: add another before disabling it or taking "
        "its role away"
    )


def _audit(row: Any) -> AuditRecord:
    try:
        detail = json.loads(row.detail) if row.detail else {}
    except ValueError:
        detail = {"text": str(row.detail)}
    return AuditRecord(
        id=int(row.id),
        at=row.at,
        actor=row.actor,
        action=str(row.action),
        outcome=str(row.outcome),
        target=row.target,
        client=row.client,
        request_id=row.request_id,
        detail=detail if isinstance(detail, dict) else {"value": detail},
    )


class AccountStore:
    """Async access to the accounts tables of a WitsKit database (SQLite, PostgreSQL, MariaDB).

    Open with :meth:`open` after the store has migrated the database (``Store.open(url)`` does), or
    with ``migrate=True``. Database errors are raised as
    :class:`~witskit.storage.errors.StorageError` with the URL sanitized, exactly as the store does.
    """

    def __init__(self, db: Database) -> None:
        """Use :meth:`open`."""
        self._db = db

    @classmethod
    async def open(
        cls, url: Any, *, migrate: bool = False, pool_size: int = 5, timeout: float = 30.0
    ) -> AccountStore:
        """Connect to the database at ``url`` (a string or ``SecretStr``)."""
        # The storage package's own URL parsing, engine settings (SQLite WAL and busy timeout,
        # hidden parameters) and error translation: one adapter per backend, shared.
        from witskit.storage.migrations import aupgrade

        db = Database.open(url, pool_size=pool_size, timeout=timeout)  # connects on first use
        try:
            if db.in_memory:
                raise UsageError(
                    "the service needs a database that several connections share: use a SQLite file "
                    "(sqlite:///path.db) or a server, not sqlite:///:memory:"
                )
            if migrate:
                await aupgrade(url, timeout=timeout)
        except BaseException:
            await db.aclose()
            raise
        return cls(db)

    async def aclose(self) -> None:
        """Close the pooled connections. Idempotent."""
        await self._db.aclose()

    def __repr__(self) -> str:
        return f"<AccountStore {self._db.display}>"

    # Users ---------------------------------------------------------------------------------------
    async def add_user(
        self, username: str, password_hash: str, roles: Sequence[str], *, email: str | None = None
    ) -> UserRecord:
        """Create a user; :class:`AccountExists` when the name is taken."""
        check_username(username)
        now = _now()
        try:
            async with self._db.write("add a user to") as conn:
                taken = (await conn.execute(select(users.c.id).where(users.c.username == username))).first()
                if taken is not None:
                    raise AccountExists(f"user {username!r} already exists")
                await conn.execute(
                    insert(users).values(
                        username=username,
                        email=email,
                        password_hash=password_hash,
                        roles=_roles_text(parse_roles(roles)),
                        is_active=True,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except sa_exc.IntegrityError:  # a concurrent add of the same name won
            raise AccountExists(f"user {username!r} already exists") from None
        found = await self.get_user(username)
        assert found is not None
        return found

    async def get_user(self, username: str) -> UserRecord | None:
        """The user, or None."""
        async with self._db.read("read a user from") as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return None if row is None else _user(row)

    async def list_users(self) -> list[UserRecord]:
        """Every user, by name."""
        async with self._db.read("list the users of") as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).all()
        return [_user(r) for r in rows]

    async def count_users(self) -> int:
        """How many users exist."""
        async with self._db.read("count the users of") as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def update_user(
        self,
        username: str,
        *,
        roles: Sequence[str] | None = None,
        is_active: bool | None = None,
        password_hash: str | None = None,
        email: str | None = None,
        revoke_tokens: bool = False,
        keep_an_admin: bool = True,
    ) -> UserRecord:
        """Change a user; :class:`AccountNotFound` when there is none by that name.

        ``revoke_tokens`` makes every token issued before now invalid (the service sets it for a
        disable, a password change and a change of roles). With ``keep_an_admin``, a change that
        would leave no active super_admin raises :class:`LastAdminError`: the check and the change
        are one transaction, with the active users' rows locked (SQLite: the database), so two
        super_admins demoting each other at once cannot both succeed.
        """
        now = _now()
        values: dict[str, Any] = {"updated_at": now}
        if roles is not None:
            values["roles"] = _roles_text(parse_roles(roles))
        if is_active is not None:
            values["is_active"] = is_active
        if password_hash is not None:
            values["password_hash"] = password_hash
        if email is not None:
            values["email"] = email or None
        if revoke_tokens:
            # Exact (microseconds): token ``iat`` claims are too, so a token issued earlier in this
            # same second is revoked, and one issued after the change is not.
            values["tokens_valid_after"] = now
        async with self._db.write("update a user in") as conn:
            if keep_an_admin and (roles is not None or is_active is False):
                await _keep_an_admin(conn, username, values.get("roles"), is_active)
            result = await conn.execute(update(users).where(users.c.username == username).values(**values))
            if result.rowcount == 0:
                raise AccountNotFound(f"no user {username!r}")
            if revoke_tokens:
                # Their refresh sessions end with the change, in the same transaction.
                user_id = select(users.c.id).where(users.c.username == username).scalar_subquery()
                await conn.execute(
                    update(refresh_sessions)
                    .where(refresh_sessions.c.user_id == user_id, refresh_sessions.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
        found = await self.get_user(username)
        assert found is not None
        return found

    async def record_login(self, username: str) -> None:
        """Remember when the user last logged in."""
        async with self._db.write("update a user in") as conn:
            await conn.execute(update(users).where(users.c.username == username).values(last_login_at=_now()))

    # API keys ------------------------------------------------------------------------------------
    async def add_api_key(
        self,
        name: str,
        key_hash: str,
        roles: Sequence[str],
        *,
        owner: str | None = None,
        expires_at: datetime | None = None,
    ) -> ApiKeyRecord:
        """Store a new key's hash; returns its record (with a fresh ``key_id``)."""
        if not name or len(name) > 100:
            raise UsageError("an API key name is 1-100 characters")
        key_id = new_key_id()
        async with self._db.write("add an API key to") as conn:
            await conn.execute(
                insert(api_keys).values(
                    key_id=key_id,
                    name=name,
                    key_hash=key_hash,
                    roles=_roles_text(parse_roles(roles)),
                    owner=owner,
                    created_at=_now(),
                    expires_at=expires_at,
                )
            )
        async with self._db.read("read an API key from") as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).one()
        return _api_key(row)

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash (revoked or not), or None."""
        async with self._db.read("read an API key from") as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))).first()
        return None if row is None else _api_key(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, newest first."""
        async with self._db.read("list the API keys of") as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.id.desc()))).all()
        return [_api_key(r) for r in rows]

    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key (idempotent); :class:`AccountNotFound` when there is none by that id."""
        async with self._db.write("revoke an API key in") as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        if row is None:
            raise AccountNotFound(f"no API key {key_id!r}")
        return _api_key(row)

    async def touch_api_key(self, key_id: str) -> None:
        """Remember when the key was last used."""
        async with self._db.write("update an API key in") as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at=_now())
            )

    # Refresh sessions ----------------------------------------------------------------------------
    async def add_refresh_session(self, session: RefreshSessionRecord) -> None:
        """Record a refresh token issued at a login."""
        async with self._db.write("record a session in") as conn:
            await conn.execute(insert(refresh_sessions).values(**_session_row(session)))

    async def get_refresh_session(self, jti: str) -> RefreshSessionRecord | None:
        """The session of a refresh token, or None."""
        async with self._db.read("read a session from") as conn:
            row = (await conn.execute(select(refresh_sessions).where(refresh_sessions.c.jti == jti))).first()
        return None if row is None else _session(row)

    async def list_refresh_sessions(
        self, *, user_id: int | None = None, family: str | None = None
    ) -> list[RefreshSessionRecord]:
        """Sessions (of a user, of a family), oldest first."""
        stmt = select(refresh_sessions).order_by(refresh_sessions.c.issued_at, refresh_sessions.c.jti)
        if user_id is not None:
            stmt = stmt.where(refresh_sessions.c.user_id == user_id)
        if family is not None:
            stmt = stmt.where(refresh_sessions.c.family == family)
        async with self._db.read("read the sessions of") as conn:
            rows = (await conn.execute(stmt)).all()
        return [_session(r) for r in rows]

    async def rotate_refresh_session(self, jti: str, successor: RefreshSessionRecord) -> bool:
        """Mark ``jti`` used and record ``successor``, in one transaction; False (and nothing
        written) unless ``jti`` was still unused, unrevoked and unexpired.

        The check and the mark are one ``UPDATE ... WHERE used_at IS NULL``: of two rotations of the
        same token, however concurrent, exactly one gets the row.
        """
        now = _now()
        async with self._db.write("rotate a session in") as conn:
            result = await conn.execute(
                update(refresh_sessions)
                .where(
                    refresh_sessions.c.jti == jti,
                    refresh_sessions.c.used_at.is_(None),
                    refresh_sessions.c.revoked_at.is_(None),
                    refresh_sessions.c.expires_at > now,
                )
                .values(used_at=now)
            )
            if result.rowcount != 1:
                return False
            await conn.execute(insert(refresh_sessions).values(**_session_row(successor)))
        return True

    async def revoke_refresh_family(self, family: str) -> int:
        """Revoke every session of a family not revoked yet; how many were."""
        async with self._db.write("revoke sessions in") as conn:
            result = await conn.execute(
                update(refresh_sessions)
                .where(refresh_sessions.c.family == family, refresh_sessions.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        return int(result.rowcount)

    async def prune_refresh_sessions(self, now: datetime | None = None) -> int:
        """Delete the sessions whose token has expired (used, revoked or not); how many.

        A used or revoked row is kept until then: a stolen token presented again before it expires
        must still be recognised as reused.
        """
        async with self._db.write("prune the sessions of") as conn:
            result = await conn.execute(
                delete(refresh_sessions).where(refresh_sessions.c.expires_at <= (now or _now()))
            )
        return int(result.rowcount)

    # Login throttle ------------------------------------------------------------------------------
    async def throttle_records(self, keys: Sequence[str]) -> dict[str, ThrottleRecord]:
        """The failure counters of these keys (keys without failures are absent)."""
        async with self._db.read("read the login throttle of") as conn:
            rows = (await conn.execute(select(login_throttle).where(login_throttle.c.key.in_(keys)))).all()
        return {
            str(r.key): ThrottleRecord(str(r.key), int(r.failures), r.window_start, r.locked_until)
            for r in rows
        }

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
            over = {
                str(r.key): ThrottleRecord(str(r.key), int(r.failures) - 1, r.window_start, r.locked_until)
                for r in (await conn.execute(stmt)).all()
                if int(r.failures) > limits[str(r.key)]
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
        cutoff = literal(now or _now(), UTCDateTime())
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

    # Audit log -----------------------------------------------------------------------------------
    async def write_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append audit entries (one transaction)."""
        if not events:
            return
        rows = [
            {
                "at": e.at,
                "actor": (e.actor or None) and e.actor[:255],
                "action": e.action[:64],
                "outcome": e.outcome[:16],
                "target": (e.target or None) and e.target[:255],
                "client": (e.client or None) and e.client[:64],
                "request_id": (e.request_id or None) and e.request_id[:64],
                "detail": json.dumps(e.detail, default=str, separators=(",", ":")) if e.detail else None,
            }
            for e in events
        ]
        async with self._db.write("write the audit log of") as conn:
            await conn.execute(insert(audit_log), rows)

    async def list_audit(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditRecord]:
        """Audit entries, newest first; ``before_id`` pages back."""
        stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(audit_log.c.id < before_id)
        if actor is not None:
            stmt = stmt.where(audit_log.c.actor == actor)
        if action is not None:
            stmt = stmt.where(audit_log.c.action == action)
        async with self._db.read("read the audit log of") as conn:
            rows = (await conn.execute(stmt)).all()
        return [_audit(r) for r in rows]

    # Connections added through the API (witskit.service.connections) -----------------------------
    async def list_connections(self) -> list[StoredConnection]:
        """Every kept connection, by name."""
        from witskit.service.connections import StoredConnection

        async with self._db.read("list the connections of") as conn:
            rows = (await conn.execute(select(connections).order_by(connections.c.name))).all()
        return [
            StoredConnection(
                name=str(r.name),
                url=str(r.url),
                enabled=bool(r.enabled),
                created_at=r.created_at,
                updated_at=r.updated_at,
                created_by=r.created_by,
            )
            for r in rows
        ]

    async def add_connection(
        self,
        name: str,
        url: str,
        *,
        enabled: bool = True,
        created_by: str | None = None,
        created_at: datetime | None = None,
    ) -> None:
        """Keep a connection (its URL as given); :class:`UsageError` when the name is kept already."""
        from witskit.service.connections import STORED_NAME_MAX

        if not 0 < len(name) <= STORED_NAME_MAX:
            raise UsageError(
                f"a connection added through the API is named with 1-{STORED_NAME_MAX} characters"
            )
        now = _now()
        async with self._db.write("add a connection to") as conn:
            taken = (await conn.execute(select(connections.c.name).where(connections.c.name == name))).first()
            if taken is not None:
                raise UsageError(f"a connection named {name!r} already exists")
            await conn.execute(
                insert(connections).values(
                    name=name,
                    url=url,
                    enabled=enabled,
                    created_at=created_at or now,
                    updated_at=now,
                    created_by=(created_by or None) and created_by[:255],
                )
            )

    async def set_connection_enabled(self, name: str, enabled: bool) -> bool:
        """Mark a kept connection started or stopped; False when none is kept by that name."""
        async with self._db.write("update a connection in") as conn:
            result = await conn.execute(
                update(connections)
                .where(connections.c.name == name)
                .values(enabled=enabled, updated_at=_now())
            )
        return bool(result.rowcount)

    async def remove_connection(self, name: str) -> bool:
        """Forget a kept connection; False when none is kept by that name."""
        async with self._db.write("remove a connection from") as conn:
            result = await conn.execute(connections.delete().where(connections.c.name == name))
        return bool(result.rowcount)
