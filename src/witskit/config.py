"""Settings from the environment (``WITS_*`` variables and ``.env``), and the pipeline file.

:class:`WitsConfig` follows the plan's fields and variable names, on pydantic-settings (pydantic 2
moved ``BaseSettings`` there). Nothing needs configuring to start: the database defaults to a
SQLite file in the data directory. Secrets are :class:`~pydantic.SecretStr`: they print as
``**********`` and never reach a log. Invalid settings fail at start with one line per field,
naming the variable (:class:`ConfigError`).

A pipeline file (YAML) names several sources and sinks for ``witskit stream --config`` and
``witskit run --config``; see ``examples/pipeline.yaml``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from witskit.errors import ConfigError

__all__ = [
    "AlarmsConfig",
    "ConfigError",
    "DecoderSettings",
    "PipelineConfig",
    "SinkConfig",
    "SourceConfig",
    "SpoolSettings",
    "WebhookConfig",
    "WellSettings",
    "WitsConfig",
    "config",
    "default_data_dir",
    "load_config",
    "load_pipeline",
]


def default_data_dir() -> Path:
    """Where WitsKit keeps its database and spool by default: ``$XDG_DATA_HOME/witskit``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "witskit"


def _known_zone(value: str) -> str:
    """An IANA time zone name (``UTC`` for ``Z``), or a ``ValueError`` saying what to write."""
    if value.upper() in ("UTC", "Z"):
        return "UTC"
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as 'America/Chicago')"
        ) from None
    return value


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class WellSettings(BaseModel):
    """The well a source's LAS and WITSML exports name (each None: derived, see ``docs/outputs.md``).

    The values may hold ``{source}`` and ``{index}`` (``time`` or ``depth``), replaced per export.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=256, description="LAS ~W WELL and the WITSML well name")
    well_uid: str | None = Field(None, max_length=256)
    wellbore_uid: str | None = Field(None, max_length=256)
    log_uid: str | None = Field(None, max_length=256)


class WitsConfig(BaseSettings):
    """Process settings. Every field reads ``WITS_<NAME>`` (the plan's shorter names too)."""

    model_config = SettingsConfigDict(
        env_prefix="WITS_",
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

    # Storage
    data_dir: Path = Field(
        default_factory=default_data_dir, validation_alias=_env("WITS_DATA_DIR", "data_dir")
    )
    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=_env("WITS_DATABASE_URL", "database_url"),
        description="SQLAlchemy-style URL; default: sqlite:///<data_dir>/witskit.db",
    )
    database_pool_size: int = Field(
        20,
        ge=1,
        le=1000,
        validation_alias=_env("WITS_DB_POOL_SIZE", "WITS_DATABASE_POOL_SIZE", "database_pool_size"),
    )
    database_timeout: float = Field(
        30,
        gt=0,
        le=3600,
        validation_alias=_env("WITS_DB_TIMEOUT", "WITS_DATABASE_TIMEOUT", "database_timeout"),
    )
    # History (docs/history.md): days kept in the database, for every source and per source
    # (JSON: {"rig-7": 30}), and the Parquet archive that retention checks first.
    retention_days: int | None = Field(
        None, ge=1, validation_alias=_env("WITS_RETENTION_DAYS", "retention_days")
    )
    retention_sources: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, validation_alias=_env("WITS_RETENTION_SOURCES", "retention_sources")
    )
    archive_url: str | None = Field(None, validation_alias=_env("WITS_ARCHIVE_URL", "archive_url"))
    # Seconds between the service's maintenance passes (compaction, archive, retention); None: off.
    maintenance_interval: float | None = Field(
        None, gt=0, le=7 * 86400, validation_alias=_env("WITS_MAINTENANCE_INTERVAL", "maintenance_interval")
    )

    # Security
    api_key: SecretStr | None = Field(None, validation_alias=_env("WITS_API_KEY", "api_key"))
    jwt_secret: SecretStr | None = Field(None, validation_alias=_env("WITS_JWT_SECRET", "jwt_secret"))
    encryption_key: SecretStr | None = Field(
        None, validation_alias=_env("WITS_ENCRYPTION_KEY", "encryption_key")
    )
    admin_username: str | None = Field(None, validation_alias=_env("WITS_ADMIN_USERNAME", "admin_username"))
    admin_password: SecretStr | None = Field(
        None, validation_alias=_env("WITS_ADMIN_PASSWORD", "admin_password")
    )
    live_recheck_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        validation_alias=_env("WITS_LIVE_RECHECK_SECONDS", "live_recheck_seconds"),
        description="How often an open live WebSocket re-checks its credential (revoked: closed 1008)",
    )
    max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=1 << 30,
        validation_alias=_env("WITS_MAX_BODY_BYTES", "max_body_bytes"),
        description="Largest request body the API reads (413 beyond; /api/v1/auth/* at most 16 KiB)",
    )
    # A request of the API is a few KiB of head and at most WITS_MAX_BODY_BYTES of body, which even
    # a rig site's satellite link sends in a few seconds.
    http_request_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        validation_alias=_env("WITS_HTTP_REQUEST_TIMEOUT", "http_request_timeout"),
        description="Seconds a client has to send a whole request (head and body); closed beyond",
    )
    http_max_connections: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        validation_alias=_env("WITS_HTTP_MAX_CONNECTIONS", "http_max_connections"),
        description="Most HTTP and WebSocket connections at once (default: a quarter of the open-file limit)",
    )
    api_docs: bool = Field(
        True,
        validation_alias=_env("WITS_API_DOCS", "api_docs"),
        description="Serve the API browser at /docs and the schema at /openapi.json",
    )
    alarm_webhooks_private: bool = Field(
        False,
        validation_alias=_env("WITS_ALARM_WEBHOOKS_PRIVATE", "alarm_webhooks_private"),
        description=(
            "Let webhooks added through the API reach loopback, private and link-local addresses "
            "(off: an API caller could otherwise make the service send requests into its own network)"
        ),
    )

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", validation_alias=_env("WITS_LOG_LEVEL", "log_level")
    )
    log_format: Literal["json", "console"] = Field(
        "json", validation_alias=_env("WITS_LOG_FORMAT", "log_format")
    )

    # Transport
    tcp_timeout: float = Field(30, gt=0, le=3600, validation_alias=_env("WITS_TCP_TIMEOUT", "tcp_timeout"))
    tcp_retry_attempts: int = Field(
        3, ge=1, le=1000, validation_alias=_env("WITS_TCP_RETRY_ATTEMPTS", "tcp_retry_attempts")
    )
    timezone: str = Field("UTC", validation_alias=_env("WITS_TIMEZONE", "timezone"))

    # Spool
    spool_fsync: Literal["always", "interval", "never"] = Field(
        "interval", validation_alias=_env("WITS_SPOOL_FSYNC", "spool_fsync")
    )
    spool_fsync_interval_ms: int = Field(
        100, ge=1, le=60_000, validation_alias=_env("WITS_SPOOL_FSYNC_INTERVAL_MS", "spool_fsync_interval_ms")
    )
    spool_max_bytes: int = Field(
        1 << 30, ge=1 << 20, validation_alias=_env("WITS_SPOOL_MAX_BYTES", "spool_max_bytes")
    )
    spool_overflow: Literal["block", "drop_oldest"] = Field(
        "block", validation_alias=_env("WITS_SPOOL_OVERFLOW", "spool_overflow")
    )
    spool_segment_bytes: int | None = Field(
        None,
        ge=1 << 10,
        le=1 << 30,
        validation_alias=_env("WITS_SPOOL_SEGMENT_BYTES", "spool_segment_bytes"),
        description="Spool segment size; default min(16 MiB, WITS_SPOOL_MAX_BYTES / 8)",
    )

    # Service and monitoring
    host: str = Field("127.0.0.1", validation_alias=_env("WITS_HOST", "host"))
    port: int = Field(8080, ge=1, le=65535, validation_alias=_env("WITS_PORT", "port"))
    metrics_enabled: bool = Field(True, validation_alias=_env("WITS_METRICS_ENABLED", "metrics_enabled"))
    metrics_port: int = Field(
        9090, ge=1, le=65535, validation_alias=_env("WITS_METRICS_PORT", "metrics_port")
    )
    broker_grace: float = Field(
        30.0,
        ge=0,
        validation_alias=_env("WITS_BROKER_GRACE", "broker_grace"),
        description="Seconds a fleet edge's NATS cluster may not acknowledge before /readyz fails",
    )
    health_check_port: int = Field(
        0,
        ge=0,
        le=65535,
        validation_alias=_env("WITS_HEALTH_CHECK_PORT", "health_check_port"),
        description="A port serving /livez and /readyz only (0: none; they are on the API port anyway)",
    )

    # LAS and WITSML exports (witskit export, GET /api/v1/data/las and /data/witsml)
    well_name: str | None = Field(
        None,
        max_length=256,
        validation_alias=_env("WITS_WELL_NAME", "well_name"),
        description="Well name of every export (default: the feed's WID item, else the source)",
    )
    witsml_well_uid: str | None = Field(
        None, max_length=256, validation_alias=_env("WITS_WITSML_WELL_UID", "witsml_well_uid")
    )
    witsml_wellbore_uid: str | None = Field(
        None, max_length=256, validation_alias=_env("WITS_WITSML_WELLBORE_UID", "witsml_wellbore_uid")
    )
    witsml_log_uid: str | None = Field(
        None, max_length=256, validation_alias=_env("WITS_WITSML_LOG_UID", "witsml_log_uid")
    )
    wells: dict[str, WellSettings] = Field(
        default_factory=dict,
        validation_alias=_env("WITS_WELLS", "wells"),
        description='Per source, over the settings above: {"rig-1": {"name": ..., "well_uid": ...}} (JSON)',
    )
    # An export is built in memory (its headers give its extent before its data), in a thread that
    # shares the GIL with the event loop: one at a time of 6 h of 10 channels raises a cheap
    # request's p50 from ~8 to ~30 ms, two at once to ~650 ms (bench/bench_export_route.py).
    export_max_concurrent: int = Field(
        1,
        ge=1,
        le=64,
        validation_alias=_env("WITS_EXPORT_MAX_CONCURRENT", "export_max_concurrent"),
        description="LAS/WITSML exports the API builds at once; one more is refused (503)",
    )
    export_max_values: int = Field(
        2_000_000,
        ge=1_000,
        le=10_000_000,
        validation_alias=_env("WITS_EXPORT_MAX_VALUES", "export_max_values"),
        description="Most values (rows x channels) of one LAS/WITSML document the API builds (422 beyond)",
    )
    export_timeout: float = Field(
        120.0,
        gt=0,
        le=3600,
        validation_alias=_env("WITS_EXPORT_TIMEOUT", "export_timeout"),
        description="Seconds an API export may take (422 beyond: ask for a shorter range)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _known_zone(value)

    @field_validator("spool_segment_bytes")
    @classmethod
    def _segment_fits(cls, value: int | None, info: ValidationInfo) -> int | None:
        bound = info.data.get("spool_max_bytes")
        if value is not None and isinstance(bound, int) and value > bound:
            raise ValueError(
                f"must not exceed WITS_SPOOL_MAX_BYTES ({bound:,}): acknowledged data is freed a "
                "segment at a time, so several must fit in the bound (leave it unset for max/8)"
            )
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError(
                "must be at least 32 bytes (generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return value

    @property
    def database_url_value(self) -> str:
        """The database URL to connect with (the default SQLite file when unset)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'witskit.db'}"

    def well_for(self, source: str, index: str) -> WellSettings:
        """The well settings of ``source``'s ``index`` (time or depth) export: its own in
        ``WITS_WELLS`` over ``WITS_WELL_NAME`` and ``WITS_WITSML_*_UID``, placeholders filled."""
        own = self.wells.get(source) or WellSettings()

        def fill(value: str | None) -> str | None:
            return value.replace("{source}", source).replace("{index}", index) if value else None

        return WellSettings(
            name=fill(own.name or self.well_name),
            well_uid=fill(own.well_uid or self.witsml_well_uid),
            wellbore_uid=fill(own.wellbore_uid or self.witsml_wellbore_uid),
            log_uid=fill(own.log_uid or self.witsml_log_uid),
        )

    @property
    def spool_dir(self) -> Path:
        """Where the spool's segments live."""
        return self.data_dir / "spool"

    def __repr_args__(self) -> Any:
        # pydantic already masks SecretStr; this keeps repr() free of anything secret-looking too.
        return [(k, v) for k, v in super().__repr_args__() if k != "admin_password"]


_SECRET_WORDS = ("secret", "password", "key", "token", "url")


def _explain(exc: ValidationError, *, prefix: str, env: bool) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        name = loc.upper() if loc.upper().startswith("WITS_") else (f"WITS_{loc.upper()}" if env else loc)
        got = err.get("input")
        # Never echo what was given for anything that may hold a credential (a URL can too).
        secret = any(word in loc.lower() for word in _SECRET_WORDS)
        shown = "" if secret or isinstance(got, dict | list) else f" (got {got!r})"
        # Pydantic names its model classes ("... or instance of SourceConfig"): not the user's words.
        message = re.sub(r" or instance of \w+", "", err["msg"])
        if len(err["loc"]) == 2 and err["loc"][0] in ("sources", "sinks") and isinstance(got, str):
            shown += f"; write each as a mapping: - url: {got}"
        lines.append(f"{prefix}{name}: {message}{shown}")
    return "\n".join(lines)


def _unknown_in_env_file(env_file: Path) -> list[str]:
    """``WITS_*`` names in ``.env`` that are no setting, each with its line and the likely one.

    Settings are read with ``extra="ignore"``, so without this a typo (``WITS_PROT=8081``) would be
    silently ignored. Other programs' variables (no ``WITS_`` prefix) are left alone.
    """
    import difflib

    known = sorted(
        alias.upper()
        for info in WitsConfig.model_fields.values()
        for alias in getattr(info.validation_alias, "choices", ())
        if isinstance(alias, str) and alias.upper().startswith("WITS_")
    )
    problems = []
    # One line, not the settings loader's UnicodeDecodeError, for a file saved in another encoding.
    text = _pipeline_text(env_file.resolve(), ".env file", "KEY=value lines")
    for number, line in enumerate(text.splitlines(), 1):
        match = re.match(r"\s*(?:export\s+)?(WITS_\w+)\s*=", line, flags=re.I)
        if match is None or match.group(1).upper() in known:
            continue
        guess = difflib.get_close_matches(match.group(1).upper(), known, n=1)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        problems.append(f"  line {number}: {match.group(1)} is not a WitsKit setting{hint}")
    return problems


def load_config(**overrides: Any) -> WitsConfig:
    """Read settings from the environment and ``.env``; raise :class:`ConfigError` listing every bad field."""
    env_file = Path(".env")
    unknown = _unknown_in_env_file(env_file) if env_file.is_file() else []
    try:
        config = WitsConfig(**overrides)
    except ValidationError as exc:
        where = f" (from the environment and {env_file.resolve()})" if env_file.is_file() else ""
        lines = [_explain(exc, prefix="  ", env=True), *unknown]
        raise ConfigError(f"invalid settings{where}:\n" + "\n".join(lines)) from None
    if unknown:
        raise ConfigError(f"invalid settings in {env_file.resolve()}:\n" + "\n".join(unknown))
    return config


#: The plan's global settings (loaded by :func:`__getattr__` on first use).
config: WitsConfig


def __getattr__(name: str) -> Any:
    """``config``: the plan's global settings, :func:`load_config` on first use, then that object.

    The plan's ``config = WitsConfig()`` ran at import, so a bad environment broke every import of
    this module; here it is read when ``config`` is first looked up (and raises
    :class:`ConfigError` then). The commands and the service call :func:`load_config` themselves.
    """
    if name == "config":
        loaded = globals()["config"] = load_config()
        return loaded
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The pipeline file ---------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    """One source: a URL (``tcp://``, ``tls://``, ``tcp-listen://``, ``serial://``, ``file://``).

    ``rig_state`` overrides the rig state classifier's settings for this rig (the names of
    ``witskit.analytics.rigstate.RigStateSettings``, checked by ``witskit.pipeline.build``).
    """

    url: str
    name: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    rig_state: dict[str, Any] | None = None


class SinkConfig(_Strict):
    """One sink: a database URL, ``jsonl://path`` / ``csv://path``, a WITS relay (``wits-serve://``,
    ``wits-push://``, ``serial://``) or ``mqtt://``; ``options`` are keywords of the sink (such as
    an MQTT ``username`` and ``password``, kept out of the URL)."""

    url: str
    options: dict[str, Any] = Field(default_factory=dict)


class DecoderSettings(_Strict):
    """How frames are decoded."""

    metric: bool = False
    timezone: str = "UTC"
    strict: bool = False
    overlay: Path | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _known_zone(value)

    @field_validator("overlay")
    @classmethod
    def _overlay_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such overlay file: {value}")
        return value


class SpoolSettings(_Strict):
    """Where and how the durable spool works (defaults from :class:`WitsConfig`)."""

    dir: Path | None = None
    fsync: Literal["always", "interval", "never"] | None = None
    fsync_interval_ms: int | None = Field(None, ge=1)
    max_bytes: int | None = Field(None, ge=1 << 20)
    overflow: Literal["block", "drop_oldest"] | None = None
    segment_bytes: int | None = Field(None, ge=1 << 10, le=1 << 30)

    @field_validator("segment_bytes")
    @classmethod
    def _segment_fits(cls, value: int | None, info: ValidationInfo) -> int | None:
        bound = info.data.get("max_bytes")
        if value is not None and isinstance(bound, int) and value > bound:
            raise ValueError(f"must not exceed max_bytes ({bound:,}): several segments must fit in the bound")
        return value


class WebhookConfig(_Strict):
    """One outgoing webhook of the alarms: where to POST each event, and the HMAC-SHA256 key.

    The key is ``secret`` or, better (the file then holds no secret), the name of an environment
    variable in ``secret_env``. The URL is checked by ``witskit.pipeline.build`` (http or https, not
    this service).
    """

    url: str
    secret: SecretStr | None = None
    secret_env: str | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    max_attempts: int = Field(5, ge=1, le=100)


class AlarmsConfig(_Strict):
    """The ``alarms:`` section: rules (checked by ``witskit.analytics.alarms.rule_problems``),
    webhooks, and where the events are stored (default: the first SQL sink)."""

    rules: list[Any] = Field(default_factory=list)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    store: str | None = None
    #: Events waiting for each webhook; beyond it the newest are dropped and counted (ingest never waits).
    queue_size: int = Field(1000, ge=1, le=1_000_000)


class PipelineConfig(_Strict):
    """Sources, sinks, decoder and spool settings of one ingest process, and its alarms."""

    sources: list[SourceConfig] = Field(min_length=1)
    sinks: list[SinkConfig] = Field(default_factory=list)
    decoder: DecoderSettings = Field(default_factory=DecoderSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    alarms: AlarmsConfig | None = None


def _pipeline_text(p: Path, what: str = "pipeline file", form: str = "YAML text") -> str:
    """The text of a pipeline (or ``.env``) file, or a :class:`ConfigError` saying in one line why
    it is not UTF-8 text."""
    try:
        raw = p.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a {what}") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{p}: the file is UTF-16 text; save it as UTF-8")
    if b"\x00" in raw:
        raise ConfigError(f"{p}: not a text file (it holds NUL bytes); a {what} is {form} in UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{p}: line {line}: not UTF-8 (byte 0x{raw[exc.start]:02x}; Windows-1252 or Latin-1?); "
            "save the file as UTF-8"
        ) from None


_KINDS = {list: "a list", str: "a single value", int: "a number", float: "a number", bool: "true/false"}


#: Checks the file's raw mapping beyond its shape (the source and sink URLs, see
#: ``witskit.pipeline.build.url_problems``): a list of (field, message).
PipelineCheck = Callable[[dict[str, Any]], list[tuple[str, str]]]


def load_pipeline(path: str | Path, check: PipelineCheck | None = None) -> PipelineConfig:
    """Read a pipeline YAML file; errors name the file and every bad field (``sources.0.url``).

    ``check`` runs on the file's mapping even when its shape is wrong, so one
    :class:`ConfigError` lists a misspelt key and a bad URL next to it together.
    """
    import yaml

    p = Path(path)
    text = _pipeline_text(p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        raise ConfigError(
            f"{p}: the file is empty; a pipeline file needs a 'sources:' list (see examples/pipeline.yaml)"
        )
    if not isinstance(data, dict):
        found = _KINDS.get(type(data), type(data).__name__)
        raise ConfigError(f"{p}: expected a mapping with 'sources:' and 'sinks:' at the top, found {found}")
    problems: list[str] = []
    plan: PipelineConfig | None = None
    try:
        plan = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems.append(_explain(exc, prefix="  ", env=False))
    if check is not None:
        problems.extend(f"  {field}: {message}" for field, message in check(data))
    if plan is None or problems:
        raise ConfigError(f"{p}: invalid pipeline:\n" + "\n".join(problems))
    return plan
