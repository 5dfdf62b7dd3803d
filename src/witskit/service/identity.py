"""Who is calling: password logins, JWT access and refresh tokens, API keys, and account changes.

:class:`Identity` joins :class:`~witskit.security.auth.AuthManager` (tokens, Argon2id hashes),
:class:`~witskit.service.accounts.AccountStore` (the tables), :class:`LoginThrottle` and the
:class:`~witskit.service.audit.AuditLog`. The HTTP layer and the ``witskit users`` commands both go
through it, so every account change is checked and audited the same way.

Roles come from the database on every request (cached for a few seconds), never from what a
client sends, and not even from the token's own ``roles`` claim: disabling a user, changing their
roles or their password takes effect on the next request (within ``cache_ttl`` in other processes),
and also revokes their existing tokens (``tokens_valid_after``) and refresh sessions.

Refresh tokens are single-use and server-side: each one is a ``refresh_sessions`` row (its
``jti``), in a *family* that starts at a login and follows every rotation. :meth:`Identity.refresh`
accepts a token only while its row is unused, unrevoked and unexpired, marks it used and issues the
next pair of the same family. A used token presented again means two parties hold the family (a
stolen token, or a retried request): the whole family is revoked (audited as
``auth.refresh_reuse``), so the thief's and the owner's newer tokens all stop working and the
owner signs in again. :meth:`Identity.logout` revokes a family.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from witskit.errors import UsageError
from witskit.security.auth import (
    API_KEY_PREFIX,
    AuthError,
    AuthManager,
    TokenType,
    generate_api_key,
    hash_api_key,
)
from witskit.security.credentials import MAX_PASSWORD_LENGTH, check_password, check_username
from witskit.security.rbac import Permission, Role, bounded_roles, permissions_for
from witskit.service.accounts import (
    AccountNotFound,
    AccountStore,
    ApiKeyRecord,
    LastAdminError,
    UserRecord,
    parse_roles,
)
from witskit.service.audit import AuditLog, Outcome
from witskit.service.sessions import RefreshSessionRecord
from witskit.service.throttling import LoginThrottle

__all__ = [
    "GENERIC_LOGIN_ERROR",
    "Identity",
    "LastAdminError",
    "LoginRefused",
    "LoginThrottled",
    "Principal",
    "RefreshReused",
    "TokenPair",
    "generate_password",
]

#: What a refused login says, whatever the reason: no hint whether the name exists.
GENERIC_LOGIN_ERROR: Final = "incorrect user name or password"
#: Seconds a user or key looked up for a request is reused: bounds both the database load per
#: request and how long a change made by another process (the CLI) takes to apply.
DEFAULT_CACHE_TTL: Final = 5.0
#: Argon2id takes ~64 MiB and tens of milliseconds per hash: a few at a time keep a login flood
#: from exhausting memory, and keep hashing off the event loop's thread.
_HASH_CONCURRENCY: Final = 4
#: Owners of API keys made on the machine itself (``witskit api-keys add``, settings, the first
#: start): whoever runs it answers for them. User names cannot contain ``:``.
_LOCAL_OWNER_PREFIXES: Final = ("cli:",)
_LOCAL_OWNERS: Final = frozenset({"cli", "settings", "bootstrap", "local"})
#: An API key's last use is written at most this often (seconds): not one write per request.
_TOUCH_EVERY: Final = 60.0
#: Expired sessions and ended throttle windows are deleted at a login at most this often (seconds):
#: the tables stay small without a scheduler, and without a DELETE per login.
_PRUNE_EVERY: Final = 600.0


class LoginRefused(AuthError):
    """Wrong name or password, or a disabled account (the client is told only the generic message)."""


class RefreshReused(AuthError):
    """A refresh token that was already exchanged was presented again: its family is revoked."""


class LoginThrottled(AuthError):
    """Too many recent failures for the name or the address; ``retry_after`` seconds to wait."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a user (``kind="user"``) or an API key (``kind="api_key"``)."""

    name: str
    kind: Literal["user", "api_key"]
    roles: tuple[str, ...]
    key_id: str | None = None
    #: When the credential stops being valid (POSIX seconds: the token's ``exp``, the key's
    #: expiry), None for a key that does not expire. A live stream never runs past it.
    expires_at: float | None = None
    #: Who answers for it: the user's own name, or the key's owner (the user who made it, or a
    #: local actor such as ``cli:root``). A key made by a key is owned by the same owner.
    owner: str | None = None

    @property
    def permissions(self) -> frozenset[Permission]:
        """What the roles grant (server-side table)."""
        return frozenset(permissions_for(self.roles))

    def can(self, permission: Permission) -> bool:
        """True when the roles grant ``permission``."""
        return permission in self.permissions


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


