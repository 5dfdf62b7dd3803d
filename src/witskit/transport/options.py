"""One grammar for the options in a URL's query string, for every source and sink scheme.

Every scheme reads its query through :class:`URLOptions`, so ``tcp://``, ``serial://``,
``file://``, ``sim://``, the rig server's push URLs and the file sinks all follow the same rules:

* each option is given at most once (``seed=1&seed=2`` is an error, not "the last one wins");
* an option the scheme does not know is an error, never ignored (a typo in
  ``require_client_cert`` must not silently turn mutual TLS off);
* a value is read as the type the option needs (boolean, integer, number, seconds, one of a
  list), and a value that is not one is an error: ``metric=banana`` is not "off";
* every error is a :class:`~witskit.errors.UsageError` in one style, naming the URL (with any
  password masked: :func:`redact_url`), the option, its value and what was expected::

      sim://rig-1?metric=banana: bad option value: metric='banana' is not a boolean (use 1 or 0)

A scheme lists the options it knows, then takes each with the reader for its type; options not
given read as ``None``, so the scheme's own default applies:

>>> query = URLOptions("sim://rig-1?rate=2&metric=1", ("rate", "metric", "seed"))
>>> query.number("rate"), query.flag("metric"), query.integer("seed")
(2.0, True, None)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import TypeVar
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from witskit.errors import UsageError

__all__ = ["FALSE_WORDS", "SECRET_OPTIONS", "TRUE_WORDS", "URLOptions", "redact_url"]

_T = TypeVar("_T")

#: The spellings of a boolean option (case-insensitive); anything else is an error.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

#: Query options whose value is a secret: never shown in an error, a repr or a log line.
SECRET_OPTIONS = frozenset({"key_password", "password", "token"})


def _redact_query(url: str) -> str:
    """Mask the value of every secret query option, however its name is spelled or encoded."""
    head, question, rest = url.partition("?")
    if not question:
        return url
    query, hashmark, fragment = rest.partition("#")
    pieces = []
    for piece in query.split("&"):  # the separator parse_qsl uses: a ';' stays in the value
        key, equals, _ = piece.partition("=")
        secret = equals and unquote_plus(key).strip().lower() in SECRET_OPTIONS
        pieces.append(f"{key}=***" if secret else piece)
    return f"{head}?{'&'.join(pieces)}{hashmark}{fragment}"


def redact_url(url: str) -> str:
    """``url`` as it may be shown or logged: a password in it (user info, ``key_password=``) is ``***``.

    >>> redact_url("tls://edr:4443?cert=rig.pem&key=rig.key&key_password=s3cret")
    'tls://edr:4443?cert=rig.pem&key=rig.key&key_password=***'
    """
    shown = _redact_query(url)
    try:
        parts = urlsplit(shown)
    except ValueError:
        return shown
    if parts.password is None:
        return shown
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()


class URLOptions:
    """The query options of one URL: each given at most once, each known, each read as its type.

    ``allowed`` names the options the scheme takes; a duplicate, an unknown option or a malformed
    query raises :class:`~witskit.errors.UsageError` here. The readers (:meth:`text`,
    :meth:`flag`, :meth:`integer`, ...) return ``None`` for an option not given and raise the
    same error style for a value of the wrong kind. ``url`` is shown redacted in every message.
    """

    __slots__ = ("scheme", "url", "values")

    def __init__(self, url: str, allowed: Iterable[str]) -> None:
        #: The URL as errors show it: passwords masked.
        self.url = redact_url(url)
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise UsageError(f"{self.url}: not a valid URL ({exc})") from exc
        self.scheme = parts.scheme
        try:
            pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError as exc:
            raise UsageError(f"{self.url}: malformed query string ({exc})") from exc
        #: Every option given, by name, as text.
        self.values: dict[str, str] = {}
        for key, value in pairs:
            if key in self.values:
                raise UsageError(f"{self.url}: option {key!r} is given twice")
            self.values[key] = value
        known = sorted(set(allowed))
        unknown = sorted(set(self.values) - set(known))
        if unknown:
            raise UsageError(
                f"{self.url}: unknown option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))} for {self.scheme}:// (known: {', '.join(known) or 'none'})"
            )

    def __contains__(self, key: object) -> bool:
        return key in self.values

    def __repr__(self) -> str:
        return f"<URLOptions {self.url}>"

    def raw(self, key: str) -> str | None:
        """The value as given (possibly empty), or ``None``: for options with a grammar of their own."""
        return self.values.get(key)

    def bad(self, key: str, expected: str) -> UsageError:
        """The error for option ``key``'s value: ``expected`` says what it should be ("is not ...")."""
        value = "***" if key in SECRET_OPTIONS else repr(self.values.get(key, ""))
        return UsageError(f"{self.url}: bad option value: {key}={value} {expected}")

    def text(self, key: str) -> str | None:
        """A non-empty string."""
        value = self.values.get(key)
        if value is not None and not value:
            raise self.bad(key, "is empty")
        return value

    def flag(self, key: str) -> bool | None:
        """A boolean: ``1``, ``true``, ``yes``, ``on`` or ``0``, ``false``, ``no``, ``off``."""
        value = self.values.get(key)
        if value is None:
            return None
        if value.lower() in TRUE_WORDS:
            return True
        if value.lower() in FALSE_WORDS:
            return False
        raise self.bad(key, "is not a boolean (use 1 or 0)")

    def integer(self, key: str, *, minimum: int | None = None) -> int | None:
        """A whole number in decimal digits (with a leading ``-`` when ``minimum`` allows it)."""
        value = self.values.get(key)
        if value is None:
            return None
        number = _int(value[1:] if value.startswith("-") else value)
        if number is not None and value.startswith("-"):
            number = -number
        if number is None or (minimum is not None and number < minimum):
            kind = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}
            raise self.bad(key, f"is not {kind.get(minimum, f'an integer >= {minimum}')}")
        return number

    def count(self, key: str) -> int | None:
        """A positive integer (a size, a limit, a baud rate)."""
        return self.integer(key, minimum=1)

    def number(self, key: str) -> float | None:
        """A positive, finite number (a rate, a speed-up)."""
        value = self.values.get(key)
        if value is None:
            return None
        number = _float(value)
        if not (number > 0 and math.isfinite(number)):
            raise self.bad(key, "is not a positive number")
        return number

    def seconds(self, key: str, *, zero_is_none: bool = False) -> float | None:
        """A positive duration in seconds; with ``zero_is_none``, ``0`` or ``none`` read as ``None``.

        An option given as ``0`` (when allowed) and an option not given both return ``None``: test
        ``key in options`` first when "never" differs from "the default".
        """
        value = self.values.get(key)
        if value is None:
            return None
        if zero_is_none and value.lower() in ("0", "none"):
            return None
        number = _float(value)
        if not (number > 0 and math.isfinite(number)):
            raise self.bad(
                key, "is not a positive number of seconds" + (" (or 0 for none)" if zero_is_none else "")
            )
        return number

    def choice(self, key: str, choices: Mapping[str, _T]) -> _T | None:
        """One of ``choices`` (by its spelling in the URL), as the value it maps to."""
        value = self.values.get(key)
        if value is None:
            return None
        if value not in choices:
            shown = dict.fromkeys(c.upper() for c in choices)  # "N" once, though "n" is accepted too
            raise self.bad(key, f"is not one of {', '.join(shown)}")
        return choices[value]

    def integers(self, key: str, choices: Collection[int]) -> tuple[int, ...] | None:
        """A comma-separated list of integers, each one of ``choices`` (``records=1,2,8``)."""
        value = self.values.get(key)
        if value is None:
            return None
        items = [_int(i) for i in value.split(",")]
        if not all(i is not None and i in choices for i in items):
            raise self.bad(key, f"is not a comma-separated list of {', '.join(map(str, sorted(choices)))}")
        return tuple(i for i in items if i is not None)

    def secret(self, key: str) -> str | None:
        """A non-empty secret (a key's password): never echoed, not even when empty."""
        value = self.values.get(key)
        if value is not None and not value:
            raise UsageError(f"{self.url}: bad option value: {key} is empty")
        return value


def _int(digits: str) -> int | None:
    """``digits`` (ASCII decimal digits only) as an int; None for anything else, or too long to convert."""
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        return int(digits)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits): not a setting
        return None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
