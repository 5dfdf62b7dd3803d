"""``witskit import`` resumes after an interruption instead of decoding the whole file again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from witskit.cli import app
from witskit.simulator import DrillingSimulator

runner = CliRunner()

FRAMES = 6000
BATCH = 50


pytestmark = pytest.mark.usefixtures("data_dir")


def log_file(path: Path, frames: int, seed: int = 5) -> Path:
    path.write_bytes(b"".join(DrillingSimulator(seed, records=(1,)).frames(frames)))
    return path


def progress(db: Path) -> tuple[int, int] | None:
    """(byte offset, frames) of the one file's import progress, read as another process would."""
    if not db.exists():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT byte_offset, frames FROM import_progress").fetchone()
    except sqlite3.OperationalError:  # the schema is not there yet
        return None
    finally:
        conn.close()
    return None if row is None else (int(row[0]), int(row[1]))


def interrupt_import(log: Path, db: Path, tmp_path: Path, sig: signal.Signals) -> tuple[int, str]:
    """Start a real import of ``log``, send ``sig`` once two batches are stored: (status, stderr)."""
    env = {**os.environ, "WITS_DATA_DIR": str(tmp_path / "data")}
    url = f"sqlite:///{db}"
    cmd = [sys.executable, "-m", "witskit", "import", str(log), "--db", url, "--batch", str(BATCH)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            mark = progress(db)
            if mark is not None and mark[1] >= 2 * BATCH:
                break
            time.sleep(0.005)
        os.kill(proc.pid, sig)
    finally:
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.wait(timeout=30)
        proc.stderr.close()
    return proc.returncode, err


def test_kill_9_mid_file_then_rerun_resumes_without_duplicates_or_gaps(tmp_path: Path) -> None:
    log = log_file(tmp_path / "rig.wits", FRAMES)
    db = tmp_path / "w.db"
    status, _ = interrupt_import(log, db, tmp_path, signal.SIGKILL)
    assert status == -signal.SIGKILL, "the import ended before it could be killed"

    mark = progress(db)
    assert mark is not None
    offset, done = mark
    size = log.stat().st_size
    assert 0 < offset < size
    assert 0 < done < FRAMES

    result = runner.invoke(app, ["import", str(log), "--db", f"sqlite:///{db}", "--batch", str(BATCH)])
    assert result.exit_code == 0, result.stderr
    # It skipped what was done: it started at the saved offset and decoded only the rest.
    assert f"resuming at byte {offset} of {size}" in result.stderr
    assert f"{FRAMES - done} frames" in result.stderr

    conn = sqlite3.connect(db)
    try:
        counts = "SELECT count(*), count(DISTINCT frame_time) FROM frames"
        frames, distinct_times = conn.execute(counts).fetchone()
        points = conn.execute("SELECT count(*) FROM points").fetchone()[0]
    finally:
        conn.close()
    assert frames == distinct_times == FRAMES  # no duplicate, no gap
    assert points == FRAMES * 30
    assert progress(db) == (size, FRAMES)

    # A third run has nothing left to do.
    result = runner.invoke(app, ["import", str(log), "--db", f"sqlite:///{db}"])
    assert result.exit_code == 0
    assert "already imported (6000 frames)" in result.stderr
    assert "0 frames" in result.stderr


def test_a_changed_file_starts_over_with_a_warning(tmp_path: Path) -> None:
    log = log_file(tmp_path / "rig.wits", 50)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    assert runner.invoke(app, ["import", str(log), "--db", db]).exit_code == 0
    log_file(log, 40, seed=9)  # another log under the same name
    result = runner.invoke(app, ["import", str(log), "--db", db])
    assert result.exit_code == 0, result.stderr
    assert "changed since it was last imported" in result.stderr
    assert "importing it from the start" in result.stderr
    assert "40 frames" in result.stderr


def test_a_log_that_grew_resumes_at_its_old_end(tmp_path: Path) -> None:
    data = b"".join(DrillingSimulator(5, records=(1,)).frames(30))
    first = data[: data.index(b"&&", len(data) // 2)]
    log = tmp_path / "rig.wits"
    log.write_bytes(first)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    result = runner.invoke(app, ["import", str(log), "--db", db])
    assert result.exit_code == 0
    imported = int(result.stderr.split(" frames,")[0].rsplit(" ", 1)[1])
    log.write_bytes(data)
    result = runner.invoke(app, ["import", str(log), "--db", db])
    assert f"resuming at byte {len(first)}" in result.stderr
    assert f"{30 - imported} frames" in result.stderr


def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    log = log_file(tmp_path / "rig.wits", FRAMES)
    status, err = interrupt_import(log, tmp_path / "w.db", tmp_path, signal.SIGINT)
    assert status == 130, err
    assert "run the same command again to resume" in err
    assert "Traceback" not in err


def test_a_file_rewritten_past_its_head_starts_over(tmp_path: Path) -> None:
    data = b"".join(DrillingSimulator(5, records=(1,)).frames(500))
    assert len(data) > 2 * 64 * 1024  # the hashed head is 64 KiB
    log = tmp_path / "rig.wits"
    log.write_bytes(data)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    assert runner.invoke(app, ["import", str(log), "--db", db]).exit_code == 0
    # Same head, longer, but the old end now falls inside a frame.
    cut = len(data) - 100
    log.write_bytes(data[:cut] + data[cut - 5000 :])
    result = runner.invoke(app, ["import", str(log), "--db", db])
    assert result.exit_code == 0, result.stderr
    assert "changed since it was last imported" in result.stderr
    assert "resuming" not in result.stderr


def test_a_file_named_twice_is_imported_once(tmp_path: Path) -> None:
    log = log_file(tmp_path / "rig.wits", 40)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    result = runner.invoke(app, ["import", str(log), str(tmp_path / "." / "rig.wits"), "--db", db])
    assert result.exit_code == 0, result.stderr
    assert f"{tmp_path / '.' / 'rig.wits'}: named more than once: imported once" in result.stderr
    assert " 40 frames," in result.stderr
