"""TLS contexts for rig links: a verifying client context and a server context with optional mTLS.

Both contexts refuse anything older than TLS 1.2 and keep Python's default cipher list. That list is
maintained with each Python release (forward-secret AEAD and SHA-2 suites only, ``@SECLEVEL=2``), so
it is safer over time than a cipher string pinned in this code, which would silently go stale.

Certificate and key files are loaded at once, so a missing or malformed file is reported when the
context is made, naming the file, instead of as an obscure handshake failure later.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike

from witskit.errors import UsageError

__all__ = ["MINIMUM_TLS_VERSION", "client_context", "server_context"]

#: TLS 1.0 and 1.1 are deprecated (RFC 8996); every maintained TLS stack an EDR gateway or stunnel
#: ships speaks 1.2.
MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2

StrPath = str | PathLike[str]


@contextmanager
def _loading(what: str, *files: StrPath | None) -> Iterator[None]:
    """Turn a failure to load certificate material into a UsageError that names the file(s)."""
    names = ", ".join(repr(str(f)) for f in files if f is not None)
    try:
        yield
    except UsageError:
        raise
    except FileNotFoundError as exc:
        raise UsageError(f"{what} {names}: file not found") from exc
    except PermissionError as exc:
        raise UsageError(f"{what} {names}: permission denied") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{what} {names}: is a directory, not a PEM file") from exc
    except ssl.SSLError as exc:
        # OpenSSL's reasons ("PEM lib", "KEY_VALUES_MISMATCH", "NO_CERTIFICATE_OR_CRL_FOUND") are
        # terse; say what was expected as well.
        raise UsageError(
            f"{what} {names}: not a usable PEM file ({exc.reason or exc}); expected PEM text "
            "('-----BEGIN CERTIFICATE-----' / '-----BEGIN ... PRIVATE KEY-----'), key matching the cert"
        ) from exc
    except OSError as exc:
        raise UsageError(f"{what} {names}: {exc.strerror or exc}") from exc


def _password(key_file: StrPath | None, key_password: str | None) -> str | Callable[[], str]:
    if key_password is not None:
        return key_password

    def refuse() -> str:
        # Without a callback OpenSSL would prompt on the terminal, which hangs a service.
        raise UsageError(f"private key {str(key_file)!r} is encrypted: give its key_password")

    return refuse


def _load_chain(
    context: ssl.SSLContext, cert_file: StrPath, key_file: StrPath | None, key_password: str | None
) -> None:
    if key_password is not None and _encrypted(key_file or cert_file):
        try:
            context.load_cert_chain(cert_file, key_file, password=key_password)
        except ssl.SSLError as exc:
            # OpenSSL says "PEM lib" whatever went wrong; a key that is encrypted and does not
            # load with the password given is, first of all, a wrong password. Never echo it.
            raise UsageError(
                f"private key {str(key_file or cert_file)!r} cannot be decrypted with the key_password "
                f"given (wrong password?), or does not match certificate {str(cert_file)!r}"
            ) from exc
        except OSError:
            pass  # a missing or unreadable file: reported below, naming it
        else:
            return
    with _loading("certificate/key", cert_file, key_file):
        context.load_cert_chain(cert_file, key_file, password=_password(key_file or cert_file, key_password))


def _encrypted(key_file: StrPath) -> bool:
    """Does this PEM hold an encrypted private key (PKCS#8 or the legacy OpenSSL form)?"""
    try:
        with open(key_file, "rb") as fh:
            head = fh.read(1 << 20)
    except OSError:
        return False
    return b"ENCRYPTED PRIVATE KEY" in head or b"Proc-Type: 4,ENCRYPTED" in head


def client_context(
    ca_file: StrPath | None = None,
    cert_file: StrPath | None = None,
    key_file: StrPath | None = None,
    *,
    key_password: str | None = None,
) -> ssl.SSLContext:
    """A client context that verifies the server's certificate and host name.

    The server certificate must chain to ``ca_file`` (a PEM bundle) or, when it is ``None``, to the
    system's trust store. ``cert_file`` (with ``key_file``, unless the key is in the same PEM) is
    the client certificate presented to servers that require mutual TLS. Bad files raise
    :class:`~witskit.errors.UsageError` naming the file.
    """
    if key_file is not None and cert_file is None:
        raise UsageError(f"key_file {str(key_file)!r} was given without cert_file")
    # With a cafile, the default context trusts that CA only (no system store), so a rig's private
    # PKI is not widened to every public CA.
    with _loading("CA file", ca_file):
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = MINIMUM_TLS_VERSION
    # PROTOCOL_TLS_CLIENT and the default context both set these; assert them so a future
    # change of defaults cannot turn verification off unnoticed.
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if cert_file is not None:
        _load_chain(context, cert_file, key_file, key_password)
    return context


def server_context(
    cert_file: StrPath,
    key_file: StrPath | None = None,
    *,
    client_ca_file: StrPath | None = None,
    require_client_cert: bool = False,
    key_password: str | None = None,
) -> ssl.SSLContext:
    """A server context (for ``tls-listen://``) presenting ``cert_file``/``key_file``.

    With ``client_ca_file``, clients may present a certificate, which must chain to that CA and
    nothing else (never the system store: any publicly issued certificate would pass). With
    ``require_client_cert=True`` (mutual TLS) a client without such a certificate is refused during
    the handshake. Bad files raise :class:`~witskit.errors.UsageError` naming the file.
    """
    if require_client_cert and client_ca_file is None:
        raise UsageError("require_client_cert needs client_ca_file: the CA that signs the rigs' certificates")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_TLS_VERSION
    _load_chain(context, cert_file, key_file, key_password)
    if client_ca_file is not None:
        with _loading("client CA file", client_ca_file):
            context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context
