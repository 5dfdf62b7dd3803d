"""Authentication over HTTP: the JWT negative matrix, logins, refresh, API keys, throttling,
revocation, and the signing key at start."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import SecretStr
from service_helpers import PASSWORD, SECRET, Running, make_config, running_service

from witskit.errors import ConfigError
from witskit.monitoring.metrics import WitsMetrics
from witskit.service.datadir import SECRET_FILE, resolve_signing_key
from witskit.service.runtime import Service

PROTECTED = "/api/v1/sources"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    base: dict[str, Any] = {
        "sub": "viewer",
        "roles": ["viewer"],
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "iss": "witskit",
        "aud": "witskit-api",
        "jti": "j1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict[str, Any], key: str | bytes = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


def hs256_by_hand(payload: dict[str, Any], key: bytes) -> str:
    signing_input = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64(payload)
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


PUBLIC_PEM = (
    b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE6Z3Xq3VJ0p3qAbCdEfGhIjKlMnOpQrSt\n"
    b"-----END PUBLIC KEY-----\n"
)
NOW = int(datetime.now(UTC).timestamp())

BAD_TOKENS: dict[str, Any] = {
    "alg none": lambda: b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims()) + ".",
    "alg none, no signature part": lambda: b64({"alg": "none"}) + "." + b64(claims()),
    "HS256 signed with a public key": lambda: hs256_by_hand(claims(), PUBLIC_PEM),
    "HS512 with the right key": lambda: signed(claims(), SECRET, "HS512"),
    "signed with another key": lambda: signed(claims(), "another-key-" + "x" * 40),
    "expired": lambda: signed(claims(exp=NOW - 5)),
    "nbf in the future": lambda: signed(claims(nbf=NOW + 600)),
    "wrong audience": lambda: signed(claims(aud="someone-else")),
    "wrong issuer": lambda: signed(claims(iss="evil")),
    "missing exp": lambda: signed(claims(exp=None)),
    "missing sub": lambda: signed(claims(sub=None)),
    "refresh token as access token": lambda: signed(claims(typ="refresh")),
    "unknown user": lambda: signed(claims(sub="ghost")),
    "garbage": lambda: "not.a.jwt",
    "empty bearer": lambda: "",
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_token_is_401(svc: Running, kind: str) -> None:
    token = BAD_TOKENS[kind]()
    response = await svc.client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() in ({"detail": "invalid or expired credentials"}, {"detail": "not authenticated"})


async def test_the_good_token_of_the_matrix_works(svc: Running) -> None:
    # The matrix's tokens differ from this one by exactly the thing being tested.
    response = await svc.client.get(PROTECTED, headers={"Authorization": f"Bearer {signed(claims())}"})
    assert response.status_code == 200


async def test_tampered_payload_is_401(svc: Running) -> None:
    header, _, signature = svc.tokens["viewer"].split(".")
    forged = b64(claims(roles=["super_admin"]))
    response = await svc.client.get(
        "/api/v1/users", headers={"Authorization": f"Bearer {header}.{forged}.{signature}"}
    )
    assert response.status_code == 401


async def test_roles_come_from_the_server_not_from_the_token(svc: Running) -> None:
    # A validly signed token that claims super_admin for a viewer gets the viewer's permissions.
    token = signed(claims(sub="viewer", roles=["super_admin"]))
    response = await svc.client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    me = await svc.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["roles"] == ["viewer"]


async def login(svc: Running, username: str, password: str = PASSWORD) -> Any:
    return await svc.client.post("/api/v1/auth/token", data={"username": username, "password": password})


async def test_login_refresh_and_me(svc: Running) -> None:
    response = await login(svc, "operator")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    me = await svc.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {
        "name": "operator",
        "kind": "user",
        "roles": ["operator"],
        "permissions": ["alarms:ack", "analytics:view", "data:read", "data:write"],
    }
    refreshed = await svc.client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.json()["access_token"] != body["access_token"]
    # An access token is not a refresh token, and a refresh token is not an access token.
    wrong = await svc.client.post("/api/v1/auth/refresh", json={"refresh_token": body["access_token"]})
    assert wrong.status_code == 401
    as_access = await svc.client.get(PROTECTED, headers={"Authorization": f"Bearer {body['refresh_token']}"})
    assert as_access.status_code == 401


async def test_failed_logins_say_nothing_about_which_part_was_wrong(svc: Running) -> None:
    wrong_password = await login(svc, "viewer", "not the password at all")
    unknown_user = await login(svc, "nobody-by-that-name", "not the password at all")
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json() == {"detail": "incorrect user name or password"}


async def test_a_disabled_user_cannot_log_in_and_their_tokens_stop_working(svc: Running) -> None:
    token = svc.tokens["viewer"]
    assert (await svc.client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})).status_code == 200
    patch = await svc.client.patch(
        "/api/v1/users/viewer", json={"is_active": False}, headers=svc.auth("super")
    )
    assert patch.status_code == 200
    assert (await svc.client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})).status_code == 401
    assert (await login(svc, "viewer")).status_code == 401


async def test_a_password_change_revokes_earlier_tokens(svc: Running) -> None:
    # A token from an earlier second (the revocation cutoff has a resolution of one second).
    old = svc.service.identity.auth._encode(
        {**claims(sub="operator"), "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 600}
    )
    assert (await svc.client.get(PROTECTED, headers={"Authorization": f"Bearer {old}"})).status_code == 200
    change = await svc.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a new password, long enough"},
        headers={"Authorization": f"Bearer {old}"},
    )
    assert change.status_code == 204
    assert (await svc.client.get(PROTECTED, headers={"Authorization": f"Bearer {old}"})).status_code == 401
    assert (await login(svc, "operator", "a new password, long enough")).status_code == 200
    assert (await login(svc, "operator")).status_code == 401


async def test_login_is_throttled_per_user_name(svc: Running) -> None:
    for _ in range(5):
        assert (await login(svc, "admin", "wrong password guess")).status_code == 401
    throttled = await login(svc, "admin")  # even the right password: the name is locked for a while
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    assert (await login(svc, "operator")).status_code == 200  # other names are not affected


async def test_login_is_throttled_per_address(svc: Running) -> None:
    for i in range(20):
        assert (await login(svc, f"sprayed-{i}", "Winter2026!")).status_code == 401
    assert (await login(svc, "viewer")).status_code == 429


async def test_every_login_attempt_is_audited_without_the_password(svc: Running) -> None:
    await login(svc, "viewer")
    await login(svc, "viewer", "hunter2-is-wrong")
    await svc.service.audit.flush()
    entries = await svc.service.accounts.list_audit(action="login")
    assert [(e.actor, e.outcome, e.client) for e in entries[:2]] == [
        ("viewer", "failure", "192.0.2.10"),
        ("viewer", "success", "192.0.2.10"),
    ]
    assert entries[0].detail == {"reason": "wrong password"}
    everything = json.dumps([e.detail for e in await svc.service.accounts.list_audit(limit=1000)])
    assert "hunter2" not in everything
    assert PASSWORD not in everything


async def test_api_keys_work_as_bearer_or_header_and_can_be_revoked(svc: Running) -> None:
    created = await svc.client.post(
        "/api/v1/api-keys", json={"name": "rig-7 wall screen", "roles": ["viewer"]}, headers=svc.auth("super")
    )
    assert created.status_code == 201
    key = created.json()["key"]
    key_id = created.json()["key_id"]
    assert key.startswith("wk_")
    listed = await svc.client.get("/api/v1/api-keys", headers=svc.auth("super"))
    assert key not in listed.text  # shown once, never again
    assert listed.json()[0]["key_id"] == key_id
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        assert (await svc.client.get(PROTECTED, headers=headers)).status_code == 200
        # The key has the viewer role only.
        assert (await svc.client.get("/api/v1/connections", headers=headers)).status_code == 403
    revoked = await svc.client.delete(f"/api/v1/api-keys/{key_id}", headers=svc.auth("super"))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert (await svc.client.get(PROTECTED, headers={"X-API-Key": key})).status_code == 401


async def test_the_last_super_admin_cannot_be_disabled_or_demoted(svc: Running) -> None:
    for change in ({"is_active": False}, {"roles": ["admin"]}):
        response = await svc.client.patch("/api/v1/users/super", json=change, headers=svc.auth("super"))
        assert response.status_code == 409
        assert "last active super_admin" in response.json()["detail"]


async def test_user_admin_routes(svc: Running) -> None:
    auth = svc.auth("super")
    created = await svc.client.post(
        "/api/v1/users",
        json={"username": "mudlogger", "password": "x" * 12, "roles": ["operator"]},
        headers=auth,
    )
    assert created.status_code == 201
    assert "password" not in created.text
    again = await svc.client.post(
        "/api/v1/users", json={"username": "mudlogger", "password": "x" * 12}, headers=auth
    )
    assert again.status_code == 409
    short = await svc.client.post("/api/v1/users", json={"username": "x", "password": "short"}, headers=auth)
    assert short.status_code == 422
    names = [u["username"] for u in (await svc.client.get("/api/v1/users", headers=auth)).json()]
    assert "mudlogger" in names
    assert (await svc.client.get("/api/v1/users/ghost", headers=auth)).status_code == 404


# The signing key at start --------------------------------------------------------------------------
async def test_the_service_refuses_a_short_signing_key(tmp_path: Path) -> None:
    # WitsConfig already refuses one from the environment; a config built in code is checked again.
    config = make_config(tmp_path).model_copy(update={"jwt_secret": SecretStr("too-short-key")})
    with pytest.raises(ConfigError, match="WITS_JWT_SECRET is 13 bytes; it must be at least 32 bytes"):
        await Service.open(config, ingest=False, metrics=WitsMetrics())
    assert not (tmp_path / "wits.db").exists()  # refused before touching anything


def test_a_short_secret_in_the_environment_is_refused() -> None:
    from witskit.config import load_config

    with pytest.raises(ConfigError, match=r"WITS_JWT_SECRET: .*at least 32 bytes"):
        load_config(jwt_secret="short", _env_file=None)


def test_a_generated_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    config = make_config(tmp_path, jwt_secret=None)
    first = resolve_signing_key(config)
    path = tmp_path / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 48
    assert resolve_signing_key(config) == first
    path.chmod(0o644)
    assert resolve_signing_key(config) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="shorter than 32 bytes"):
        resolve_signing_key(config)


async def test_tokens_survive_a_restart_with_a_generated_key(tmp_path: Path) -> None:
    config = make_config(tmp_path, jwt_secret=None)
    async with running_service(config, ingest=False) as first:
        token = first.tokens["viewer"]
    assert os.path.exists(tmp_path / SECRET_FILE)
    async with running_service(config, ingest=False, users=False) as second:
        response = await second.client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert second.service.identity.auth.verify_token(token)["sub"] == "viewer"
