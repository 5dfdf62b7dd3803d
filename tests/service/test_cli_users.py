"""``witskit users`` and ``witskit api-keys``, through the command line's argv entry point."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import reset_logging
from typer.testing import CliRunner

from witskit.cli import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run ``witskit ARGS`` against a database in ``tmp_path``; returns the result."""
    for key in [k for k in __import__("os").environ if k.startswith("WITS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WITS_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=stdin, catch_exceptions=False)

    try:
        yield run
    finally:
        reset_logging()


def users(cli: Any) -> dict[str, Any]:
    result = cli("users", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    return {u["username"]: u for u in json.loads(result.stdout)}


def test_users_add_list_disable_enable_and_set_roles(cli: Any) -> None:
    added = cli(
        "users", "add", "alice", "--role", "operator", "--password-stdin", stdin="a long enough password\n"
    )
    assert added.exit_code == 0, added.output
    assert added.stdout == ""  # nothing on stdout: the password came from stdin
    assert users(cli)["alice"]["roles"] == ["operator"]
    assert users(cli)["alice"]["is_active"] is True

    assert cli("users", "set-roles", "alice", "viewer", "admin").exit_code == 0
    assert users(cli)["alice"]["roles"] == ["viewer", "admin"]
    assert cli("users", "disable", "alice").exit_code == 0
    assert users(cli)["alice"]["is_active"] is False
    assert cli("users", "enable", "alice").exit_code == 0
    assert users(cli)["alice"]["is_active"] is True
    table = cli("users", "list")
    assert "alice" in table.stdout


def test_users_add_generates_a_password_shown_once(cli: Any) -> None:
    result = cli("users", "add", "root", "--role", "super_admin", "--generate")
    assert result.exit_code == 0, result.output
    password = result.stdout.strip()
    assert len(password) >= 20
    assert password not in result.stderr
    changed = cli("users", "set-password", "root", "--generate")
    assert changed.exit_code == 0
    assert changed.stdout.strip() not in ("", password)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("users", "add", "bob", "--role", "wizard", "--generate"), None, "unknown role 'wizard'"),
        (("users", "add", "bob", "--password-stdin"), "short\n", "at least 12 characters"),
        (("users", "add", "bad name!", "--generate"), None, "a user name is 1-64 characters"),
        (("users", "add", "bob"), "", "no terminal to ask the password on"),
        (("users", "disable", "ghost"), None, "no user 'ghost'"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    cli: Any, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    result = cli(*args, stdin=stdin)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_last_super_admin_stays(cli: Any) -> None:
    assert cli("users", "add", "root", "--role", "super_admin", "--generate").exit_code == 0
    result = cli("users", "disable", "root")
    assert result.exit_code == 2
    assert "last active super_admin" in result.stderr


def test_api_keys_add_list_revoke(cli: Any) -> None:
    added = cli("api-keys", "add", "rig-7-screen", "--role", "viewer", "--expires-days", "30")
    assert added.exit_code == 0, added.output
    key = added.stdout.strip()
    assert key.startswith("wk_")
    listed = json.loads(cli("api-keys", "list", "--format", "json").stdout)
    assert [k["name"] for k in listed] == ["rig-7-screen"]
    assert key not in json.dumps(listed)
    assert listed[0]["expires_at"] is not None
    revoked = cli("api-keys", "revoke", listed[0]["key_id"])
    assert revoked.exit_code == 0
    assert json.loads(cli("api-keys", "list", "--format", "json").stdout)[0]["revoked_at"] is not None
    assert key not in added.stderr


def test_cli_changes_are_audited(cli: Any, tmp_path: Path) -> None:
    assert cli("users", "add", "carol", "--generate").exit_code == 0
    from witskit.service.accounts import AccountStore

    async def read() -> list[Any]:
        accounts = await AccountStore.open(f"sqlite:///{tmp_path / 'witskit.db'}")
        try:
            return await accounts.list_audit(action="user.add")
        finally:
            await accounts.aclose()

    [entry] = asyncio.run(read())
    assert entry.actor is not None
    assert entry.actor.startswith("cli")
    assert entry.target == "carol"
    assert entry.client == "local"
