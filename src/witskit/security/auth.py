"""Passwords, JWT access/refresh tokens and API keys.

* Passwords are hashed with Argon2id through pwdlib (passlib is unmaintained and breaks with
  current bcrypt).
* Tokens are PyJWT HS256 by default, with ``sub``, ``roles``, ``exp``, ``iat``, ``nbf``, ``iss``,
  ``aud``, ``jti`` and a token type (``typ``: access or refresh). Decoding pins the algorithm (so
  ``alg: none`` and key-confusion tokens are refused) and requires every one of those claims.
* API keys (for rigs, wall screens, scripts) are random 256-bit strings shown once; only their
  SHA-256 is stored (they are high-entropy, so a slow hash buys nothing and would slow every call).

:class:`AuthManager` uses the signing key it is given, as the plan's tests do; the *service*
refuses to start with a key shorter than 32 bytes (RFC 7518 section 3.2) — see
:func:`check_signing_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic import BaseModel, Field, SecretStr

from witskit.errors import ConfigError, WitsKitError

__all__ = [
    "API_KEY_PREFIX",
    "MIN_KEY_BYTES",
    "AuthError",
    "AuthManager",
    "TokenType",
    "User",
    "check_signing_key",
    "generate_api_key",
    "hash_api_key",
    "verify_api_key",
]

#: RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
MIN_KEY_BYTES = 32

#: API keys start with this, so a leaked one is recognisable in logs (and redacted there).
API_KEY_PREFIX = "wk_"


class AuthError(WitsKitError):
    """A token or credential was refused; ``reason`` says why (for the audit log, not the client)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TokenType(StrEnum):
    """What a token may be used for."""

    ACCESS = "access"
    REFRESH = "refresh"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class User(BaseModel):
    """A person or machine account (the plan's model)."""

    username: str
    email: str | None = None
    roles: list[str] = Field(default_factory=list)
    is_active: bool = True
    created_at: datetime = Field(default_factory=_utcnow)


def check_signing_key(key: str | bytes | SecretStr | None) -> bytes:
    """The key as bytes, or :class:`ConfigError` when missing or shorter than 32 bytes."""
    if key is None:
        raise ConfigError(
            "WITS_JWT_SECRET is not set: the service needs a signing key of at least 32 bytes "
            "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    raw = key.get_secret_value() if isinstance(key, SecretStr) else key
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) < MIN_KEY_BYTES:
        raise ConfigError(f"WITS_JWT_SECRET is {len(data)} bytes; it must be at least {MIN_KEY_BYTES} bytes")
    return data


_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "iss", "aud", "typ", "jti"]


class AuthManager:
    """Hashes passwords and issues and checks tokens (the plan's interface, done with PyJWT + pwdlib)."""

    def __init__(
        self,
        jwt_secret: str | bytes | SecretStr,
        *,
        algorithm: str = "HS256",
        issuer: str = "witskit",
        audience: str = "witskit-api",
        access_token_expire_minutes: int = 15,
        refresh_token_expire_days: int = 7,
        leeway_seconds: int = 0,
    ) -> None:
        raw = jwt_secret.get_secret_value() if isinstance(jwt_secret, SecretStr) else jwt_secret
        self._key = raw.encode() if isinstance(raw, str) else bytes(raw)
        if not self._key:
            raise ConfigError("the JWT signing key is empty")
        if not algorithm.startswith("HS"):
            raise ConfigError(f"algorithm {algorithm!r}: only HMAC (HS256/HS384/HS512) is supported")
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.access_token_expire_minutes = access_token_expire_minutes
        self.refresh_token_expire_days = refresh_token_expire_days
        self.leeway_seconds = leeway_seconds
        self.pwd_context = PasswordHash((Argon2Hasher(),))
        # A short key is the caller's decision here (the service refuses one at start); keep
        # PyJWT's reminder out of the way only in that case.
        self.key_is_short = len(self._key) < MIN_KEY_BYTES

    def __repr__(self) -> str:
        return (
            f"AuthManager(algorithm={self.algorithm!r}, issuer={self.issuer!r}, audience={self.audience!r})"
        )

    # Tokens -----------------------------------------------------------------------------------
    def _claims(
        self, user: User, token_type: TokenType, lifetime: timedelta, issued_at: datetime | None = None
    ) -> dict[str, Any]:
        now = issued_at or _utcnow()
        return {
            "sub": user.username,
            "roles": list(user.roles),
            "typ": token_type.value,
            # To the microsecond (RFC 7519 NumericDate allows fractions): a revocation compares
            # it exactly, so a token issued just before a change in the same second is revoked.
            "iat": now.timestamp(),
            "nbf": now,
            "exp": now + lifetime,
            "iss": self.issuer,
            "aud": self.audience,
            "jti": uuid.uuid4().hex,
        }

    def _encode(self, claims: dict[str, Any]) -> str:
        with warnings.catch_warnings():
            if self.key_is_short:
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            return jwt.encode(claims, self._key, algorithm=self.algorithm)

    def create_access_token(self, user: User, *, issued_at: datetime | None = None) -> str:
        """A short-lived access token carrying the user's roles (``issued_at``: default now)."""
        return self._encode(
            self._claims(
                user, TokenType.ACCESS, timedelta(minutes=self.access_token_expire_minutes), issued_at
            )
        )

    def create_refresh_token(self, user: User, *, issued_at: datetime | None = None) -> str:
        """A longer-lived token that can only be exchanged for a new access token."""
        return self._encode(
            self._claims(user, TokenType.REFRESH, timedelta(days=self.refresh_token_expire_days), issued_at)
        )

    def decode_token(self, token: str, token_type: TokenType = TokenType.ACCESS) -> dict[str, Any]:
        """The token's claims, or :class:`AuthError` saying why it was refused."""
        try:
            with warnings.catch_warnings():
                if self.key_is_short:
                    warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                claims: dict[str, Any] = jwt.decode(
                    token,
                    self._key,
                    algorithms=[self.algorithm],  # pinned: never taken from the token header
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway_seconds,
                    options={"require": _REQUIRED_CLAIMS},
                )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not yet valid (nbf in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token audience is wrong") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token issuer is wrong") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError("token algorithm is not allowed") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"token is malformed ({type(exc).__name__})") from None
        if claims.get("typ") != token_type.value:
            raise AuthError(f"a {claims.get('typ')!r} token cannot be used as an {token_type.value} token")
        if not isinstance(claims.get("roles", []), list):
            raise AuthError("token roles claim is not a list")
        return claims

    def verify_token(self, token: str, token_type: TokenType = TokenType.ACCESS) -> dict[str, Any] | None:
        """The claims of a valid token, else ``None`` (the plan's interface)."""
        try:
            return self.decode_token(token, token_type)
        except AuthError:
            return None

    # Passwords --------------------------------------------------------------------------------
    def hash_password(self, password: str) -> str:
        """An Argon2id hash (PHC string) of the password."""
        return self.pwd_context.hash(password)

    def verify_password(self, plain_password: str, hashed_password: str) -> bool:
        """True when the password matches; False for a wrong password or an unreadable hash."""
        try:
            return bool(self.pwd_context.verify(plain_password, hashed_password))
        except Exception:  # an unknown or corrupt hash string is a failed login, not a crash
            return False


# API keys -----------------------------------------------------------------------------------------
def generate_api_key() -> str:
    """A new API key (``wk_`` + 43 URL-safe characters). Show it once; store :func:`hash_api_key`."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The stored form of an API key (SHA-256, hex)."""
    return hashlib.sha256(key.encode()).hexdigest()


def verify_api_key(key: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_api_key(key), stored_hash)
