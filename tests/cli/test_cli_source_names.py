"""Source names through the CLI's argv entry point, and what ``stream`` says about a listener.

``sim://rig-1`` is the source ``rig-1`` and a file source is named by its file name, in
``witskit stream``, ``stream --db`` and ``stream --config`` alike (``witskit run``: see
tests/service/test_source_names.py); ``name=`` and a pipeline file's ``name:`` override it.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from test_cli_stream import Server
from typer.testing import CliRunner

from witskit.cli import app
from witskit.protocol import encode_frame
from witskit.simulator import DrillingSimulator

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("data_dir")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "log.wits"
    path.parent.mkdir()
    path.write_bytes(b"".join(DrillingSimulator(5, records=(1,)).frames(3)))
    return path


def sources_of(*args: str) -> list[str]:
    """The ``source`` of every frame ``witskit stream ARGS -f jsonl`` prints."""
    result = runner.invoke(app, ["stream", *args, "-f", "jsonl"])
    assert result.exit_code == 0, result.stderr
    return [json.loads(line)["source"] for line in result.stdout.splitlines()]


def test_stream_names_a_simulated_rig_by_its_name_and_a_file_by_its_file_name(log: Path) -> None:
    assert sources_of("sim://rig-1?rate=200&records=1&frames=2") == ["rig-1", "rig-1"]
    assert sources_of(f"file://{log}") == ["log.wits"] * 3
    assert sources_of(f"file://{log}?name=rig-8") == ["rig-8"] * 3
    assert sources_of("sim://rig-1?rate=200&records=1&frames=1&name=rig-9") == ["rig-9"]


def test_stream_db_and_config_use_the_same_names(log: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert sources_of(f"file://{log}", "--db", db) == ["log.wits"] * 3
    assert sources_of("sim://rig-1?rate=200&records=1&frames=2", "--db", db) == ["rig-1"] * 2
    result = runner.invoke(app, ["query", "--db", db, "--source", "log.wits,rig-1", "-f", "jsonl"])
    assert result.exit_code == 0, result.stderr
    assert {json.loads(line)["source"] for line in result.stdout.splitlines()} == {"log.wits", "rig-1"}

    pipeline = tmp_path / "pipe.yaml"
    pipeline.write_text(
        f"sources:\n  - url: file://{log}\n  - url: sim://rig-3?rate=200&records=1&frames=1\n"
        f"  - url: file://{log}\n    name: rig-7\n"
        f"sinks:\n  - url: jsonl://{tmp_path / 'out.jsonl'}\n"
    )
    assert sorted(set(sources_of("--config", str(pipeline)))) == ["log.wits", "rig-3", "rig-7"]


STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_stream_db_of_a_listener_says_where_it_listens_and_who_comes_and_goes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    server = Server("tcp-listen://127.0.0.1:0", "--db", db, "-f", "jsonl", command="stream")
    try:
        # Each status line starts with the UTC time.
        (listening,) = server.wait_for(
            rf"^{STAMP} tcp-listen://127\.0\.0\.1:0: listening on 127\.0\.0\.1:(\d+)$"
        )
        port = int(listening.group(1))  # the real port
        with socket.create_connection(("127.0.0.1", port)) as rig:
            peer = f"127.0.0.1:{rig.getsockname()[1]}"
            rig.sendall(encode_frame([("0101", "RIG-7"), ("0108", 3650.4)]))
            server.wait_for(
                rf"^{STAMP} tcp-listen://127\.0\.0\.1:0/127\.0\.0\.1: {re.escape(peer)} connected$"
            )
        (gone,) = server.wait_for(rf"/127\.0\.0\.1: {re.escape(peer)} disconnected")
        assert gone.string.endswith(f"{peer} disconnected after 1 frame(s)"), gone.string
    finally:
        server.stop()


def test_decode_names_a_file_by_its_file_name_as_import_and_stream_do(log: Path) -> None:
    # Before: decode wrote the path as given (/tmp/.../logs/log.wits) in the source column, so its
    # CSV did not match query's CSV of the same file imported (source log.wits).
    result = runner.invoke(app, ["decode", str(log), "-f", "jsonl"])
    assert result.exit_code == 0, result.stderr
    assert {json.loads(line)["source"] for line in result.stdout.splitlines()} == {"log.wits"}
    named = runner.invoke(app, ["decode", str(log), "-f", "jsonl", "--source", "rig-8"])
    assert {json.loads(line)["source"] for line in named.stdout.splitlines()} == {"rig-8"}
