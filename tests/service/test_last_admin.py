"""Two super_admins demoting (or disabling) each other at once leave one, on every backend.

The guard ("not the last active super_admin") and the change are one transaction with the active
users' rows locked; before, each read the list, saw the other, and both changes went through.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from service_helpers import PASSWORD, make_config, running_service

from witskit.security.rbac import Role
from witskit.service.identity import LastAdminError


async def active_super_admins(service: Any) -> list[str]:
    return [
        u.username
        for u in await service.accounts.list_users()
        if u.is_active and Role.SUPER_ADMIN.value in u.roles
    ]


@pytest.mark.parametrize("change", [{"roles": ["viewer"]}, {"is_active": False}], ids=["demote", "disable"])
async def test_two_super_admins_changing_each_other_at_once_leave_one(
    db_url: str, tmp_path: Path, change: dict[str, Any]
) -> None:
    config = make_config(tmp_path, database_url=db_url)
    async with running_service(config, ingest=False, users=False) as running:
        identity = running.service.identity
        for round_ in range(5):
            a, b = f"a{round_}", f"b{round_}"
            for name in (a, b):
                await identity.add_user(name, PASSWORD, ["super_admin"], actor="test", client="local")
            for other in await active_super_admins(running.service):
                if other not in (a, b):  # the previous round's survivor
                    await identity.update_user(other, roles=["viewer"], actor="test", client="local")
            results = await asyncio.gather(
                identity.update_user(a, **change, actor=b, client="local"),
                identity.update_user(b, **change, actor=a, client="local"),
                return_exceptions=True,
            )
            refused = [r for r in results if isinstance(r, LastAdminError)]
            assert len(refused) == 1, results
            assert len(await active_super_admins(running.service)) == 1


async def test_the_last_super_admin_is_refused_over_http(tmp_path: Path) -> None:
    async with running_service(make_config(tmp_path), ingest=False) as running:
        for other in await active_super_admins(running.service):
            if other != "super":
                await running.service.identity.update_user(other, roles=["viewer"], actor="t", client="local")
        answer = await running.client.patch(
            "/api/v1/users/super", json={"roles": ["admin"]}, headers=running.auth("super")
        )
        assert answer.status_code == 409
        assert "last active super_admin" in answer.json()["detail"]
