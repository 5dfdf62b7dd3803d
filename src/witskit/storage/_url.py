"""Database URLs: which backend a URL names, its async driver, and its sanitized form.

Users write plain URLs (``sqlite:///wits.db``, ``postgresql://u:p@host/db``, ``mysql://...``,
``mariadb://...``); each backend has exactly one async driver, because the write paths use that
driver's bulk API directly (asyncpg COPY, aiosqlite ``executemany``, asyncmy ``executemany``).

The sanitizer works on the raw text, so even a URL that does not parse is logged without its
password. A URL is secret from the moment it is read: the parser never puts the original string
into an exception, and raises ``from None`` where the underlying error would quote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol
from urllib.parse import quote, unquote

from witskit.storage.errors import DatabaseNotFound, StorageConfigError

__all__ = [
    "SUPPORTED_SCHEMES",
    "Backend",
    "ParsedURL",
    "SecretLike",
    "parse_url",
    "reveal",
    "sanitize_url",
]

Backend = Literal["sqlite", "postgresql", "mysql"]

#: Scheme (as users write it) -> backend.
_SCHEMES: Final[dict[str, Backend]] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}

#: Backend -> the one async driver WitsKit uses (and the SQLAlchemy dialect+driver name).
_DRIVERS: Final[dict[Backend, tuple[str, str]]] = {
    "sqlite": ("aiosqlite", "sqlite+aiosqlite"),
    "postgresql": ("asyncpg", "postgresql+asyncpg"),
    "mysql": ("asyncmy", "mysql+asyncmy"),
}

#: What an error message lists as accepted.
SUPPORTED_SCHEMES: Final[tuple[str, ...]] = (
    "sqlite:///path.db",
    "sqlite:///:memory:",
    "postgresql://",
    "postgres://",
    "mysql://",
    "mariadb://",
)

#: Query parameters whose values are secrets (masked by the sanitizer).
_SECRET_PARAMS: Final[frozenset[str]] = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "token",
        "sslpassword",
        "api_key",
        "apikey",
        "key",
        # Object stores' (an archive's s3:// URI)
        "secret_key",
        "session_token",
        "access_token",
    }
)

#: SQLite options WitsKit reads from the URL query itself (not passed to the driver).
_SQLITE_SYNCHRONOUS: Final[frozenset[str]] = frozenset({"NORMAL", "FULL", "EXTRA"})

_SCHEME_RE: Final = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$", re.DOTALL)


class SecretLike(Protocol):
    """A pydantic ``SecretStr`` or anything else that hides its value behind this method."""

    def get_secret_value(self) -> str: ...


def reveal(url: str | SecretLike) -> str:
    """The URL text of a plain string or of a pydantic ``SecretStr``."""
    if isinstance(url, str):
        return url
    getter = getattr(url, "get_secret_value", None)
    if getter is None:
        raise StorageConfigError(f"a database URL must be a string, not {type(url).__name__}")
    value = getter()
    if not isinstance(value, str):
        raise StorageConfigError("a database URL must be a string")
    return value


def sanitize_url(url: str | SecretLike) -> str:
    """The URL with its password (and any secret query parameter) replaced by ``***``.

    ``postgresql://wits:s3cret@db/wits`` -> ``postgresql://wits:***@db/wits``. Works on text that
    does not parse as a URL too (an unencoded ``@`` or ``/`` in a password is masked whole: the
    userinfo is taken up to the *last* ``@`` before the query).
    """
    text = reveal(url)
    m = _SCHEME_RE.match(text.strip())
    if m is None:
        # Not a URL at all: it may still hold a password ("user:pw@host"), so show only its shape.
        return "<unparseable database URL>" if "@" in text or ":" in text else text
    scheme, rest = m.group("scheme"), m.group("rest")
    before_query, qmark, query = rest.partition("?")
    if not scheme.lower().startswith("sqlite"):
        userinfo, at, hostpart = before_query.rpartition("@")
        if at:
            user, colon, _password = userinfo.partition(":")
            before_query = f"{user}{':***' if colon else ''}@{hostpart}"
    if qmark:
        parts = []
        for item in query.split("&"):
            name, eq, _value = item.partition("=")
            secret = unquote(name).lower() in _SECRET_PARAMS
            parts.append(f"{name}=***" if eq and secret else item)
        query = "&".join(parts)
    return f"{scheme}://{before_query}{qmark}{query}"


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """A database URL resolved to a backend and an async SQLAlchemy URL.

    ``display`` is the sanitized URL for messages and logs; ``secrets`` are the strings that must
    never appear in one (the password, raw and percent-encoded), used to scrub driver messages.
    """

    backend: Backend
    driver: str
    sqlalchemy_url: str = field(repr=False)
    display: str
    secrets: tuple[str, ...] = field(repr=False, default=())
    #: SQLite only: the database file, or None for an in-memory database.
    sqlite_path: Path | None = None
    #: SQLite only: the ``synchronous`` pragma (NORMAL unless the URL says ``?synchronous=FULL``).
    sqlite_synchronous: str = "NORMAL"

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this URL replaced by ``***``."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def parse_url(url: str | SecretLike) -> ParsedURL:
    """Resolve a user's database URL; raise :class:`StorageConfigError` naming what is wrong.

    Accepts the plain schemes of :data:`SUPPORTED_SCHEMES`, and the same with WitsKit's own driver
    spelled out (``postgresql+asyncpg://``, ``sqlite+aiosqlite://``, ``mysql+asyncmy://``).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = reveal(url).strip()
    display = sanitize_url(text)
    m = _SCHEME_RE.match(text)
    supported = ", ".join(SUPPORTED_SCHEMES)
    if m is None:
        raise StorageConfigError(f"not a database URL: {display!r}; supported: {supported}", url=display)
    scheme, _, driver = m.group("scheme").lower().partition("+")
    backend = _SCHEMES.get(scheme)
    if backend is None:
        raise StorageConfigError(
            f"unsupported database URL scheme {scheme!r} in {display}; supported: {supported}", url=display
        )
    driver_name, dialect = _DRIVERS[backend]
    if driver and driver != driver_name:
        raise StorageConfigError(
            f"driver {driver!r} is not supported for {backend} ({display}); WitsKit uses {driver_name}: "
            f"write the URL as {scheme}://...",
            url=display,
        )
    try:
        # make_url quotes the whole string in its error message: never chain it (from None).
        sa_url = make_url(f"{dialect}://{m.group('rest')}")
    except (ArgumentError, ValueError):
        raise StorageConfigError(f"malformed database URL {display}", url=display) from None

    secrets: tuple[str, ...] = ()
    if sa_url.password:
        pw = str(sa_url.password)
        secrets = tuple(dict.fromkeys((pw, quote(pw, safe=""), quote(pw))))

    if backend == "sqlite":
        query = dict(sa_url.query)
        sync = str(query.pop("synchronous", "NORMAL")).upper()
        if query:
            raise StorageConfigError(
                f"unknown option(s) {', '.join(sorted(query))} in {display}; SQLite URLs take: synchronous",
                url=display,
            )
        if sync not in _SQLITE_SYNCHRONOUS:
            raise StorageConfigError(
                f"synchronous={sync!r} in {display}: use NORMAL, FULL or EXTRA", url=display
            )
        database = sa_url.database or ""
        path: Path | None = None
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            if not path.parent.is_dir():
                raise DatabaseNotFound(
                    f"cannot create the SQLite database {display}: directory {path.parent} does not exist",
                    url=display,
                )
            database = str(path)
        sa_url = sa_url.set(database=database or None, query=query)
        return ParsedURL(
            backend,
            driver_name,
            sa_url.render_as_string(hide_password=False),
            display,
            secrets,
            sqlite_path=path,
            sqlite_synchronous=sync,
        )

    if backend == "mysql" and "charset" not in sa_url.query:
        # Text is decoded as UTF-8 (cp1252 fallback): any character can arrive, utf8mb4 holds them all.
        sa_url = sa_url.update_query_dict({"charset": "utf8mb4"})
    return ParsedURL(backend, driver_name, sa_url.render_as_string(hide_password=False), display, secrets)
