"""Build the pieces of a pipeline from settings and a pipeline file (shared by ``stream`` and ``run``)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from witskit.config import PipelineConfig, WitsConfig
from witskit.errors import ConfigError, WitsKitError
from witskit.protocol import WITSDecoder
from witskit.storage.spool import Spool

if TYPE_CHECKING:
    from witskit.analytics.rigstate import RigStateSettings

__all__ = [
    "alarm_problems",
    "check_plan",
    "decoder_from",
    "job_spool_dir",
    "plan_problems",
    "rig_state_problems",
    "rig_state_settings",
    "spool_from",
    "url_problems",
    "webhook_problems",
]


def url_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Every bad source and sink URL of a pipeline mapping, as (field, message); nothing is opened.

    Works on the raw mapping of a file (entries of the wrong shape are left to the file's own
    validation), so ``load_pipeline(path, url_problems)`` reports both kinds at once.
    """
    from witskit.pipeline.sinks import sink_kind
    from witskit.transport.urls import open_source

    problems: list[tuple[str, str]] = []
    sources = data.get("sources")
    for i, src in enumerate(sources if isinstance(sources, list) else []):
        url = src.get("url") if isinstance(src, dict) else None
        if not isinstance(url, str):
            continue
        options = src.get("options")
        options = options if isinstance(options, dict) else {}
        bad = _option_problems(url, options)
        problems.extend((f"sources.{i}.options.{key}", message) for key, message in bad)
        try:
            open_source(url, **{k: v for k, v in options.items() if k not in dict(bad)})
        except TypeError as exc:
            # A keyword the source does not take: say it as the URL parser says an unknown option.
            unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
            if unexpected is None:
                problems.append((f"sources.{i}.options", f"bad option ({exc})"))
            else:
                problems.append((f"sources.{i}.options", f"unknown option {unexpected.group(1)!r} for {url}"))
        except (WitsKitError, ValueError) as exc:
            problems.append((f"sources.{i}.url", str(exc)))
    sinks = data.get("sinks")
    for i, sink in enumerate(sinks if isinstance(sinks, list) else []):
        url = sink.get("url") if isinstance(sink, dict) else None
        if not isinstance(url, str):
            continue
        try:
            sink_kind(url)
        except WitsKitError as exc:
            problems.append((f"sinks.{i}.url", str(exc)))
    return problems


#: Host names that reach this machine's own service when WITS_HOST listens on them.
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "ip6-localhost"})  # noqa: S104


def _service_ports(config: WitsConfig) -> set[int]:
    return {
        config.port,
        config.metrics_port,
        *([config.health_check_port] if config.health_check_port else []),
    }


def webhook_problems(hook: Any, where: str, config: WitsConfig) -> list[tuple[str, str]]:
    """A webhook entry's URL and secret problems, as (field, message): a URL that is not http(s)
    with a host or that points at this service, a missing, unset or short key (shape problems are
    the file model's). The service's API checks webhooks added through it with this too."""
    import os
    from urllib.parse import urlsplit

    if not isinstance(hook, dict):
        return []
    problems: list[tuple[str, str]] = []
    url = hook.get("url")
    if isinstance(url, str):
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:  # a port that is no number or out of range
            return [(f"{where}.url", f"not a valid URL ({exc})")]
        if scheme not in ("http", "https") or not parts.hostname:
            shown = f"{scheme}://" if scheme else "no scheme"
            problems.append((f"{where}.url", f"must be an http:// or https:// URL with a host, not {shown}"))
        else:
            host = parts.hostname.lower()
            port = port or (443 if scheme == "https" else 80)
            ours = {config.host.lower()} | (_LOOPBACK if config.host.lower() in _LOOPBACK else set())
            if host in ours and port in _service_ports(config):
                problems.append(
                    (
                        f"{where}.url",
                        f"points at this WitsKit service ({host}:{port}, from WITS_HOST and WITS_PORT); "
                        "a webhook must go to another system",
                    )
                )
    secret, env = hook.get("secret"), hook.get("secret_env")
    if secret is None and env is None:
        problems.append((where, "needs secret_env: (the name of a variable holding the HMAC key) or secret:"))
    elif isinstance(env, str) and secret is None and not os.environ.get(env):
        problems.append((f"{where}.secret_env", f"the environment variable {env} is not set (or empty)"))
    elif isinstance(secret, str) and len(secret.encode("utf-8")) < 16:
        problems.append((f"{where}.secret", "must be at least 16 bytes (a guessable key signs nothing)"))
    return problems


