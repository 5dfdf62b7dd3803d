"""TLS: contexts, verification failures, old protocol versions, mutual TLS, the secure reader.

All handshakes are real, against certificates from a trustme CA written to PEM files.
"""

from __future__ import annotations

import asyncio
import ssl
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import PKI, Peer, close_writer, fast_retry, push, take, wait_until
from witskit.errors import TLSError, TransportError, UsageError
from witskit.protocol import WITSFrame, encode_frame
from witskit.transport import LinkState, LinkStatus, ListenerSource, SecureTCPReader, TCPSource
from witskit.transport.resilience import RetryPolicy
from witskit.transport.tls import client_context, server_context

FRAME = encode_frame([("0108", 3650.4)])


def once() -> RetryPolicy:
    return RetryPolicy(max_attempts=1, retry_on=(TransportError,))


async def sends_a_frame(peer: Peer) -> None:
    await peer.send(FRAME)
    await peer.hold()


# Contexts -----------------------------------------------------------------------------------------
def test_contexts_require_tls_1_2_and_verify_the_server(pki: PKI) -> None:
    client = client_context(pki.ca_file)
    assert client.minimum_version is ssl.TLSVersion.TLSv1_2
    assert client.verify_mode is ssl.CERT_REQUIRED
    assert client.check_hostname
    server = server_context(pki.server_cert, pki.server_key)
    assert server.minimum_version is ssl.TLSVersion.TLSv1_2
    assert server.verify_mode is ssl.CERT_NONE  # no client certificates asked for by default
    mtls = server_context(
        pki.server_cert, pki.server_key, client_ca_file=pki.client_ca_file, require_client_cert=True
    )
    assert mtls.verify_mode is ssl.CERT_REQUIRED
    optional = server_context(pki.server_cert, pki.server_key, client_ca_file=pki.client_ca_file)
    assert optional.verify_mode is ssl.CERT_OPTIONAL


def test_a_client_ca_file_is_the_only_trust_anchor(pki: PKI) -> None:
    # A private rig PKI must not be widened to every public CA in the system store.
    assert len(client_context(pki.ca_file).get_ca_certs()) == 1
    mtls = server_context(pki.server_cert, pki.server_key, client_ca_file=pki.client_ca_file)
    assert len(mtls.get_ca_certs()) == 1


def test_no_cipher_without_forward_secrecy_or_with_a_broken_primitive(pki: PKI) -> None:
    for context in (client_context(pki.ca_file), server_context(pki.server_cert, pki.server_key)):
        for cipher in context.get_ciphers():
            name = cipher["name"]
            assert cipher["protocol"] in ("TLSv1.2", "TLSv1.3"), name
            assert name.startswith(("TLS_", "ECDHE-", "DHE-")), name
            assert not any(bad in name for bad in ("RC4", "DES", "MD5", "NULL", "EXPORT")), name


@pytest.mark.parametrize("which", ["ca", "cert", "key"])
def test_a_missing_file_is_a_usage_error_naming_it(pki: PKI, tmp_path: Path, which: str) -> None:
    missing = tmp_path / f"no-such-{which}.pem"
    kwargs = {"ca_file": pki.ca_file, "cert_file": pki.client_cert, "key_file": pki.client_key}
    kwargs[f"{which}_file"] = missing
    with pytest.raises(UsageError, match=rf"no-such-{which}\.pem.*not found"):
        client_context(**kwargs)  # type: ignore[arg-type]


