"""Pick a source by URL, as httpx picks a transport: ``open_source("tcp://rig-7:4000")``.

=========================  ==========================================================
``tcp://host:port``        client link to an EDR (:class:`~witskit.transport.tcp.TCPSource`)
``tls://host:port``        the same over TLS; query ``ca``, ``cert``, ``key``, ``key_password``,
                           ``hostname``
``tcp-listen://host:port`` accept rigs that push (:class:`~witskit.transport.listener.ListenerSource`)
``tls-listen://host:port`` the same over TLS; ``cert``, ``key``, ``key_password``, ``client_ca``,
                           ``require_client_cert``
``serial:///dev/ttyUSB0``  a serial port (``baud``, ``bytesize``, ``parity``, ``stopbits``)
``file://path``            a recorded file (``follow=1`` to tail it)
``sim://rig-1``            an in-process simulated rig (``rate``, ``seed``, ``records``, ``speed``),
                           served by :mod:`witskit.sim`
``mqtt://broker/FILTER``   raw WITS frames in MQTT messages (:mod:`witskit.transport.mqtt`;
                           ``mqtts://`` for TLS)
=========================  ==========================================================

A scheme served by a package above transport, as ``sim://`` is, is not imported here: its owner
names it in :mod:`witskit._schemes` (``witskit/__init__.py`` does for ``sim://``) and it is
imported when a URL of that scheme is first opened.

Client links also take ``handshake``, ``handshake_interval``, ``idle_timeout``, ``request``,
``request_interval``, ``reconnect`` and ``connect_timeout``; listeners take ``idle_timeout``,
``allow``, ``max_connections``, ``queue_size``, ``max_sources``, ``names`` and
``tls_handshake_timeout``; every scheme takes ``name`` (the source name). A ``key_password`` is
never shown: :func:`redact_url` masks it in errors, reprs and logs. See
``docs/transports.md`` for what each does. An unknown option is an error, never ignored: a typo
in ``require_client_cert`` must not silently turn mutual TLS off.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import SplitResult, urlsplit

from witskit import _schemes
from witskit.errors import UsageError
from witskit.transport.base import Source
from witskit.transport.link_options import CLIENT_OPTIONS, DEFAULT_REQUEST_INTERVAL, client_options
from witskit.transport.options import SECRET_OPTIONS, URLOptions, redact_url

__all__ = [
    "DEFAULT_REQUEST_INTERVAL",
    "SCHEMES",
    "SECRET_OPTIONS",
    "host_port",
    "known_schemes",
    "open_source",
    "redact_url",
]

_LISTEN_OPTIONS = ("name", "idle_timeout", "allow", "max_connections", "queue_size", "max_sources", "names")
_OPTIONS: dict[str, tuple[str, ...]] = {
    "tcp": CLIENT_OPTIONS,
    "tls": (*CLIENT_OPTIONS, "ca", "cert", "key", "key_password", "hostname"),
    "tcp-listen": _LISTEN_OPTIONS,
    "tls-listen": (
        *_LISTEN_OPTIONS,
        "cert",
        "key",
        "key_password",
        "client_ca",
        "require_client_cert",
        "tls_handshake_timeout",
    ),
}


@contextmanager
def _naming(url: str) -> Iterator[None]:
    """Prefix the URL to a UsageError raised while building its source (a bad file, a bad entry)."""
    try:
        yield
    except UsageError as exc:
        shown = redact_url(url)
        if str(exc).startswith(shown):
            raise
        raise UsageError(f"{shown}: {exc}") from exc


def _host_port(url: str, parts: SplitResult, *, listen: bool) -> tuple[str, int]:
    shown = redact_url(url)
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"{shown}: user names and passwords are not supported in {parts.scheme}:// URLs")
    if parts.path not in ("", "/"):
        raise UsageError(f"{shown}: unexpected path {parts.path!r} (expected {parts.scheme}://host:port)")
    if parts.fragment:
        raise UsageError(f"{shown}: unexpected fragment '#{parts.fragment}'")
    low = 0 if listen else 1
    try:
        port = parts.port
    except ValueError as exc:
        raw = parts.netloc.rpartition(":")[2]
        raise UsageError(f"{shown}: port {raw!r} is not a TCP port ({low}-65535)") from exc
    if port is None:
        raise UsageError(f"{shown}: missing port (expected {parts.scheme}://host:port)")
    if port < low:
        raise UsageError(f"{shown}: port {port} is not a TCP port ({low}-65535)")
    host = parts.hostname or ""
    if not host and not listen:
        raise UsageError(f"{shown}: missing host (expected {parts.scheme}://host:port)")
    return host, port


def host_port(url: str, *, listen: bool) -> tuple[str, int]:
    """(host, port) of a ``scheme://host:port`` URL, with the errors :func:`open_source` gives;
    with ``listen`` the host may be empty (every interface) and the port 0 (any free port)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise UsageError(f"{redact_url(url)}: not a valid URL ({exc})") from exc
    return _host_port(url, parts, listen=listen)


def _listen_options(query: URLOptions) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "idle_timeout" in query:
        options["idle_timeout"] = query.seconds("idle_timeout", zero_is_none=True)
    allow = query.text("allow")
    if allow is not None:
        options["allowlist"] = allow
    for key in ("max_connections", "queue_size", "max_sources"):
        if key in query:
            options[key] = query.count(key)
    names = query.text("names")
    if names is not None:
        options["peer_names"] = names
    name = query.text("name")
    if name is not None:
        options["name"] = name
    if "tls_handshake_timeout" in query:
        options["tls_handshake_timeout"] = query.seconds("tls_handshake_timeout", zero_is_none=False)
    return options


