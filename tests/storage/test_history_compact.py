"""``witskit db compact``: closed hours of ``points`` into hourly blocks from the shell (PostgreSQL).

Real PostgreSQL and MariaDB, a throw-away database per test, the command run through its argv entry
point (and, for the kill, as a real subprocess). What is checked:

* ``--dry-run`` lists each (source, UTC day) that would be compacted and changes nothing;
  ``--apply`` compacts exactly that and prints it; ``--source`` and ``--before`` limit it;
* a run killed in the middle of a day's transaction (SIGKILL while it waits for a lock) has moved
  whole days only, and a run again gives every point exactly once, values unchanged;
* on SQLite and MariaDB/MySQL (no blocks) it says so in one line and exits 0; bad options exit 2;
* every console example of docs/history.md runs as written (the compaction one on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import re
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_history_blocks import counts, everything
from test_history_partitions import frames_at
from typer.testing import CliRunner

from support.commands import clean_env, console_steps, run_on_a_terminal, run_shell, shows
from support.databases import temporary_database
from witskit.cli import app
from witskit.storage import Store

#: 22:00 on the last day of April to 02:00 on the first of May: two days, two monthly leaves.
START = datetime(2026, 4, 30, 22, tzinfo=UTC)
HISTORY = Path(__file__).resolve().parents[2] / "docs" / "history.md"


def fill(url: str, sources: tuple[str, ...] = ("rig",)) -> int:
    """Four hours of one frame a minute per source, written as rows (10 frames a write: fewer than
    make new blocks)."""

    async def go() -> int:
        store = await Store.open(url, timeout=10)
        try:
            stored = 0
            for name in sources:
                batch = frames_at(None, name, START, 4 * 3600)[::60]
                for i in range(0, len(batch), 10):
                    stored += await store.write(batch[i : i + 10])
            return stored
        finally:
            await store.aclose()

    return asyncio.run(go())


def read(url: str, source: str = "rig") -> tuple[list[tuple[Any, ...]], tuple[int, int]]:
    async def go() -> tuple[list[tuple[Any, ...]], tuple[int, int]]:
        store = await Store.open(url, timeout=10)
        try:
            return await everything(store, source), await counts(store)
        finally:
            await store.aclose()

    return asyncio.run(go())


def compact(*args: str) -> Any:
    return CliRunner().invoke(app, ["db", "compact", *args])


def test_the_cli_lists_then_compacts_closed_hours(postgres_url: str) -> None:
    stored = fill(postgres_url, ("rig", "other"))
    before, _ = read(postgres_url)
    per_source = stored // 2

    plan = compact("--db", postgres_url, "--dry-run", "--before", "2026-05-01T01:30:00Z")
    assert plan.exit_code == 0, plan.stderr
    hour = per_source // 4  # the points of an hour of a source
    assert plan.stdout.splitlines() == [  # by day, then source
        f"would compact rig 2026-04-30: 2 hour(s), {2 * hour:,} points",
        f"would compact other 2026-04-30: 2 hour(s), {2 * hour:,} points",
        f"would compact rig 2026-05-01: 1 hour(s), {hour:,} points",
        f"would compact other 2026-05-01: 1 hour(s), {hour:,} points",
    ]
    assert f"would compact {6 * hour:,} points of 2 source(s), 6 hour(s)" in plan.stderr
    assert "before 2026-05-01 01:00 UTC" in plan.stderr  # cut to the hour
    assert read(postgres_url)[1] == (stored, 0)  # a dry run changes nothing

    done = compact("--db", postgres_url, "--apply", "--source", "rig", "--before", "2026-05-01T01:30:00Z")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"compacted rig 2026-04-30: 2 hour(s), {2 * hour:,} points",
        f"compacted rig 2026-05-01: 1 hour(s), {hour:,} points",
    ]
    assert read(postgres_url) == (before, (stored - 3 * hour, 3 * hour))

    rest = compact("--db", postgres_url, "--apply")  # default: everything before this hour
    assert rest.exit_code == 0, rest.stderr
    assert [line.split(":")[0] for line in rest.stdout.splitlines()] == [
        "compacted other 2026-04-30",
        "compacted rig 2026-05-01",
        "compacted other 2026-05-01",
    ]
    assert read(postgres_url) == (before, (0, stored))
    again = compact("--db", postgres_url, "--dry-run")
    assert again.exit_code == 0
    assert again.stdout == ""
    assert "nothing to compact before" in again.stderr


def test_bad_options_are_one_line_and_status_2(postgres_url: str) -> None:
    fill(postgres_url)
    for args, why in (
        ([], "say --dry-run"),
        (["--dry-run", "--apply"], "say --dry-run"),
        (["--dry-run", "--before", "yesterday"], "not an ISO 8601 time"),
        (["--dry-run", "--before", "2999-01-01"], "is in the future"),
        (["--dry-run", "--source", "nope"], "no source named 'nope'"),
    ):
        result = compact("--db", postgres_url, *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert why in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_without_blocks_it_says_so_and_exits_0(backend: str, tmp_path: Path, request: Any) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'w.db'}"
        fill(url)
        result = compact("--db", url, "--apply")
    else:
        with temporary_database("mysql", request.getfixturevalue("mysql_admin_url")) as url:
            fill(url)
            result = compact("--db", url, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "hourly blocks exist only on PostgreSQL, so there is nothing to compact" in lines[0]


def _line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the compaction printed nothing in time"
    return proc.stdout.readline()


async def _wait_for_lock_wait(url: str, pid_hint: str, timeout: float) -> None:
    """Until a backend of this database waits for a lock in the compaction's DELETE."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE $1",
                f"%{pid_hint}%",
            )
            if waiting:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the compaction never waited for the locked leaf")
    finally:
        await conn.close()


