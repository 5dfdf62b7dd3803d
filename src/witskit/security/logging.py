"""Structured logs (structlog) that never carry a secret.

:func:`configure_logging` routes structlog *and* the standard library (uvicorn, SQLAlchemy, asyncio)
through one pipeline: a request id from context, a UTC timestamp, then :func:`redact_event`, which
removes secrets by key (any name containing ``password``, ``token``, ``key``...: ``key_password``
too, see :func:`is_sensitive_name`) and by value (passwords in URLs, ``Bearer`` tokens, WitsKit API
keys, JWTs, ``name=value`` and ``"name": value`` pairs with such a name in text) everywhere in the
event, including exception text, before JSON or console rendering. Every pattern runs in linear
time: a log line is redacted on the event loop. The database drivers' and raw HTTP loggers
(:data:`QUIET_LOGGERS`) stay at WARNING whatever the level: their DEBUG lines are SQL parameters.

:func:`redact_validation_errors` does the same for the errors a 422 answer echoes.
:class:`SecureLogger` keeps the plan's interface (``sanitize_data``, ``info``, ``error``...).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, Final

import structlog

__all__ = [
    "QUIET_LOGGERS",
    "REDACTED",
    "SecureLogger",
    "configure_logging",
    "is_sensitive_name",
    "redact_event",
    "redact_text",
    "redact_validation_errors",
    "secure_logger",
]

REDACTED = "***REDACTED***"

_SENSITIVE_KEYS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "auth",
    "credential",
    "private",
    "api_key",
    "apikey",
    "key",
    "cookie",
    "session",
)
# Names that contain a sensitive word but hold nothing secret: ``keys`` is a count or a list of
# names, ``key_id`` the public handle of an API key, ``token_type`` is "bearer". Anything else
# with a sensitive word anywhere in its name (``key_password``, ``db_secret``, ``x-api-key``) is
# masked: a masked harmless value costs less than a leaked secret.
_SAFE_KEYS = frozenset(
    {
        "key_id",
        "keys",
        "author",
        "authenticated",
        "auth_method",
        "token_type",
        "monkey",
        "tokens_valid_after",
        "expires_in",
    }
)
# Words that mark a name=value pair in free text (``auth``, ``session`` and ``cookie`` are left to
# the key-based masking: as words in messages they are too common).
_TEXT_WORDS = ("password", "passwd", "pwd", "secret", "token", "key", "credential", "private")

_VALUE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host -> scheme://user:***@host. The scheme starts where a run of
    # scheme characters starts, and is taken whole (possessive): else every letter of a long word
    # would start a scan to its end, and a 16 KiB request path would cost a second to log.
    (
        re.compile(
            r"(?<![a-zA-Z0-9+.\-])(?P<pre>[a-zA-Z][a-zA-Z0-9+.\-]*+://[^\s:/@]*+:)[^\s@/]++(?P<post>@)"
        ),
        r"\g<pre>***\g<post>",
    ),
    # Authorization headers and bearer tokens
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 ***"),
    # JWTs anywhere (three base64url parts, the first starting with eyJ)
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"), "***JWT***"),
    # WitsKit API keys
    (re.compile(r"\bwk_[A-Za-z0-9_\-]{8,}"), "wk_***"),
    # JSON-style "name": "value" pairs whose name holds a sensitive word
    (
        re.compile(r'(?i)(?P<pre>"(?P<name>[^"\s]{0,100})"\s*:\s*)(?P<value>"(?:[^"\\]|\\.)*"|[^\s,}\]]+)'),
        "",
    ),
    # name=value and name: value pairs in free text (query strings, messages), compound names too:
    # key_password=..., db-secret: ..., X_API_KEY=... A name is not the end of a path
    # ("POST /api/v1/auth/token: could not ...": the reason follows, not a token).
    (
        re.compile(
            r"(?i)(?<![A-Za-z0-9_.\-/])(?P<pre>(?P<name>[A-Za-z0-9_.\-]{0,100}?(?:"
            + "|".join(_TEXT_WORDS)
            + r")[A-Za-z0-9_\-]{0,100})\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s;,&\"']+)"
        ),
        "",
    ),
]


def _mask_pair(match: re.Match[str]) -> str:
    if not is_sensitive_name(match.group("name")):
        return match.group(0)
    value = match.group("value")
    masked = '"***"' if value.startswith('"') else "'***'" if value.startswith("'") else "***"
    return match.group("pre") + masked


def redact_text(text: str) -> str:
    """``text`` with every secret-looking value masked."""
    for pattern, replacement in _VALUE_PATTERNS:
        text = pattern.sub(replacement or _mask_pair, text)
    return text


def is_sensitive_name(name: str) -> bool:
    """True when a field, parameter or key of this name may hold a secret: its name contains
    ``password``, ``secret``, ``token``, ``key``, ``auth``... anywhere (``key_password``,
    ``db_secret``), except a few known harmless names (``keys``, ``key_id``, ``token_type``)."""
    lowered = name.lower().replace("-", "_")
    if lowered in _SAFE_KEYS:
        return False
    return any(word in lowered for word in _SENSITIVE_KEYS)


_sensitive_key = is_sensitive_name


def redact_validation_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic / FastAPI validation errors, fit to send or log: the ``input`` of a field whose
    name is sensitive (anywhere in its ``loc``) is masked, and secrets inside any other input too
    (by key in mappings, by value in text). FastAPI's 422 echoes ``input`` otherwise."""
    out = []
    for error in errors:
        clean = dict(error)
        loc = clean.get("loc") or ()
        if "input" in clean:
            if any(isinstance(part, str) and is_sensitive_name(part) for part in loc):
                clean["input"] = REDACTED
            else:
                clean["input"] = _redact_value(clean["input"])
        if "ctx" in clean and isinstance(clean["ctx"], Mapping):
            clean["ctx"] = {k: _redact_value(v) for k, v in clean["ctx"].items()}
        out.append(clean)
    return out