def _key_password(query: URLOptions, options: dict[str, Any]) -> str | None:
    """The TLS key's password: the ``key_password`` keyword (a pipeline file's options), else the URL's."""
    password = options.pop("key_password", None)
    if password is not None:
        if not isinstance(password, str) or not password:
            raise UsageError("option key_password must be a non-empty string")
        return password
    return query.secret("key_password")


def _no_stray_password(scheme: str, options: dict[str, Any]) -> None:
    if "key_password" in options:  # not taken by a TLS context made here
        raise UsageError(
            f"key_password applies to the key of tls:// and tls-listen:// URLs, not to {scheme}:// "
            "or an ssl_context given ready-made"
        )


def _open_tcp(url: str, parts: SplitResult, options: dict[str, Any]) -> Source:
    from witskit.transport.tcp import TCPSource

    scheme = parts.scheme
    query = URLOptions(url, _OPTIONS[scheme])
    host, port = _host_port(url, parts, listen=False)
    kwargs = client_options(query)
    with _naming(url):
        if scheme == "tls" and "ssl_context" not in options:
            from witskit.transport.tls import client_context

            password = _key_password(query, options)
            kwargs["ssl_context"] = client_context(
                query.text("ca"), query.text("cert"), query.text("key"), key_password=password
            )
            hostname = query.text("hostname")
            if hostname is not None:
                kwargs["server_hostname"] = hostname
        _no_stray_password(scheme, options)
        kwargs.update(options)
        return TCPSource(host, port, **kwargs)


def _open_listener(url: str, parts: SplitResult, options: dict[str, Any]) -> Source:
    from witskit.transport.listener import ListenerSource

    scheme = parts.scheme
    query = URLOptions(url, _OPTIONS[scheme])
    host, port = _host_port(url, parts, listen=True)
    kwargs = _listen_options(query)
    with _naming(url):
        if scheme == "tls-listen" and "ssl_context" not in options:
            from witskit.transport.tls import server_context

            cert = query.text("cert")
            if cert is None:
                raise UsageError("tls-listen:// needs cert= (the server certificate, PEM)")
            kwargs["ssl_context"] = server_context(
                cert,
                query.text("key"),
                client_ca_file=query.text("client_ca"),
                require_client_cert=bool(query.flag("require_client_cert")),
                key_password=_key_password(query, options),
            )
        _no_stray_password(scheme, options)
        kwargs.update(options)
        return ListenerSource(host, port, **kwargs)


#: Opens a URL of one scheme: ``(url, its parts, keyword options) -> Source``.
Opener = Callable[[str, SplitResult, dict[str, Any]], Source]


def _delegate(module: str, cls: str, extra: str | None) -> Opener:
    """Open with ``module.cls.from_url``, imported only when used (pyserial is an extra)."""

    def open_with(url: str, parts: SplitResult, options: dict[str, Any]) -> Source:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module or extra is None:
                raise UsageError(f"{redact_url(url)}: this installation has no {module}") from exc
            raise UsageError(
                f"{redact_url(url)}: needs the '{extra}' extra (pip install 'witskit[{extra}]'); "
                f"missing module {exc.name!r}"
            ) from exc
        source: Source = getattr(mod, cls).from_url(url, **options)
        return source

    return open_with


#: Scheme -> how transport opens it: its own transports only. A source served by a layer above
#: (``sim://``, :mod:`witskit.sim`) is named in :mod:`witskit._schemes` by that layer's owner.
_OPENERS: dict[str, Opener] = {
    "tcp": _open_tcp,
    "tls": _open_tcp,
    "tcp-listen": _open_listener,
    "tls-listen": _open_listener,
    "serial": _delegate("witskit.transport.serial", "SerialSource", "serial"),
    "file": _delegate("witskit.transport.file", "FileSource", None),
    "mqtt": _delegate("witskit.transport.mqtt", "MQTTSource", "mqtt"),
    "mqtts": _delegate("witskit.transport.mqtt", "MQTTSource", "mqtt"),
}


def known_schemes() -> tuple[str, ...]:
    """Every scheme :func:`open_source` opens, sorted: transport's own and the registered ones."""
    return tuple(sorted({*_OPENERS, *_schemes.source_schemes()}))


#: The schemes :func:`open_source` knew when this module was imported (:func:`known_schemes`
#: is always up to date).
SCHEMES = known_schemes()


def open_source(url: str, **options: Any) -> Source:
    """The source for ``url``, picked by scheme; ``options`` go to its constructor.

    Keyword options override the same setting from the query string and take what a URL cannot
    carry (``retry=RetryPolicy(...)``, ``on_status=``, ``error_handler=``, ``parser_options=``,
    ``ssl_context=``). A bad URL (unknown scheme, missing host or port, a port out of range, an
    unknown or malformed option) raises :class:`~witskit.errors.UsageError` naming the URL and the
    problem. Nothing connects until the source is iterated (or, for a listener, entered).

    >>> open_source("tcp://rig-7.example:4000?handshake_interval=15")
    <TCPSource tcp://rig-7.example:4000 disconnected>
    """
    if not isinstance(url, str):
        raise UsageError(f"a source URL must be a string, not {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise UsageError(f"{redact_url(url)}: not a valid URL ({exc})") from exc
    scheme = parts.scheme
    opener = _OPENERS.get(scheme)
    if opener is not None:
        return opener(url.strip(), parts, options)
    served = _schemes.source_scheme(scheme) if scheme else None
    if served is not None:
        return _delegate(served.module, served.cls, None)(url.strip(), parts, options)
    known = ", ".join(known_schemes())
    if not scheme or "://" not in url:  # "rig-7:4000" parses as scheme "rig-7"
        raise UsageError(f"{redact_url(url)!r} is not a source URL: expected scheme://... ({known})")
    raise UsageError(f"{redact_url(url)}: unknown scheme {scheme!r} (known: {known})")