def generate_password() -> str:
    """A random password (24 URL-safe characters, 144 bits) for a generated account."""
    return secrets.token_urlsafe(18)


def _ts(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    return None


def _new_family() -> str:
    return uuid.uuid4().hex


class Identity:
    """Authentication and account management (see the module docstring)."""

    @contextlib.contextmanager
    def _audit_failure(
        self, action: str, *, actor: str | None, target: str | None, client: str | None
    ) -> Iterator[None]:
        """Record a failed admin action, with its reason, in the audit log; the error goes on."""
        try:
            yield
        except Exception as exc:
            self.audit.record(
                action, outcome=Outcome.FAILURE, actor=actor, target=target, client=client, reason=str(exc)
            )
            raise

    def __init__(
        self,
        auth: AuthManager,
        accounts: AccountStore,
        audit: AuditLog,
        *,
        throttle: LoginThrottle | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> None:
        self.auth = auth
        self.accounts = accounts
        self.audit = audit
        self.throttle = throttle if throttle is not None else LoginThrottle(accounts)
        self.cache_ttl = cache_ttl
        self._users: dict[str, tuple[float, UserRecord | None]] = {}
        self._keys: dict[str, tuple[float, ApiKeyRecord | None]] = {}
        self._touched: dict[str, float] = {}
        self._hashing = asyncio.Semaphore(_HASH_CONCURRENCY)
        self._dummy_hash: str | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._pruned_at = -_PRUNE_EVERY

    # Hashing, off the event loop ----------------------------------------------------------------
    async def hash_password(self, password: str) -> str:
        """An Argon2id hash, computed in a worker thread."""
        async with self._hashing:
            return await asyncio.to_thread(self.auth.hash_password, password)

    async def _verify(self, password: str, hashed: str | None) -> bool:
        if hashed is None:
            # Unknown user: spend the same time on a hash anyway, so response times do not tell
            # which user names exist.
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash_password(secrets.token_urlsafe(16))
            hashed = self._dummy_hash
            async with self._hashing:
                await asyncio.to_thread(self.auth.verify_password, password, hashed)
            return False
        async with self._hashing:
            return await asyncio.to_thread(self.auth.verify_password, password, hashed)

    # Caches ---------------------------------------------------------------------------------------
    async def user(self, username: str) -> UserRecord | None:
        """The user, from a cache refreshed every ``cache_ttl`` seconds."""
        now = time.monotonic()
        hit = self._users.get(username)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = await self.accounts.get_user(username)
        if len(self._users) > 10_000:
            self._users.clear()
        self._users[username] = (now + self.cache_ttl, record)
        return record

    def forget(self, username: str | None = None) -> None:
        """Drop cached users (one, or all) and keys, after a change."""
        if username is None:
            self._users.clear()
        else:
            self._users.pop(username, None)
        self._keys.clear()

    # Logins and tokens ------------------------------------------------------------------------
    def _tokens(
        self, user: UserRecord, family: str, client: str | None, as_of: datetime | None = None
    ) -> tuple[TokenPair, RefreshSessionRecord]:
        """A new pair, and the session row of its refresh token (for the caller to store).

        ``as_of``: when ``user`` was read. The tokens are issued as of then, so that a change of the
        account committed between that read and now (a password change racing a login with the
        old password) revokes them.
        """
        model = user.to_user()
        refresh = self.auth.create_refresh_token(model, issued_at=as_of)
        claims = self.auth.decode_token(refresh, TokenType.REFRESH)  # its jti, iat and exp, as signed
        session = RefreshSessionRecord(
            jti=str(claims["jti"]),
            family=family,
            user_id=user.id,
            issued_at=datetime.fromtimestamp(float(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC),
            client=client,
        )
        pair = TokenPair(
            access_token=self.auth.create_access_token(model, issued_at=as_of),
            refresh_token=refresh,
            expires_in=self.auth.access_token_expire_minutes * 60,
        )
        return pair, session

    async def prune(self) -> None:
        """Delete expired refresh sessions and ended throttle windows (bookkeeping: a failure is
        logged, never raised)."""
        self._pruned_at = time.monotonic()
        try:
            await self.accounts.prune_refresh_sessions()
            await self.throttle.prune()
        except Exception as exc:
            self.audit._secure.warning("prune_failed", error=str(exc))

    async def login(self, username: str, password: str, client: str | None) -> TokenPair:
        """Check a password; tokens, or :class:`LoginRefused` / :class:`LoginThrottled`."""
        username = username.strip()
        if time.monotonic() - self._pruned_at >= _PRUNE_EVERY:
            await self.prune()
        wait = await self.throttle.reserve(username, client)
        if wait > 0:
            self.audit.record(
                "login", outcome=Outcome.DENIED, actor=username, client=client, reason="throttled"
            )
            raise LoginThrottled("too many failed logins; try again later", wait)
        as_of = datetime.now(UTC)
        record = await self.accounts.get_user(username) if username else None
        if len(password) > MAX_PASSWORD_LENGTH:
            ok = False
        else:
            ok = await self._verify(password, record.password_hash if record is not None else None)
        reason = None
        if record is None:
            reason = "unknown user"
        elif not ok:
            reason = "wrong password"
        elif not record.is_active:
            reason = "account disabled"
        if reason is not None or record is None:
            # Counted already, by the reservation.
            self.audit.record("login", outcome=Outcome.FAILURE, actor=username, client=client, reason=reason)
            raise LoginRefused(GENERIC_LOGIN_ERROR)
        await self.throttle.success(username, client)
        await self.accounts.record_login(username)
        pair, session = self._tokens(record, _new_family(), client, as_of)
        await self.accounts.add_refresh_session(session)
        self.audit.record("login", outcome=Outcome.SUCCESS, actor=username, client=client)
        return pair

    async def _valid_user(self, claims: dict[str, Any]) -> UserRecord:
        name = str(claims["sub"])
        record = await self.user(name)
        if record is None:
            raise AuthError("the token's user does not exist")
        if not record.is_active:
            raise AuthError("the token's user is disabled")
        issued = _ts(claims.get("iat"))
        cutoff = record.tokens_valid_after
        # Exact: ``iat`` and the cut-off are both to the microsecond (a token from before that
        # change carries whole seconds, and is revoked by a change in its own second: fail closed).
        if cutoff is not None and (issued is None or issued < cutoff.timestamp()):
            raise AuthError("the token was revoked (password, roles or status changed since)")
        return record

    async def refresh(self, refresh_token: str, client: str | None) -> TokenPair:
        """The next pair for a valid, unused refresh token of an active user; :class:`AuthError`
        otherwise (:class:`RefreshReused`, with the family revoked, for a token used before)."""
        actor: str | None = None
        try:
            claims = self.auth.decode_token(refresh_token, TokenType.REFRESH)
            actor = str(claims["sub"])
            session = await self.accounts.get_refresh_session(str(claims["jti"]))
            if session is None:
                raise AuthError("no session for this refresh token (unknown, or expired and pruned)")
            if session.used_at is not None:
                await self._reused(session, actor, client)
            if session.revoked_at is not None:
                raise AuthError("the refresh token's session was revoked")
            record = await self._valid_user(claims)
            if record.id != session.user_id:
                raise AuthError("the refresh token's session belongs to another user")
            pair, successor = self._tokens(record, session.family, client)
            if not await self.accounts.rotate_refresh_session(session.jti, successor):
                # Used, revoked or expired since it was read: a concurrent refresh with the same
                # token won the row. Only one of two parties presenting it can be its owner.
                current = await self.accounts.get_refresh_session(session.jti)
                if current is not None and current.used_at is not None:
                    await self._reused(current, actor, client)
                raise AuthError("the refresh token's session was revoked or has expired")
        except RefreshReused:
            raise  # audited as auth.refresh_reuse
        except AuthError as exc:
            self.audit.record(
                "token.refresh", outcome=Outcome.FAILURE, actor=actor, client=client, reason=exc.reason
            )
            raise
        self.audit.record("token.refresh", outcome=Outcome.SUCCESS, actor=record.username, client=client)
        return pair

    async def _reused(self, session: RefreshSessionRecord, actor: str, client: str | None) -> None:
        """Revoke the family of a reused token, audit it, and raise :class:`RefreshReused`."""
        revoked = await self.accounts.revoke_refresh_family(session.family)
        self.audit.record(
            "auth.refresh_reuse",
            outcome=Outcome.DENIED,
            actor=actor,
            target=f"session:{session.family}",
            client=client,
            reason="a refresh token was used twice: its session is revoked",
            revoked=revoked,
        )
        raise RefreshReused("refresh token reused; its session is revoked")

    async def logout(self, refresh_token: str, client: str | None) -> None:
        """End the session of a refresh token: its whole family is revoked. Idempotent, and silent
        about the outcome (the caller answers the same whatever the token was); audited."""
        try:
            claims = self.auth.decode_token(refresh_token, TokenType.REFRESH)
        except AuthError as exc:
            self.audit.record("auth.logout", outcome=Outcome.FAILURE, client=client, reason=exc.reason)
            return
        actor = str(claims["sub"])
        session = await self.accounts.get_refresh_session(str(claims["jti"]))
        if session is None:
            self.audit.record(
                "auth.logout", outcome=Outcome.FAILURE, actor=actor, client=client, reason="no such session"
            )
            return
        revoked = await self.accounts.revoke_refresh_family(session.family)
        self.audit.record(
            "auth.logout",
            outcome=Outcome.SUCCESS,
            actor=actor,
            target=f"session:{session.family}",
            client=client,
            revoked=revoked,
        )

    async def authenticate(self, credential: str, client: str | None) -> Principal:
        """The principal of a bearer token or an API key (``wk_...``); :class:`AuthError` otherwise.

        Failures are audited; successes are not (that would be a row per API call), but an API
        key's ``last_used_at`` is kept.
        """
        if credential.startswith(API_KEY_PREFIX):
            return await self._api_key(credential, client)
        try:
            claims = self.auth.decode_token(credential, TokenType.ACCESS)
            record = await self._valid_user(claims)
        except AuthError as exc:
            self.audit.record("auth.token", outcome=Outcome.FAILURE, client=client, reason=exc.reason)
            raise
        return Principal(
            record.username, "user", record.roles, expires_at=_ts(claims.get("exp")), owner=record.username
        )

    async def _api_key(self, key: str, client: str | None) -> Principal:
        digest = hash_api_key(key)
        now = time.monotonic()
        hit = self._keys.get(digest)
        if hit is not None and hit[0] > now:
            record = hit[1]
        else:
            record = await self.accounts.find_api_key(digest)
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[digest] = (now + self.cache_ttl, record)
        reason = None
        roles: tuple[str, ...] = ()
        if record is None or not record.usable():
            reason = "unknown API key" if record is None else "revoked or expired API key"
        else:
            roles, reason = await self._owner_bound(record)
        if reason is not None:
            self.audit.record(
                "auth.api_key",
                outcome=Outcome.FAILURE,
                actor=record.key_id if record is not None else None,
                client=client,
                reason=reason,
            )
            raise AuthError(reason)
        assert record is not None
        if now - self._touched.get(record.key_id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            self._touched[record.key_id] = now
            task = asyncio.create_task(self._touch(record.key_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return Principal(
            f"api-key:{record.name}",
            "api_key",
            roles,
            key_id=record.key_id,
            expires_at=record.expires_at.timestamp() if record.expires_at is not None else None,
            owner=record.owner,
        )

    async def _owner_bound(self, record: ApiKeyRecord) -> tuple[tuple[str, ...], str | None]:
        """The key's roles cut down to its owner's current ones, or a reason to refuse it.

        A key made by a user is worth at most what that user is worth now: nothing once the user
        is disabled or gone, no more than their current roles after a demotion. A key made on the
        command line (owner ``cli:...``, ``settings``, ``bootstrap``, or none) answers to whoever
        runs the machine and keeps its roles. A key whose owner is another key (made before the
        owner was recorded as the user behind it) cannot be traced to anyone and is refused.
        """
        owner = record.owner
        if owner is None or owner.startswith(_LOCAL_OWNER_PREFIXES):
            return record.roles, None
        if owner.startswith("api-key:"):
            return (), "the API key was made by another key, whose owner is unknown: make it again"
        user = await self.user(owner)
        if user is None:
            if owner in _LOCAL_OWNERS:
                return record.roles, None
            return (), "the API key's owner no longer exists"
        if not user.is_active:
            return (), "the API key's owner is disabled"
        return bounded_roles(record.roles, user.roles), None

    async def _touch(self, key_id: str) -> None:
        try:
            await self.accounts.touch_api_key(key_id)
        except Exception as exc:  # bookkeeping only: never fail a request over it
            self.audit._secure.warning("api_key_touch_failed", key_id=key_id, error=str(exc))

    async def aclose(self) -> None:
        """Wait for background bookkeeping."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # Account management (audited) -------------------------------------------------------------
    async def add_user(
        self,
        username: str,
        password: str,
        roles: Sequence[str],
        *,
        email: str | None = None,
        actor: str | None,
        client: str | None,
    ) -> UserRecord:
        """Create a user with an Argon2id-hashed password."""
        with self._audit_failure("user.add", actor=actor, target=username, client=client):
            check_username(username)
            check_password(password)
            parsed = parse_roles(roles)
            record = await self.accounts.add_user(
                username, await self.hash_password(password), parsed, email=email
            )
        self.forget(username)
        self.audit.record(
            "user.add",
            outcome=Outcome.SUCCESS,
            actor=actor,
            target=username,
            client=client,
            roles=list(parsed),
        )
        return record

    async def update_user(
        self,
        username: str,
        *,
        roles: Sequence[str] | None = None,
        is_active: bool | None = None,
        password: str | None = None,
        email: str | None = None,
        actor: str | None,
        client: str | None,
    ) -> UserRecord:
        """Change roles, status, password or e-mail; revokes the user's tokens when any of the
        first three changes. The last active super_admin cannot be disabled or demoted
        (:class:`LastAdminError`, checked in the transaction that makes the change)."""
        changes: dict[str, Any] = {}
        with self._audit_failure("user.update", actor=actor, target=username, client=client):
            record = await self.accounts.get_user(username)
            if record is None:
                raise AccountNotFound(f"no user {username!r}")
            parsed = parse_roles(roles) if roles is not None else None
            hashed = await self.hash_password(check_password(password)) if password is not None else None
            if parsed is not None:
                changes["roles"] = list(parsed)
            if is_active is not None:
                changes["is_active"] = is_active
            if password is not None:
                changes["password"] = "changed"  # noqa: S105 - a fact for the audit log
            if email is not None:
                changes["email"] = "changed"
            updated = await self.accounts.update_user(
                username,
                roles=parsed,
                is_active=is_active,
                password_hash=hashed,
                email=email,
                revoke_tokens=parsed is not None or is_active is False or hashed is not None,
            )
        self.forget(username)
        self.audit.record(
            "user.update", outcome=Outcome.SUCCESS, actor=actor, target=username, client=client, **changes
        )
        return updated

    async def change_own_password(self, username: str, current: str, new: str, client: str | None) -> None:
        """A user's own password change: the current password is checked first, under the same
        throttle as a login (a stolen access token must not be a way to guess the password)."""
        wait = await self.throttle.reserve(username, client)
        if wait > 0:
            self.audit.record(
                "user.password",
                outcome=Outcome.DENIED,
                actor=username,
                target=username,
                client=client,
                reason="throttled",
            )
            raise LoginThrottled("too many failed password checks; try again later", wait)
        record = await self.accounts.get_user(username)
        if (
            record is None
            or len(current) > MAX_PASSWORD_LENGTH
            or not await self._verify(current, record.password_hash)
        ):
            self.audit.record(
                "user.password",
                outcome=Outcome.FAILURE,
                actor=username,
                target=username,
                client=client,
                reason="wrong current password",
            )
            raise LoginRefused("the current password is wrong")
        await self.throttle.success(username, client)
        await self.update_user(username, password=new, actor=username, client=client)

    async def add_api_key(
        self,
        name: str,
        roles: Sequence[str],
        *,
        expires_in_days: int | None = None,
        actor: str | None,
        client: str | None,
        owner: str | None = None,
    ) -> tuple[str, ApiKeyRecord]:
        """A new API key: ``(key, record)``. The key is returned once and stored only as a hash.

        ``owner`` (default: ``actor``) is who the key answers to: its power is bounded by the
        owner's current roles and active state on every request.
        """
        with self._audit_failure("api_key.add", actor=actor, target=name, client=client):
            parsed = parse_roles(roles)
            if not parsed:
                raise UsageError("an API key needs at least one role")
            expires = (
                datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days is not None else None
            )
            key = generate_api_key()
            record = await self.accounts.add_api_key(
                name, hash_api_key(key), parsed, owner=owner or actor, expires_at=expires
            )
        self.audit.record(
            "api_key.add",
            outcome=Outcome.SUCCESS,
            actor=actor,
            target=record.key_id,
            client=client,
            name=name,
            roles=list(parsed),
        )
        return key, record

    async def revoke_api_key(self, key_id: str, *, actor: str | None, client: str | None) -> ApiKeyRecord:
        """Revoke a key; it is refused from the next request on (other processes: within the cache TTL)."""
        with self._audit_failure("api_key.revoke", actor=actor, target=key_id, client=client):
            record = await self.accounts.revoke_api_key(key_id)
        self.forget()
        self.audit.record(
            "api_key.revoke", outcome=Outcome.SUCCESS, actor=actor, target=key_id, client=client
        )
        return record

    async def bootstrap_admin(self, username: str | None, password: str | None) -> tuple[str, str] | None:
        """Make sure the service has an administrator (a ``super_admin``).

        With ``username`` and ``password`` (settings), that user is created unless it exists (an
        existing user's password is never changed from settings). Without them, and only while no
        super_admin exists at all, user ``admin`` (or ``username``) is created with a random
        password. Returns ``(name, password)`` when a password was generated, for the caller to show
        once; None otherwise. There is no default password.
        """
        users = await self.accounts.list_users()
        if username and password:
            if any(u.username == username for u in users):
                return None
            await self.add_user(
                username, password, [Role.SUPER_ADMIN.value], actor="settings", client="local"
            )
            return None
        if any(Role.SUPER_ADMIN.value in u.roles for u in users):
            return None
        name = username or "admin"
        if any(u.username == name for u in users):
            return None  # a user by that name exists without the role: leave it to a person
        generated = generate_password()
        await self.add_user(name, generated, [Role.SUPER_ADMIN.value], actor="bootstrap", client="local")
        return name, generated
