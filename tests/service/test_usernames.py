"""A user name with a trailing newline is refused everywhere (``\\Z``, not ``$``, in the patterns)."""

from __future__ import annotations

import pytest
from service_helpers import PASSWORD, Running

from witskit.errors import UsageError
from witskit.security.credentials import check_username
from witskit.service.app import _REQUEST_ID

BAD = ["alice\n", "alice\r\n", "\nalice", "ali\nce", "alice\n\n"]


@pytest.mark.parametrize("name", BAD, ids=repr)
def test_check_username_refuses_a_newline(name: str) -> None:
    with pytest.raises(UsageError):
        check_username(name)


async def test_no_path_creates_a_user_named_with_a_newline(svc: Running) -> None:
    for name in BAD:
        with pytest.raises(UsageError):
            await svc.service.identity.add_user(name, PASSWORD, ["viewer"], actor="test", client="local")
        answer = await svc.client.post(
            "/api/v1/users",
            json={"username": name, "password": PASSWORD, "roles": ["viewer"]},
            headers=svc.auth("super"),
        )
        assert answer.status_code == 422, name
    assert "alice" not in {u.username.strip() for u in await svc.service.accounts.list_users()}
    assert check_username("alice") == "alice"


def test_a_request_id_with_a_newline_is_not_kept() -> None:
    assert _REQUEST_ID.match("req-1") is not None
    assert _REQUEST_ID.match("req-1\n") is None
