"""Accounts: users and API keys, in the same database as the data.

The service keeps six tables there, created by the Alembic revisions ``0002`` and ``0003``
(``storage/migrations/versions/``), which follow the store's schema. Each kind of record has its
module, with its table and its store on the shared database handle: users and API keys here,
refresh sessions in :mod:`~witskit.service.sessions`, the audit log in :mod:`~witskit.service.audit`,
the login throttle in :mod:`~witskit.service.throttling` and the connections added through the API
in :mod:`~witskit.service.connections`. :class:`AccountStore` opens the database and joins those
stores into one object, the service's access to all six. Nothing here knows about HTTP.

* ``users``: one row per person or service account. ``password_hash`` is an Argon2id PHC string
  (:meth:`witskit.security.auth.AuthManager.hash_password`); ``roles`` are role names
  (:class:`~witskit.security.rbac.Role`), comma-separated; ``tokens_valid_after`` revokes every
  token issued before it (set when a user is disabled, changes password or changes roles). The
  rules for a name and a password are :mod:`witskit.security.credentials`'.
* ``api_keys``: only the SHA-256 of each key is stored (:func:`~witskit.security.auth.hash_api_key`);
  ``key_id`` is a short public handle to list and revoke it by.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Boolean, Column, Integer, String, Table, func, insert, select, true, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from witskit.errors import UsageError
from witskit.security.auth import User
from witskit.security.credentials import MAX_USERNAME_LENGTH, check_username
from witskit.security.rbac import Role
from witskit.service._tables import metadata, utcnow
from witskit.service.alarm_settings import AlarmSettingStore
from witskit.service.analytics import AnalyticsStore
from witskit.service.audit import AuditStore
from witskit.service.connections import ConnectionStore
from witskit.service.sessions import SessionStore, revoke_user_sessions
from witskit.service.throttling import ThrottleStore
from witskit.storage.database import Database
from witskit.storage.schema import UTCDateTime

__all__ = [
    "AccountExists",
    "AccountNotFound",
    "AccountStore",
    "ApiKeyRecord",
    "LastAdminError",
    "UserRecord",
    "accounts_metadata",
    "api_keys",
    "new_key_id",
    "parse_roles",
    "users",
]

#: Every table of the service (this module imports the modules that define them).
accounts_metadata = metadata

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(MAX_USERNAME_LENGTH), nullable=False, unique=True),
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
    metadata,
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


class AccountExists(UsageError):
    """A user (or API key) by that name already exists."""


class AccountNotFound(UsageError):
    """No user (or API key) by that name or id."""


class LastAdminError(UsageError):
    """The change would leave no active super_admin (and so nobody to manage users)."""


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
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


_R = TypeVar("_R", UserRecord, ApiKeyRecord)


def _record(kind: type[_R], row: Any) -> _R:
    """The record of a row (its ``roles`` column: comma-separated role names)."""
    return kind(**{**row._mapping, "roles": _roles_of(row.roles)})


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


class AccountStore(
    SessionStore, ThrottleStore, AuditStore, ConnectionStore, AlarmSettingStore, AnalyticsStore
):
    """Async access to the service's tables of a WitsKit database (SQLite, PostgreSQL, MariaDB):
    users and API keys here, and (from the stores it joins) refresh sessions, the login throttle,
    the audit log, the connections and the alarm rules and webhooks added through the API, and the
    stored rig states, all on one database handle.

    Open with :meth:`open` after the store has migrated the database (``Store.open(url)`` does), or
    with ``migrate=True``. Database errors are raised as
    :class:`~witskit.storage.errors.StorageError` with the URL sanitized, exactly as the store does.
    """

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
        now = utcnow()
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
        return None if row is None else _record(UserRecord, row)

    async def list_users(self) -> list[UserRecord]:
        """Every user, by name."""
        async with self._db.read("list the users of") as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).all()
        return [_record(UserRecord, r) for r in rows]

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
        now = utcnow()
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
                await conn.execute(revoke_user_sessions(user_id, now))
        found = await self.get_user(username)
        assert found is not None
        return found

    async def record_login(self, username: str) -> None:
        """Remember when the user last logged in."""
        async with self._db.write("update a user in") as conn:
            await conn.execute(
                update(users).where(users.c.username == username).values(last_login_at=utcnow())
            )

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
                    created_at=utcnow(),
                    expires_at=expires_at,
                )
            )
        async with self._db.read("read an API key from") as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).one()
        return _record(ApiKeyRecord, row)

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash (revoked or not), or None."""
        async with self._db.read("read an API key from") as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))).first()
        return None if row is None else _record(ApiKeyRecord, row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, newest first."""
        async with self._db.read("list the API keys of") as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.id.desc()))).all()
        return [_record(ApiKeyRecord, r) for r in rows]

    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key (idempotent); :class:`AccountNotFound` when there is none by that id."""
        async with self._db.write("revoke an API key in") as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        if row is None:
            raise AccountNotFound(f"no API key {key_id!r}")
        return _record(ApiKeyRecord, row)

    async def touch_api_key(self, key_id: str) -> None:
        """Remember when the key was last used."""
        async with self._db.write("update an API key in") as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at=utcnow())
            )