def alarm_problems(data: dict[str, Any], config: WitsConfig | None = None) -> list[tuple[str, str]]:
    """Every problem of a pipeline mapping's ``alarms:`` section, as (field, message).

    Rules: unknown codes, units that do not fit their channel, windows of zero, unknown fields
    (``witskit.analytics.alarms.rule_problems``). Webhooks: a URL that is not http(s) or that points
    at this service (``config``'s host and ports; the process settings when None), a missing key.
    """
    from witskit.analytics.alarms import rule_problems

    alarms = data.get("alarms")
    if not isinstance(alarms, dict):
        return []
    symbols = None
    decoder = data.get("decoder")
    overlay = decoder.get("overlay") if isinstance(decoder, dict) else None
    if overlay is not None and Path(str(overlay)).is_file():  # custom codes the rules may name
        from witskit.symbols import default_table

        with contextlib.suppress(OSError, WitsKitError):  # the overlay's own problem is reported anyway
            symbols = default_table().with_overlay(Path(str(overlay)).read_text(encoding="utf-8-sig"))
    problems = rule_problems(alarms.get("rules", []), "alarms.rules", symbols=symbols)
    hooks = alarms.get("webhooks")
    if isinstance(hooks, list) and hooks:
        if config is None:
            from witskit.config import load_config

            config = load_config()
        for i, hook in enumerate(hooks):
            problems.extend(webhook_problems(hook, f"alarms.webhooks.{i}", config))
    return problems


def rig_state_settings(
    rig_state: dict[str, Any] | None, metric: bool, where: str = "rig_state"
) -> RigStateSettings:
    """A source's ``rig_state:`` mapping as ``RigStateSettings`` in the decoder's unit system.

    ``metric`` follows ``decoder.metric`` (the values the classifier reads are decoded in it); a
    ``metric:`` key that says otherwise is an error. Raises ``ConfigError`` naming ``where.key``.
    """
    from witskit.analytics.rigstate import RigStateSettings

    data = dict(rig_state or {})
    if "metric" in data and data["metric"] != metric:
        raise ConfigError(
            f"{where}.metric: the rig state is classified in the decoder's units "
            f"(decoder.metric is {str(metric).lower()}); leave metric out"
        )
    data["metric"] = metric
    return RigStateSettings.from_mapping(data, where=where)


def rig_state_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Every bad ``rig_state:`` setting of the sources of a pipeline mapping, as (field, message)."""
    problems: list[tuple[str, str]] = []
    decoder = data.get("decoder")
    metric = decoder.get("metric", False) if isinstance(decoder, dict) else False
    sources = data.get("sources")
    for i, src in enumerate(sources if isinstance(sources, list) else []):
        section = src.get("rig_state") if isinstance(src, dict) else None
        if section is None:
            continue
        where = f"sources.{i}.rig_state"
        if not isinstance(section, dict):
            problems.append((where, f"expected a mapping of settings, got {type(section).__name__}"))
            continue
        try:
            rig_state_settings(section, metric is True, where)
        except ConfigError as exc:
            field, _, message = str(exc).partition(": ")
            problems.append((field, message))
    return problems


def plan_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """:func:`url_problems`, :func:`alarm_problems` and :func:`rig_state_problems` together: the
    check ``load_pipeline`` takes."""
    return url_problems(data) + alarm_problems(data) + rig_state_problems(data)


def _option_problems(url: str, options: dict[str, Any]) -> list[tuple[str, str]]:
    """Check a pipeline file's plain options (numbers, text, true/false) as the URL's query would.

    The source constructors take options as Python keywords, unchecked; the same option in the
    query string is parsed and checked (``idle_timeout=abc`` is refused with the reason). So each
    plain option is tried in the query; one the query does not know is left to the keywords.
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from witskit.transport.urls import open_source

    try:
        open_source(url)
    except (WitsKitError, TypeError, ValueError):
        return []  # the URL itself is wrong: that is the one problem to report
    problems: list[tuple[str, str]] = []
    parts = urlsplit(url)
    for key, value in options.items():
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            continue
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != key]
        try:
            open_source(urlunsplit(parts._replace(query=urlencode([*query, (key, text)]))))
        except WitsKitError as exc:
            if "unknown option" not in str(exc):
                problems.append((key, str(exc)))
    return problems