def test_malformed_pem_and_mismatched_keys_are_usage_errors(pki: PKI, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not PEM\n")
    with pytest.raises(UsageError, match=r"garbage\.pem.*not a usable PEM"):
        client_context(garbage)
    with pytest.raises(UsageError, match=r"garbage\.pem"):
        server_context(garbage, pki.server_key)
    with pytest.raises(UsageError, match=r"client_key\.pem"):
        server_context(pki.server_cert, pki.client_key)  # a key that does not match the cert
    with pytest.raises(UsageError, match="is a directory"):
        client_context(tmp_path)


def test_an_encrypted_key_needs_its_password_and_never_prompts(pki: PKI, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    with pytest.raises(UsageError, match=r"encrypted\.key.*encrypted: give its key_password"):
        server_context(pki.server_cert, encrypted)
    context = server_context(pki.server_cert, encrypted, key_password="s3cret")
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_inconsistent_arguments_are_usage_errors(pki: PKI) -> None:
    with pytest.raises(UsageError, match="without cert_file"):
        client_context(pki.ca_file, key_file=pki.client_key)
    with pytest.raises(UsageError, match="needs client_ca_file"):
        server_context(pki.server_cert, pki.server_key, require_client_cert=True)


# Client verification ------------------------------------------------------------------------------
async def test_a_verified_tls_link_delivers_frames(edr, pki: PKI) -> None:
    server = await edr(sends_a_frame, ssl_context=server_context(pki.server_cert, pki.server_key))
    src = TCPSource("localhost", server.port, ssl_context=client_context(pki.ca_file), retry=once())
    events = await take(src, 1)
    await src.aclose()
    assert isinstance(events[0], WITSFrame)
    assert events[0].lines == (b"01083650.4",)
    assert src.name == f"tls://localhost:{server.port}"


async def test_a_wrong_host_name_is_refused(edr, pki: PKI) -> None:
    server = await edr(sends_a_frame, ssl_context=server_context(pki.server_cert, pki.server_key))
    src = TCPSource(
        "127.0.0.1",
        server.port,
        ssl_context=client_context(pki.ca_file),
        server_hostname="edr.rig-9.example",
        retry=once(),
    )
    with pytest.raises(TLSError, match=r"certificate rejected.*(mismatch|match)"):
        await take(src, 1)


@pytest.mark.parametrize("trust", ["rogue CA", "system store"])
async def test_an_untrusted_ca_is_refused(edr, pki: PKI, trust: str) -> None:
    server = await edr(sends_a_frame, ssl_context=server_context(pki.server_cert, pki.server_key))
    context = client_context(pki.rogue_ca_file if trust == "rogue CA" else None)
    src = TCPSource("localhost", server.port, ssl_context=context, retry=once())
    with pytest.raises(TLSError, match="certificate rejected"):
        await take(src, 1)


# Our TLS listener ---------------------------------------------------------------------------------
def refusals(statuses: list[LinkStatus]) -> list[str]:
    return [s.error or "" for s in statuses if (s.error or "").startswith("refused")]


async def test_a_client_limited_to_tls_1_1_is_refused_by_our_listener(pki: PKI) -> None:
    statuses: list[LinkStatus] = []
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(pki.ca_file)
    with warnings.catch_warnings():  # Python warns that TLS 1.0/1.1 are deprecated: the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client's own OpenSSL offer TLS 1.1
    listener = ListenerSource(
        "127.0.0.1", 0, ssl_context=server_context(pki.server_cert, pki.server_key), on_status=statuses.append
    )
    async with listener:
        # asyncio aborts on a failed server handshake without flushing the alert, so the client
        # sees a reset or an SSL error; the server's own reason is checked below.
        with pytest.raises(OSError):
            await push(listener.port, FRAME, ssl_context=old)
        await wait_until(lambda: listener.refused == 1)
        _, writer = await push(listener.port, FRAME, ssl_context=client_context(pki.ca_file))
        events = await take(listener, 1)
        await close_writer(writer)
    assert listener.accepted == 1
    assert events[0].lines == (b"01083650.4",)
    (reason,) = refusals(statuses)
    assert "UNSUPPORTED_PROTOCOL" in reason or "version" in reason.lower()


async def test_mtls_listener_refuses_clients_without_a_trusted_certificate(pki: PKI) -> None:
    statuses: list[LinkStatus] = []
    context = server_context(
        pki.server_cert, pki.server_key, client_ca_file=pki.client_ca_file, require_client_cert=True
    )
    listener = ListenerSource("127.0.0.1", 0, ssl_context=context, on_status=statuses.append)
    async with listener:
        refused_clients = {
            "no certificate": client_context(pki.ca_file),
            "certificate from another CA": client_context(pki.ca_file, pki.rogue_cert, pki.rogue_key),
        }
        for count, client in enumerate(refused_clients.values(), start=1):
            # With TLS 1.3 the client finishes its side first; the server then refuses and closes.
            try:
                reader, writer = await push(listener.port, FRAME, ssl_context=client)
            except OSError:
                pass
            else:
                with pytest.raises((OSError, asyncio.IncompleteReadError)):
                    async with asyncio.timeout(5):
                        await reader.readexactly(1)
                await close_writer(writer)
            await wait_until(lambda count=count: listener.refused == count)

        good = client_context(pki.ca_file, pki.client_cert, pki.client_key)
        _, writer = await push(listener.port, FRAME, ssl_context=good)
        sockname = writer.get_extra_info("sockname")
        events = await take(listener, 1)
        await close_writer(writer)
    assert listener.accepted == 1
    assert events[0].source == f"{listener.name}/127.0.0.1:{sockname[1]}"
    assert events[0].lines == (b"01083650.4",)
    reasons = refusals(statuses)
    assert len(reasons) == 2
    assert "CERTIFICATE" in reasons[0].upper()
    assert "CERTIFICATE" in reasons[1].upper() or "UNKNOWN_CA" in reasons[1].upper()
    assert statuses[-1] == LinkStatus(listener.name, LinkState.CLOSED, 0, None, statuses[-1].at)


async def test_a_peer_that_never_starts_the_handshake_is_dropped(pki: PKI) -> None:
    statuses: list[LinkStatus] = []
    listener = ListenerSource(
        "127.0.0.1",
        0,
        ssl_context=server_context(pki.server_cert, pki.server_key),
        tls_handshake_timeout=0.2,
        on_status=statuses.append,
    )
    async with listener:
        reader, writer = await push(listener.port)  # plain TCP, says nothing
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        await close_writer(writer)
        await wait_until(lambda: listener.refused == 1)
    assert listener.accepted == 0


# The plan's SecureTCPReader -----------------------------------------------------------------------
async def test_secure_tcp_reader_streams_frame_text_over_verified_tls(edr, pki: PKI) -> None:
    server = await edr(sends_a_frame, ssl_context=server_context(pki.server_cert, pki.server_key))
    reader = SecureTCPReader("localhost", server.port, ca_file=pki.ca_file, handshake_interval=None)
    texts = await take(reader.stream(), 1)
    await reader.aclose()
    assert texts == [FRAME.decode().rstrip()]
    assert reader.ssl_context is not None
    assert reader.ssl_context.minimum_version is ssl.TLSVersion.TLSv1_2


async def test_secure_tcp_reader_presents_a_client_certificate_for_mtls(edr, pki: PKI) -> None:
    context = server_context(
        pki.server_cert, pki.server_key, client_ca_file=pki.client_ca_file, require_client_cert=True
    )
    server = await edr(sends_a_frame, ssl_context=context)
    reader = SecureTCPReader(
        "localhost",
        server.port,
        cert_file=pki.client_cert,
        key_file=pki.client_key,
        ca_file=pki.ca_file,
        retry_policy=fast_retry(max_attempts=2),
    )
    texts = await take(reader.stream(), 1)
    await reader.aclose()
    assert texts == [FRAME.decode().rstrip()]


async def test_secure_tcp_reader_refuses_an_untrusted_server(edr, pki: PKI) -> None:
    server = await edr(sends_a_frame, ssl_context=server_context(pki.server_cert, pki.server_key))
    reader = SecureTCPReader("localhost", server.port, ca_file=pki.rogue_ca_file)
    with pytest.raises(ConnectionError) as info:
        await take(reader.stream(), 1)
    assert isinstance(info.value, TLSError)
    assert reader.connection_attempts == 1


async def test_secure_tcp_reader_without_tls_is_plain_tcp(edr) -> None:
    server = await edr(sends_a_frame)
    reader = SecureTCPReader("127.0.0.1", server.port, use_tls=False)
    assert reader.ssl_context is None
    assert await take(reader.stream(), 1) == [FRAME.decode().rstrip()]
    await reader.aclose()


def test_secure_tcp_reader_refuses_certificates_without_tls(pki: PKI) -> None:
    with pytest.raises(UsageError, match="need use_tls=True"):
        SecureTCPReader("127.0.0.1", 4000, use_tls=False, ca_file=pki.ca_file)
