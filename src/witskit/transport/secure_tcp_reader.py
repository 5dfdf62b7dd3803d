"""``SecureTCPReader``: the implementation plan's TLS reader (Task 2.3), over AsyncTCPReader.

The plan pinned a cipher string; this uses :func:`witskit.transport.tls.client_context` instead:
TLS 1.2 or newer, certificate and host name verification always on, and Python's maintained default
ciphers (forward-secret AEAD suites), which improve with each Python release instead of going stale.
"""

from __future__ import annotations

import ssl
from os import PathLike
from typing import Any

from witskit.errors import UsageError
from witskit.transport.async_tcp_reader import AsyncTCPReader
from witskit.transport.resilience import RetryPolicy
from witskit.transport.tls import client_context

__all__ = ["SecureTCPReader"]


class SecureTCPReader(AsyncTCPReader):
    """An :class:`AsyncTCPReader` over TLS: ``async for text in reader.stream()``.

    The server's certificate must chain to ``ca_file`` (or the system store when ``None``) and name
    ``host`` (or ``server_hostname``); ``cert_file``/``key_file`` are the client certificate for
    servers that require mutual TLS. ``use_tls=False`` gives plain TCP, and then no certificate
    option may be given (silently ignoring them would hide a configuration error).
    """

    def __init__(
        self,
        host: str,
        port: int,
        use_tls: bool = True,
        cert_file: str | PathLike[str] | None = None,
        key_file: str | PathLike[str] | None = None,
        ca_file: str | PathLike[str] | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        **options: Any,
    ) -> None:
        self.use_tls = use_tls
        self.cert_file = cert_file
        self.key_file = key_file
        self.ca_file = ca_file
        if use_tls:
            if options.get("ssl_context") is None:
                options["ssl_context"] = self._create_ssl_context()
        elif cert_file is not None or key_file is not None or ca_file is not None:
            raise UsageError("cert_file, key_file and ca_file need use_tls=True")
        super().__init__(host, port, retry_policy, **options)

    def _create_ssl_context(self) -> ssl.SSLContext:
        """The client context (the plan's hook name, kept for subclasses that customise it)."""
        return client_context(self.ca_file, self.cert_file, self.key_file)