def check_plan(plan: PipelineConfig, path: str | Path | None = None) -> None:
    """Check every source and sink URL of a pipeline (nothing is opened or created).

    Raises one :class:`ConfigError` listing every bad URL, each with its field (``sources.1.url``)
    and, when the plan came from a file, the file's name: a user fixes them all in one go.
    """
    data = plan.model_dump()
    problems = url_problems(data) + alarm_problems(data) + rig_state_problems(data)
    if not problems:
        return
    if path is None:  # URLs from the command line: the messages name them
        raise ConfigError("\n".join(message for _, message in problems))
    raise ConfigError(f"{path}: invalid pipeline:\n" + "\n".join(f"  {f}: {m}" for f, m in problems))


def job_spool_dir(plan: PipelineConfig, config: WitsConfig) -> Path:
    """The spool directory of a job whose pipeline names none: one per set of sinks, under the data
    directory.

    What waits in a spool is owed to its sinks, so the directory is named after them:
    ``witskit stream ANY-SOURCE --db DB`` run again writes what its last run left for DB, while a
    job with other sinks (``witskit run``, the demo, a stream into another database) has a spool of
    its own, so that neither blocks on the other's lock nor replays frames into the wrong sinks.
    ``witskit run`` keeps ``WITS_DATA_DIR/spool``.
    """
    import hashlib

    sinks = "\n".join(sorted(_sink_identity(s.url) for s in plan.sinks))
    digest = hashlib.sha256(sinks.encode("utf-8", "surrogateescape")).hexdigest()
    return config.data_dir / "spools" / digest[:16]


def _sink_identity(url: str) -> str:
    """A sink URL with its file made absolute: ``sqlite:///rig.db`` in two directories is two sinks."""
    import os

    scheme, sep, rest = url.partition("://")
    kind = scheme.split("+")[0].lower()
    if not sep or kind not in ("sqlite", "jsonl", "csv"):
        return url
    path, query_sep, query = (rest[1:] if kind == "sqlite" else rest).partition("?")
    if not path or path == ":memory:":
        return url
    return f"{scheme}://{'/' if kind == 'sqlite' else ''}{os.path.abspath(path)}{query_sep}{query}"


def decoder_from(plan: PipelineConfig, config: WitsConfig) -> WITSDecoder:
    """The decoder a pipeline file asks for (its overlay loaded); the process zone when it names none."""
    settings = plan.decoder
    if settings.overlay is not None:
        from witskit.symbols import load_overlay

        load_overlay(settings.overlay)
    timezone = settings.timezone
    if "timezone" not in settings.model_fields_set:
        timezone = config.timezone  # the file did not say: WITS_TIMEZONE applies
    return WITSDecoder(settings.metric, settings.strict, timezone=timezone)


def spool_from(plan: PipelineConfig, config: WitsConfig) -> Spool:
    """The spool a pipeline file asks for, each unset field taken from the process settings.

    A combination that does not fit (a segment larger than the bound, from the file and the
    environment together) is a :class:`ConfigError` naming both settings.
    """
    settings = plan.spool
    max_bytes = settings.max_bytes or config.spool_max_bytes
    segment_bytes = settings.segment_bytes or config.spool_segment_bytes
    if segment_bytes is not None and segment_bytes > max_bytes:
        raise ConfigError(
            f"spool.segment_bytes or WITS_SPOOL_SEGMENT_BYTES ({segment_bytes:,}) must not exceed "
            f"spool.max_bytes or WITS_SPOOL_MAX_BYTES ({max_bytes:,}): several segments must fit in "
            "the bound (leave the segment size unset for max_bytes / 8)"
        )
    return Spool(
        settings.dir or config.spool_dir,
        fsync=settings.fsync or config.spool_fsync,
        fsync_interval_ms=settings.fsync_interval_ms or config.spool_fsync_interval_ms,
        max_bytes=max_bytes,
        overflow=settings.overflow or config.spool_overflow,
        segment_bytes=segment_bytes,
    )