def test_a_compaction_killed_half_way_and_run_again_keeps_every_point_once(
    postgres_url: str, tmp_path: Path
) -> None:
    import asyncpg

    stored = fill(postgres_url)
    before, _ = read(postgres_url)
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")

    async def hold() -> Any:
        # Another session holds May's leaf in SHARE mode: the compaction commits April's day,
        # then waits inside May's transaction (its DELETE needs ROW EXCLUSIVE), where it is killed.
        blocker = await asyncpg.connect(dsn, timeout=10)
        await blocker.execute("BEGIN")
        await blocker.execute("LOCK TABLE points_p202605_d IN SHARE MODE")
        return blocker

    loop = asyncio.new_event_loop()
    blocker = loop.run_until_complete(hold())
    proc = subprocess.Popen(
        [sys.executable, "-m", "witskit", "db", "compact", "--db", postgres_url, "--apply"],
        env=clean_env(WITS_DATA_DIR=str(tmp_path / "data")),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = _line(proc, 60)
        assert first.startswith("compacted rig 2026-04-30: 2 hour(s)"), first
        loop.run_until_complete(_wait_for_lock_wait(postgres_url, "DELETE FROM points", 30))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
        loop.run_until_complete(blocker.execute("ROLLBACK"))
        loop.run_until_complete(blocker.close())
        loop.close()

    rows, blocks = read(postgres_url)[1]
    assert (rows + blocks, blocks) == (stored, stored // 2)  # April's day moved whole, May's not at all
    rerun = compact("--db", postgres_url, "--apply")
    assert rerun.exit_code == 0, rerun.stderr
    assert rerun.stdout.splitlines() == [f"compacted rig 2026-05-01: 2 hour(s), {stored // 2:,} points"]
    got, (rows, blocks) = read(postgres_url)
    assert (rows, blocks) == (0, stored)
    assert got == before
    assert len({(r[3], r[1]) for r in got}) == stored  # (frame key, code): each point once


def test_the_history_console_examples_run_as_written(postgres_url: str, tmp_path: Path) -> None:
    """Every ``console`` block of docs/history.md, in order, in one directory; the store without
    ``--db`` (``WITS_DATABASE_URL``) is a fresh PostgreSQL database."""
    blocks = re.findall(r"```console\n(.*?)```", HISTORY.read_text(encoding="utf-8"), flags=re.S)
    steps = [step for body in blocks for step in console_steps(body)]
    assert any(cmd.startswith("witskit db compact") for cmd, _ in steps)
    env = clean_env(
        WITS_DATA_DIR=str(tmp_path / "data"),
        WITS_DATABASE_URL=postgres_url,
        WITS_METRICS_ENABLED="false",
        COLUMNS="100",
    )
    for command, shown in steps:
        proc = run_shell(command, cwd=tmp_path, env=env)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
        for want in shown:
            assert shows(want, proc.stdout + proc.stderr), (command, want, proc.stdout + proc.stderr)


def test_a_terminal_sees_the_points_progress(postgres_url: str, tmp_path: Path) -> None:
    stored = fill(postgres_url)
    env = clean_env(WITS_DATA_DIR=str(tmp_path / "data"), TERM="xterm", COLUMNS="100")
    env.pop("NO_COLOR", None)
    status, seen = run_on_a_terminal(
        ["db", "compact", "--db", postgres_url, "--apply"], env=env, cwd=tmp_path
    )
    assert status == 0, seen[-2000:]
    text = seen.decode("utf-8", "replace")
    assert f"of {stored:,} points" in text  # the bar, sized by the plan
    assert f"compacted {stored:,} points of 1 source(s)" in text
