"""Every way a token can be wrong is refused, and says why."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from witskit.errors import ConfigError
from witskit.security.auth import (
    AuthError,
    AuthManager,
    TokenType,
    User,
    check_signing_key,
    generate_api_key,
    hash_api_key,
    verify_api_key,
)

KEY = "k" * 48
USER = User(username="driller", roles=["viewer"])


@pytest.fixture
def auth() -> AuthManager:
    return AuthManager(KEY)


def claims(**overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    base: dict[str, object] = {
        "sub": "driller",
        "roles": ["viewer"],
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": "witskit",
        "aud": "witskit-api",
        "jti": "x1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).rstrip(b"=").decode()


def test_a_good_token_has_every_claim(auth: AuthManager) -> None:
    payload = auth.decode_token(auth.create_access_token(USER))
    assert {"sub", "roles", "exp", "iat", "nbf", "iss", "aud", "typ", "jti"} <= set(payload)
    assert payload["typ"] == "access"


def test_alg_none_is_refused(auth: AuthManager) -> None:
    token = b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims(exp=9999999999, iat=0, nbf=0)) + "."
    with pytest.raises(AuthError):
        auth.decode_token(token)


def test_hs256_signed_with_a_public_key_is_refused(auth: AuthManager) -> None:
    # Key confusion: an attacker signs HS256 with a public key as the HMAC secret. PyJWT will not
    # do that, so forge the token by hand, as an attacker would.
    public_pem = b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE6Z3Xq3VJ0p3q\n"
    public_pem += b"-----END PUBLIC KEY-----\n"
    signing_input = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64(claims(exp=9999999999, iat=0, nbf=0))
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(AuthError, match="signature"):
        auth.decode_token(token)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        # Offsets from the moment the test runs, not from collection: a long run outlives them.
        ({"exp": -timedelta(seconds=5)}, "expired"),
        ({"nbf": timedelta(minutes=5)}, "not yet valid"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "evil"}, "issuer"),
        ({"exp": None}, "'exp'"),
        ({"sub": None}, "'sub'"),
    ],
)
def test_bad_claims_are_refused_with_a_reason(
    auth: AuthManager, overrides: dict[str, object], reason: str
) -> None:
    now = datetime.now(UTC)
    resolved = {k: now + v if isinstance(v, timedelta) else v for k, v in overrides.items()}
    token = jwt.encode(claims(**resolved), KEY, algorithm="HS256")
    with pytest.raises(AuthError, match=reason):
        auth.decode_token(token)


def test_tampered_payload_is_refused(auth: AuthManager) -> None:
    header, _, signature = auth.create_access_token(USER).split(".")
    forged = b64(claims(roles=["super_admin"], exp=int((datetime.now(UTC) + timedelta(hours=1)).timestamp())))
    with pytest.raises(AuthError, match="signature"):
        auth.decode_token(f"{header}.{forged}.{signature}")


def test_refresh_token_cannot_be_used_as_access_token(auth: AuthManager) -> None:
    refresh = auth.create_refresh_token(USER)
    with pytest.raises(AuthError, match="'refresh' token cannot be used as an access token"):
        auth.decode_token(refresh)
    assert auth.decode_token(refresh, TokenType.REFRESH)["sub"] == "driller"
    assert auth.verify_token(refresh) is None


def test_other_algorithm_is_refused(auth: AuthManager) -> None:
    token = jwt.encode(claims(), KEY + "x" * 40, algorithm="HS512")
    with pytest.raises(AuthError):
        auth.decode_token(token)


def test_signing_key_shorter_than_32_bytes_is_refused_for_the_service() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        check_signing_key("short")
    with pytest.raises(ConfigError, match="not set"):
        check_signing_key(None)
    assert check_signing_key(KEY) == KEY.encode()


def test_passwords_use_argon2id(auth: AuthManager) -> None:
    hashed = auth.hash_password("pw-123456")
    assert hashed.startswith("$argon2id$")
    assert auth.verify_password("pw-123456", hashed)
    assert not auth.verify_password("pw-123456", "not a hash")


def test_api_keys_are_shown_once_and_stored_hashed() -> None:
    key = generate_api_key()
    assert key.startswith("wk_")
    assert len(key) > 40
    stored = hash_api_key(key)
    assert key not in stored
    assert verify_api_key(key, stored)
    assert not verify_api_key(key + "x", stored)
