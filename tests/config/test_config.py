"""Settings from the environment and the pipeline file: defaults, errors per field, no secrets shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from witskit.config import ConfigError, WitsConfig, load_config, load_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("WITS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def test_nothing_needs_configuring() -> None:
    cfg = load_config()
    assert cfg.database_url_value == f"sqlite:///{Path.cwd() / 'xdg' / 'witskit' / 'witskit.db'}"
    assert cfg.database_pool_size == 20
    assert cfg.log_format == "json"
    assert cfg.spool_dir == cfg.data_dir / "spool"


def test_the_plans_variable_names_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WITS_DATABASE_URL", "postgresql://u:pw@db/witsdb")
    monkeypatch.setenv("WITS_DB_POOL_SIZE", "50")
    monkeypatch.setenv("WITS_DB_TIMEOUT", "60")
    monkeypatch.setenv("WITS_TCP_RETRY_ATTEMPTS", "5")
    monkeypatch.setenv("WITS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("WITS_METRICS_PORT", "9191")
    cfg = load_config()
    assert (cfg.database_pool_size, cfg.database_timeout, cfg.tcp_retry_attempts) == (50, 60, 5)
    assert cfg.log_level == "WARNING"
    assert cfg.metrics_port == 9191
    assert cfg.database_url_value == "postgresql://u:pw@db/witsdb"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WITS_DB_POOL_SIZE=7\nWITS_LOG_FORMAT=console\n")
    cfg = load_config()
    assert cfg.database_pool_size == 7
    assert cfg.log_format == "console"


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WITS_DATABASE_URL", "postgresql://u:hunter2-secret@db/w")
    monkeypatch.setenv("WITS_JWT_SECRET", "j" * 40)
    monkeypatch.setenv("WITS_API_KEY", "apikey-value-123")
    cfg = load_config()
    for text in (repr(cfg), str(cfg), cfg.model_dump_json()):
        assert "hunter2" not in text
        assert "jjjjjjjj" not in text
        assert "apikey-value-123" not in text


def test_invalid_settings_fail_with_one_line_per_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WITS_DB_POOL_SIZE", "lots")
    monkeypatch.setenv("WITS_PORT", "99999")
    monkeypatch.setenv("WITS_LOG_FORMAT", "xml")
    monkeypatch.setenv("WITS_TIMEZONE", "Mars/Base")
    monkeypatch.setenv("WITS_JWT_SECRET", "too-short-secret-value")
    with pytest.raises(ConfigError) as info:
        load_config()
    message = str(info.value)
    lines = message.splitlines()[1:]
    assert len(lines) == 5
    for name in ("WITS_DB_POOL_SIZE", "WITS_PORT", "WITS_LOG_FORMAT", "WITS_TIMEZONE", "WITS_JWT_SECRET"):
        assert any(line.strip().startswith(name + ":") for line in lines), name
    assert "'lots'" in message
    assert "too-short-secret-value" not in message
    assert "at least 32 bytes" in message


def test_config_class_is_pydantic_settings() -> None:
    from pydantic_settings import BaseSettings

    assert issubclass(WitsConfig, BaseSettings)


def test_example_pipeline_and_env_files_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = load_pipeline(ROOT / "examples" / "pipeline.yaml")
    assert pipeline.sources[0].url.startswith("tcp://")
    assert pipeline.decoder.timezone == "America/Chicago"
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            monkeypatch.setenv(name, value)
    load_config()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: []\n", "sources: List should have at least 1 item"),
        ("sources:\n  - {url: tcp://x:1, colour: red}\n", "sources.0.colour: Extra inputs are not permitted"),
        ("sources:\n  - url: tcp://x:1\nspool: {fsync: sometimes}\n", "spool.fsync"),
        ("sources: [\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_bad_pipeline_file_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pipe.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_pipeline_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read pipeline file"):
        load_pipeline(tmp_path / "nope.yaml")


def test_a_small_spool_bound_starts_and_a_segment_larger_than_it_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from witskit.config import PipelineConfig, SourceConfig, SpoolSettings
    from witskit.pipeline.build import spool_from

    plan = PipelineConfig(sources=[SourceConfig(url="sim://rig-1")])
    # Before the fix any WITS_SPOOL_MAX_BYTES under 16 MiB passed validation and failed at start.
    monkeypatch.setenv("WITS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WITS_SPOOL_MAX_BYTES", str(2 << 20))
    with spool_from(plan, load_config()) as spool:
        assert spool.max_bytes == 2 << 20
        assert spool.segment_bytes == 256 << 10  # max_bytes / 8
    monkeypatch.setenv("WITS_SPOOL_SEGMENT_BYTES", str(64 << 10))
    with spool_from(plan, load_config()) as spool:
        assert spool.segment_bytes == 64 << 10

    monkeypatch.setenv("WITS_SPOOL_SEGMENT_BYTES", str(4 << 20))
    with pytest.raises(ConfigError) as info:
        load_config()
    (line,) = str(info.value).splitlines()[1:]
    assert line.strip().startswith("WITS_SPOOL_SEGMENT_BYTES:")
    assert "WITS_SPOOL_MAX_BYTES" in line

    # The pipeline file and the environment together: named, not a traceback at start.
    monkeypatch.setenv("WITS_SPOOL_SEGMENT_BYTES", str(1 << 20))
    small = PipelineConfig(sources=plan.sources, spool=SpoolSettings(max_bytes=1 << 20, segment_bytes=None))
    with spool_from(small, load_config()) as spool:
        assert spool.segment_bytes == 1 << 20
    monkeypatch.setenv("WITS_SPOOL_SEGMENT_BYTES", str(2 << 20))
    with pytest.raises(ConfigError) as info:
        spool_from(small, load_config())
    message = str(info.value)
    assert "spool.segment_bytes or WITS_SPOOL_SEGMENT_BYTES (2,097,152)" in message
    assert "spool.max_bytes or WITS_SPOOL_MAX_BYTES (1,048,576)" in message


def test_a_pipeline_files_spool_segment_larger_than_its_bound_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("sources:\n  - url: sim://rig-1\nspool: {max_bytes: 1048576, segment_bytes: 2097152}\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert "spool.segment_bytes" in str(info.value)
    assert "must not exceed" in str(info.value)


def test_the_well_of_an_export_comes_from_its_source_then_the_global_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WITS_WELL_NAME", "Field well {source}")
    monkeypatch.setenv("WITS_WITSML_WELL_UID", "W-{source}")
    monkeypatch.setenv("WITS_WITSML_LOG_UID", "{source}-{index}-log")
    monkeypatch.setenv("WITS_WELLS", '{"rig-1": {"name": "Smith 4H", "wellbore_uid": "WB-{index}"}}')
    cfg = WitsConfig(_env_file=None)  # type: ignore[call-arg]
    own = cfg.well_for("rig-1", "depth")
    assert (own.name, own.well_uid, own.wellbore_uid, own.log_uid) == (
        "Smith 4H",
        "W-rig-1",
        "WB-depth",
        "rig-1-depth-log",
    )
    other = cfg.well_for("rig-2", "time")
    assert (other.name, other.well_uid, other.wellbore_uid, other.log_uid) == (
        "Field well rig-2",
        "W-rig-2",
        None,
        "rig-2-time-log",
    )
    # Nothing set: nothing, and the export derives the names from the source.
    monkeypatch.delenv("WITS_WELL_NAME")
    monkeypatch.delenv("WITS_WITSML_WELL_UID")
    monkeypatch.delenv("WITS_WITSML_LOG_UID")
    monkeypatch.delenv("WITS_WELLS")
    assert WitsConfig(_env_file=None).well_for("rig-1", "time").model_dump() == {  # type: ignore[call-arg]
        "name": None,
        "well_uid": None,
        "wellbore_uid": None,
        "log_uid": None,
    }


def test_export_bounds_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WITS_EXPORT_MAX_CONCURRENT", "0")
    monkeypatch.setenv("WITS_EXPORT_MAX_VALUES", "100000000")
    with pytest.raises(ConfigError) as info:
        load_config()
    text = str(info.value)
    assert "WITS_EXPORT_MAX_CONCURRENT: Input should be greater than or equal to 1" in text
    assert "WITS_EXPORT_MAX_VALUES: Input should be less than or equal to 10000000" in text
