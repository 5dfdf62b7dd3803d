"""An API key can do at most what the user who made it can do now.

A key made by a super_admin who is later disabled could still create a new super_admin. The key's
power is bounded, on every request, by its owner's current roles and active state.
"""

from __future__ import annotations

from typing import Any

import pytest
from service_helpers import PASSWORD, Running

from witskit.security.rbac import Role, bounded_roles

API = "/api/v1"


async def make_key(svc: Running, headers: dict[str, str], roles: list[str]) -> dict[str, Any]:
    made = await svc.client.post(f"{API}/api-keys", json={"name": "wall", "roles": roles}, headers=headers)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def user_with_token(svc: Running, name: str, roles: list[str]) -> dict[str, str]:
    await svc.service.identity.add_user(name, PASSWORD, roles, actor="test", client="local")
    login = await svc.client.post(f"{API}/auth/token", data={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def new_super_admin(svc: Running, key: str, name: str) -> int:
    body = {"username": name, "password": PASSWORD, "roles": ["super_admin"]}
    made = await svc.client.post(f"{API}/users", json=body, headers={"X-API-Key": key})
    return made.status_code


async def test_a_key_of_a_disabled_owner_is_refused(svc: Running) -> None:
    boss = await user_with_token(svc, "boss", ["super_admin"])
    key = (await make_key(svc, boss, ["super_admin"]))["key"]
    assert (await make_key(svc, boss, ["viewer"]))["owner"] == "boss"
    assert await new_super_admin(svc, key, "made-while-boss-is-active") == 201
    disabled = await svc.client.patch(
        f"{API}/users/boss", json={"is_active": False}, headers=svc.auth("super")
    )
    assert disabled.status_code == 200
    assert await new_super_admin(svc, key, "made-after-boss-left") == 401
    assert (await svc.client.get(f"{API}/sources", headers={"X-API-Key": key})).status_code == 401
    await svc.service.audit.flush()
    [entry, *_] = await svc.service.accounts.list_audit(action="auth.api_key")
    assert entry.detail["reason"] == "the API key's owner is disabled"
    # Enabled again, the key works again: it was never revoked, only bounded.
    await svc.client.patch(f"{API}/users/boss", json={"is_active": True}, headers=svc.auth("super"))
    assert (await svc.client.get(f"{API}/sources", headers={"X-API-Key": key})).status_code == 200


async def test_a_key_is_bounded_by_its_owners_current_roles(svc: Running) -> None:
    boss = await user_with_token(svc, "boss2", ["super_admin"])
    key = (await make_key(svc, boss, ["super_admin"]))["key"]
    demoted = await svc.client.patch(
        f"{API}/users/boss2", json={"roles": ["viewer"]}, headers=svc.auth("super")
    )
    assert demoted.status_code == 200
    assert await new_super_admin(svc, key, "nope") == 403
    me = (await svc.client.get(f"{API}/auth/me", headers={"X-API-Key": key})).json()
    assert me["roles"] == ["viewer"]
    assert (await svc.client.get(f"{API}/sources", headers={"X-API-Key": key})).status_code == 200


async def test_a_key_made_with_a_key_answers_to_the_same_user(svc: Running) -> None:
    boss = await user_with_token(svc, "boss3", ["super_admin"])
    first = (await make_key(svc, boss, ["super_admin"]))["key"]
    second = await make_key(svc, {"X-API-Key": first}, ["super_admin"])
    assert second["owner"] == "boss3"
    await svc.client.patch(f"{API}/users/boss3", json={"is_active": False}, headers=svc.auth("super"))
    assert await new_super_admin(svc, second["key"], "via-the-second-key") == 401


async def test_keys_made_on_the_command_line_keep_their_roles(svc: Running) -> None:
    key, record = await svc.service.identity.add_api_key(
        "rig-screen", ["super_admin"], actor="cli:root", client="local"
    )
    assert record.owner == "cli:root"
    assert await new_super_admin(svc, key, "made-by-a-cli-key") == 201


@pytest.mark.parametrize(
    ("roles", "ceiling", "bounded"),
    [
        (["super_admin"], ["super_admin"], ("super_admin",)),
        (["viewer"], ["super_admin"], ("viewer",)),
        (["super_admin"], ["admin"], ("admin",)),
        (["admin"], ["operator"], ("operator",)),
        (["operator"], [], ()),
        (["viewer", "operator"], ["viewer"], ("viewer",)),
    ],
)
def test_bounded_roles(roles: list[str], ceiling: list[str], bounded: tuple[str, ...]) -> None:
    assert bounded_roles(roles, ceiling) == bounded
    assert all(r in {x.value for x in Role} for r in bounded)
