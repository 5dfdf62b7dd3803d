"""Bad input given to ``import``, ``stream --config`` and ``run --config``: one clear line each.

Every case names the file and what is wrong with it, lists every problem at once, never shows a
traceback, and exits non-zero (issue 10, section 4).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from witskit.cli import app
from witskit.simulator import DrillingSimulator

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WITS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.stderr, result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.exception
    )
    return result.exit_code, result.stdout, result.stderr


def test_import_of_a_directory_says_it_is_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    code, _, err = invoke("import", str(folder), "--db", f"sqlite:///{tmp_path / 'w.db'}")
    assert code == 2
    assert f"{folder}: is a directory" in err
    assert "no such file" not in err


def test_import_names_every_missing_file_at_once(tmp_path: Path) -> None:
    code, _, err = invoke("import", "a.wits", "b.wits", "--db", f"sqlite:///{tmp_path / 'w.db'}")
    assert code == 2
    assert "a.wits: no such file" in err
    assert "b.wits: no such file" in err


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (bytes(range(256)) * 4, "binary"),
        (b"", "empty"),
        (b"just some text\nno frames here\n", "no WITS frames"),
    ],
    ids=["binary", "empty", "frameless"],
)
def test_import_of_a_file_without_frames_fails(tmp_path: Path, content: bytes, why: str) -> None:
    bad = tmp_path / "bad.wits"
    bad.write_bytes(content)
    good = tmp_path / "good.wits"
    good.write_bytes(b"".join(DrillingSimulator(1, records=(1,)).frames(3)))
    code, _, err = invoke("import", str(bad), str(good), "--db", f"sqlite:///{tmp_path / 'w.db'}")
    assert code == 1, err
    line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert f"{bad}:" in line
    assert why in line
    # The good file next to it is still imported, and the summary does not count the bad one as
    # imported (before: "imported 2 file(s)" above "error: ... nothing imported").
    assert "3 frames" in err
    assert "imported 1 of 2 file(s) into" in err, err


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("sources:\n  - url: sim://rigé\n".encode("cp1252"), "not UTF-8"),
        ("sources:\n  - url: sim://rig\n".encode("utf-16"), "UTF-16"),
        (bytes(range(256)), "not a text file"),
        (b"", "empty"),
        (b"# only a comment\n", "empty"),
        (b"- sim://rig\n", "a list"),
    ],
    ids=["cp1252", "utf16", "binary", "empty", "comment-only", "list"],
)
@pytest.mark.parametrize("command", ["stream", "run"])
def test_bad_pipeline_files_are_one_line_naming_the_file(
    tmp_path: Path, content: bytes, why: str, command: str
) -> None:
    path = tmp_path / "pipe.yaml"
    path.write_bytes(content)
    code, _, err = invoke(command, "--config", str(path), *(["--port", "0"] if command == "run" else []))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{path}:" in err
    assert why in err
    assert "NoneType" not in err


@pytest.mark.parametrize("command", ["stream", "run"])
def test_every_pipeline_error_at_once_naming_the_file(tmp_path: Path, command: str) -> None:
    path = tmp_path / "pipe.yaml"
    path.write_text(
        "sources:\n  - url: bogus://x\n  - url: tcp://host-without-port\nsinks:\n  - url: foo://bar\n"
    )
    code, _, err = invoke(command, "--config", str(path), *(["--port", "0"] if command == "run" else []))
    assert code == 2, err
    assert f"{path}:" in err
    for field in ("sources.0.url", "sources.1.url", "sinks.0.url"):
        assert field in err, err
    assert "bogus" in err
    assert "foo://bar" in err
    # Nothing was created before the file was found wrong.
    assert not (tmp_path / "data").exists()


def test_settings_errors_name_the_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WITS_PORT=abc\nWITS_TIMEZONE=Mars/Base\n")
    code, _, err = invoke("run", "--port", "0")
    assert code == 2
    assert ".env" in err
    assert "WITS_PORT" in err
    assert "WITS_TIMEZONE" in err


def test_bad_urls_on_the_command_line_are_all_named(tmp_path: Path) -> None:
    code, _, err = invoke("stream", "bogus://x", "--db", "foo://bar")
    assert code == 2
    assert "bogus://x: unknown scheme 'bogus'" in err
    assert "'foo://bar': unknown sink" in err
    assert "sources.0" not in err  # no pipeline file: the URLs name themselves


@pytest.mark.parametrize("command", ["stream", "run"])
def test_structure_and_url_errors_of_a_pipeline_file_come_together(tmp_path: Path, command: str) -> None:
    # Before: a misspelt key hid the bad URL next to it until the key was fixed (one error per run).
    path = tmp_path / "pipe.yaml"
    path.write_text(
        "sources:\n  - url: bogus://x\n  - url: sim://y\n    nme: z\n"
        "decoder:\n  timezone: Mars/Base\n  overlay: no-such-overlay.csv\n"
    )
    code, _, err = invoke(command, "--config", str(path), *(["--port", "0"] if command == "run" else []))
    assert code == 2, err
    assert f"{path}: invalid pipeline" in err
    for field in ("sources.0.url", "sources.1.nme", "decoder.timezone", "decoder.overlay"):
        assert field in err, err
    assert "Mars/Base" in err
    assert "no-such-overlay.csv" in err


@pytest.mark.parametrize("where", ["--db", "--config"])
def test_a_sqlite_sink_in_a_missing_directory_stops_the_start(tmp_path: Path, where: str) -> None:
    # Before: the stream ran, every frame waited in the spool for a sink that could never open,
    # and the command ended 0 after 30 s of drain ("warning: sink ... failed").
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'rig.db'}"
    if where == "--db":
        args = ["stream", "sim://rig-1?frames=2&rate=50", "--db", url, "-n", "1"]
    else:
        path = tmp_path / "pipe.yaml"
        path.write_text(f"sources:\n  - url: sim://rig-1?frames=2&rate=50\nsinks:\n  - url: {url}\n")
        args = ["stream", "--config", str(path), "-n", "1"]
    code, out, err = invoke(*args)
    assert code == 2, err
    assert out == ""
    assert "does not exist" in err
    assert "no-such-dir" in err
    if where == "--config":
        assert "sinks.0.url" in err


def test_a_misspelt_setting_in_env_is_named_with_its_line(tmp_path: Path) -> None:
    # Before: WITS_PROT=8081 was silently ignored and the service took 8080 anyway.
    (tmp_path / ".env").write_text("# mine\nWITS_PROT=8081\nWITS_LOG_LEVEL=INFO\nOTHER_TOOL=1\n")
    code, _, err = invoke("users", "list")
    assert code == 2, err
    assert ".env" in err
    assert "line 2" in err
    assert "WITS_PROT" in err
    assert "WITS_PORT" in err  # the likely meaning
    assert "OTHER_TOOL" not in err  # another program's variable is none of our business


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("WITS_ADMIN_USERNAME=rémi\n".encode("cp1252"), "not UTF-8"),
        ("WITS_PORT=8081\n".encode("utf-16"), "UTF-16"),
        (b"WITS_PORT=80\x0081\n", "not a text file"),
    ],
    ids=["cp1252", "utf16", "binary"],
)
def test_an_env_file_that_is_not_utf8_text_is_one_line(tmp_path: Path, content: bytes, why: str) -> None:
    # Before: a UnicodeDecodeError traceback from the settings loader.
    (tmp_path / ".env").write_bytes(content)
    code, _, err = invoke("users", "list")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert ".env" in err
    assert why in err


def test_bad_source_options_in_a_pipeline_file_read_like_bad_url_options(tmp_path: Path) -> None:
    # Before: "LinkSource.__init__() got an unexpected keyword argument 'bogus'" (and nothing about
    # idle_timeout), and "'<=' not supported between instances of 'str' and 'int'" for rate: fast.
    path = tmp_path / "pipe.yaml"
    path.write_text(
        "sources:\n"
        "  - url: tcp://127.0.0.1:1\n    options: {idle_timeout: abc, bogus: 1, handshake_interval: 15}\n"
        "  - url: sim://rig-1?rate=2\n    options: {rate: fast}\n"
    )
    code, _, err = invoke("stream", "--config", str(path), "-n", "1")
    assert code == 2, err
    assert "sources.0.options.idle_timeout" in err, err
    assert "unknown option 'bogus'" in err, err
    assert "sources.1.options.rate" in err, err
    assert "fast" in err
    assert "__init__" not in err
    assert "not supported between" not in err
    assert "handshake_interval" not in err  # a good option is not a problem


def test_a_source_given_as_a_bare_url_says_how_to_write_it(tmp_path: Path) -> None:
    # Before: "Input should be a valid dictionary or instance of SourceConfig" (a Python class).
    path = tmp_path / "pipe.yaml"
    path.write_text("sources:\n  - sim://rig-1\n")
    code, _, err = invoke("stream", "--config", str(path), "-n", "1")
    assert code == 2, err
    assert "sources.0" in err
    assert "SourceConfig" not in err
    assert "- url: sim://rig-1" in err