def _redact_value(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _sensitive_key(k) else _redact_value(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, depth + 1) for v in value)
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets by key and by value, exception text included."""
    for key in list(event_dict):
        value = event_dict[key]
        if key in ("event", "exception", "stack") or not _sensitive_key(key):
            event_dict[key] = _redact_value(value)
        else:
            event_dict[key] = REDACTED
    return event_dict


#: Loggers kept at WARNING whatever the level asked for: at DEBUG (and SQLAlchemy's engine at
#: INFO) they write SQL statements with their parameters (password hashes, API key hashes, session
#: ids) or raw request lines (a WebSocket's ``?token=``), which no redaction by key can recognise.
QUIET_LOGGERS: Final = (
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "asyncmy",
    "pymysql",
    "uvicorn.access",
    "websockets",
    "httpcore",
    "httpx",
    "multipart",
    "python_multipart",
)


def configure_logging(level: str = "INFO", fmt: str = "json", *, stream: Any = None) -> None:
    """Set up structlog and the standard library to log through the redacting pipeline.

    The :data:`QUIET_LOGGERS` (database drivers, SQLAlchemy, raw HTTP and WebSocket traffic) log
    warnings and errors only, even at ``DEBUG``.
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,  # exception text becomes a string, then is redacted
        redact_event,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("witskit")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "witskit"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


class SecureLogger:
    """The plan's security-aware logger, over this module's redaction: sanitizes keyword data as
    :func:`redact_event` does, then logs through structlog."""

    #: The words that make a name sensitive (the plan's list is a part of it): the rule itself is
    #: :func:`is_sensitive_name`, which also knows the harmless names that contain one.
    SENSITIVE_FIELDS = frozenset(_SENSITIVE_KEYS)

    def __init__(self, name: str = "witskit") -> None:
        self.logger = structlog.get_logger(name)

    def sanitize_data(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Mask sensitive keys and credentials inside string values."""
        sanitized: dict[str, Any] = _redact_value(data)  # a mapping: by key, then by value inside
        return sanitized

    def _mask_credentials(self, text: str) -> str:
        """Mask ``password=``/``key=``/``secret=`` values and URL passwords in a string."""
        return redact_text(text)

    def debug(self, message: str, **kwargs: Any) -> None:
        """Log at DEBUG."""
        self.logger.debug(redact_text(message), **self.sanitize_data(kwargs))

    def info(self, message: str, **kwargs: Any) -> None:
        """Log at INFO."""
        self.logger.info(redact_text(message), **self.sanitize_data(kwargs))

    def warning(self, message: str, **kwargs: Any) -> None:
        """Log at WARNING."""
        self.logger.warning(redact_text(message), **self.sanitize_data(kwargs))

    def error(self, message: str, **kwargs: Any) -> None:
        """Log at ERROR."""
        self.logger.error(redact_text(message), **self.sanitize_data(kwargs))


#: A process-wide instance (the plan's ``secure_logger``).
secure_logger = SecureLogger()
