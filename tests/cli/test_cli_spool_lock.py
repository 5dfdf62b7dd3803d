"""One-shot commands do not collide with a running service on the spool lock (issue 10, section 4).

A real ``witskit run`` (the demo) holds the data directory's spool while the README's and
docs/pipeline.md's ``witskit stream ... --db`` examples and ``stream --config`` run next to it;
a second service on the same spool is refused with a message naming the process that holds it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_READY = b"WitsKit is serving at"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {**os.environ, "WITS_DATA_DIR": str(tmp_path / "data"), "WITS_METRICS_ENABLED": "false"}
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out['PATH']}"
    return out


@pytest.fixture
def demo(tmp_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``witskit run --port 0`` on the data directory, up and serving."""
    log = (tmp_path / "run.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "witskit", "run", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while _READY not in (tmp_path / "run.err").read_bytes():
            assert proc.poll() is None, (tmp_path / "run.err").read_text()[-2000:]
            assert time.monotonic() < deadline, "witskit run did not start"
            time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            log.close()


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_stream_examples_run_while_the_demo_runs(
    demo: subprocess.Popen[bytes], tmp_path: Path, env: dict[str, str]
) -> None:
    # The README's and docs/pipeline.md's examples, as written.
    for command in (
        'witskit stream "sim://rig-1?rate=5&frames=10" --db sqlite:///rig.db --format jsonl',
        'witskit stream "sim://rig-1?rate=5&frames=20" --db sqlite:///rig.db -f jsonl',
    ):
        result = shell(command, tmp_path, env)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        assert "spool" not in result.stderr
    (tmp_path / "pipe.yaml").write_text(
        'sources:\n  - url: "sim://rig-2?rate=5&frames=5"\nsinks:\n  - url: sqlite:///pipe.db\n'
    )
    result = shell("witskit stream --config pipe.yaml -f jsonl", tmp_path, env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 5
    assert demo.poll() is None


def test_a_second_service_on_the_same_spool_names_the_holder(
    demo: subprocess.Popen[bytes], tmp_path: Path, env: dict[str, str]
) -> None:
    (tmp_path / "pipe.yaml").write_text('sources:\n  - url: "sim://rig-2?rate=5"\n')
    for command in ("witskit run --port 0", "witskit run --config pipe.yaml --port 0"):
        result = shell(command, tmp_path, env)
        assert result.returncode != 0
        line = next(ln for ln in result.stderr.splitlines() if "spool directory" in ln)
        assert f"process {demo.pid} (python -m witskit run --port 0)" in line
        assert "WITS_DATA_DIR" in line
        assert "Traceback" not in result.stderr


def test_the_lock_file_names_the_holder_without_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from witskit.storage.spool import Spool, SpoolError

    argv = [
        "/venv/bin/witskit",
        "stream",
        "tls://edr:4443?key_password=hunter2",
        "--db",
        "postgresql://u:s3cret@db/w",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with Spool(tmp_path / "spool"), pytest.raises(SpoolError) as refused:
        Spool(tmp_path / "spool")
    message = str(refused.value)
    assert (
        f"process {os.getpid()} (witskit stream tls://edr:4443?key_password=*** --db postgresql://u:***@db/w)"
        in message
    )
    assert "hunter2" not in message
    assert "s3cret" not in message
    assert "hunter2" not in (tmp_path / "spool" / "lock").read_text()


def test_a_spool_belongs_to_its_sinks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from witskit.config import PipelineConfig, SinkConfig, SourceConfig, load_config
    from witskit.pipeline.build import job_spool_dir

    config = load_config(data_dir=tmp_path / "data")

    def spool_of(source: str, sink: str) -> Path:
        plan = PipelineConfig(sources=[SourceConfig(url=source)], sinks=[SinkConfig(url=sink)])
        return job_spool_dir(plan, config)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    here = spool_of("sim://rig-1", "sqlite:///rig.db")
    assert spool_of("file://other.wits", "sqlite:///rig.db") == here  # any source: what is owed to rig.db
    assert spool_of("sim://rig-1", f"sqlite:///{tmp_path / 'a' / 'rig.db'}") == here
    assert spool_of("sim://rig-1", "sqlite:///other.db") != here
    assert here.parent == config.data_dir / "spools"
    assert here != config.spool_dir  # never the running service's
    monkeypatch.chdir(tmp_path / "b")
    assert spool_of("sim://rig-1", "sqlite:///rig.db") != here  # another directory, another database
