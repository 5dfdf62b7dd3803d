"""``users`` and ``api-keys`` as a new user meets them: --db, quiet stderr, readable at 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support.commands import run_witskit


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WITS_")}
    env.update(WITS_DATA_DIR=str(tmp_path / "data"), COLUMNS="80")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_witskit(*args, env=env, cwd=tmp_path, timeout=120)

    return run


def test_users_and_api_keys_take_db_and_do_not_print_audit_lines(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'service.db'}"
    added = run("users", "add", "alice", "--generate", "--db", db)
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "service.db").exists()
    assert not (tmp_path / "data" / "witskit.db").exists()  # --db, not the data directory's store
    # One plain line of what was done; the audit entry is in the database, not echoed raw.
    assert added.stderr.strip() == "user alice created with roles viewer"

    key = run("api-keys", "add", "rig-7-dashboard-for-the-night-shift", "--role", "viewer", "--db", db)
    assert key.returncode == 0, key.stderr
    assert "{" not in key.stderr
    listed = json.loads(run("api-keys", "list", "--format", "json", "--db", db).stdout)
    key_id = listed[0]["key_id"]

    table = run("api-keys", "list", "--db", db)
    assert table.returncode == 0
    assert key_id in table.stdout  # the whole id, at 80 columns: it is what revoke takes
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    # Dates are never cut in two ("2026-12" over "-03"); long names fold instead.
    created = listed[0]["created_at"][:10]
    assert created in table.stdout, table.stdout

    result = run("users", "set-roles", "alice", "operator", "--db", db)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "user alice now has roles operator"
    revoked = run("api-keys", "revoke", key_id, "--db", db)
    assert revoked.returncode == 0
    assert revoked.stderr.strip() == f"API key {key_id} revoked"


def test_account_commands_without_db_in_a_make_demo_clone_name_the_demo_store(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # make demo keeps its store in .witskit/ of the clone; `witskit users list` there used the
    # per-user store instead and said "0 user(s)", and set-password said "no user 'admin'".
    demo = tmp_path / ".witskit"
    demo.mkdir()
    added = run(
        "users",
        "add",
        "admin",
        "--role",
        "super_admin",
        "--generate",
        "--db",
        "sqlite:///.witskit/witskit.db",
    )
    assert added.returncode == 0, added.stderr
    listed = run("users", "list")
    assert listed.returncode == 0, listed.stderr
    assert "--db sqlite:///.witskit/witskit.db" in listed.stderr, listed.stderr
    with_db = run("users", "list", "--db", "sqlite:///.witskit/witskit.db")
    assert "admin" in with_db.stdout
    assert with_db.stderr == ""  # no note when the store is named
