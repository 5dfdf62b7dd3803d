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

from support.edr import PKI, Peer, close_writer, fast_retry, push, take
from support.waiting import until
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
        await until(lambda: listener.refused == 1)
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
            await until(lambda count=count: listener.refused == count)

        good = client_context(pki.ca_file, pki.client_cert, pki.client_key)
        _, writer = await push(listener.port, FRAME, ssl_context=good)
        sockname = writer.get_extra_info("sockname")
        events = await take(listener, 1)
        await close_writer(writer)
    assert listener.accepted == 1
    # Named by the certificate's identity (this one has no CN: its DNS name), not its address.
    assert events[0].source == f"{listener.name}/rig-7.example"
    assert sockname[0] == "127.0.0.1"
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
        await until(lambda: listener.refused == 1)
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


# Naming by certificate, and key_password in URLs --------------------------------------------------
def encrypt_key(key_file: Path, out: Path, password: bytes) -> Path:
    """``key_file`` re-written as an encrypted PKCS#8 PEM (what `openssl pkcs8 -topk8 -v2` makes)."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    out.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return out


async def test_mtls_peers_are_named_by_their_certificate_cn_whatever_their_address(
    pki: PKI, tmp_path: Path
) -> None:
    import trustme

    rigs_ca = trustme.CA()
    rigs_ca.cert_pem.write_to_path(tmp_path / "rigs-ca.pem")
    clients = {}
    for cn in ("rig-9", "rig-10"):
        issued = rigs_ca.issue_cert(f"{cn}.example", common_name=cn)
        issued.cert_chain_pems[0].write_to_path(tmp_path / f"{cn}.pem")
        issued.private_key_pem.write_to_path(tmp_path / f"{cn}.key")
        clients[cn] = client_context(pki.ca_file, tmp_path / f"{cn}.pem", tmp_path / f"{cn}.key")
    context = server_context(
        pki.server_cert, pki.server_key, client_ca_file=tmp_path / "rigs-ca.pem", require_client_cert=True
    )
    async with ListenerSource("127.0.0.1", 0, ssl_context=context) as listener:
        # Both rigs come from 127.0.0.1 (as two rigs behind one NAT address would): their
        # certificates still tell them apart, and a reconnect keeps the name.
        sources = []
        for cn in ("rig-9", "rig-10", "rig-9"):
            _, writer = await push(listener.port, FRAME, ssl_context=clients[cn])
            (event,) = await take(listener, 1)
            sources.append(event.source)
            await close_writer(writer)
    assert sources == [f"{listener.name}/rig-9", f"{listener.name}/rig-10", f"{listener.name}/rig-9"]
    assert listener.sources == [f"{listener.name}/rig-10", f"{listener.name}/rig-9"]


async def test_key_password_in_tls_urls_unlocks_an_encrypted_key_and_is_never_shown(
    pki: PKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from witskit.transport import open_source

    secret = "s3cret-Pa55&more"  # '&' is written %26 in a URL
    server_key = encrypt_key(pki.server_key, tmp_path / "server.enc.key", secret.encode())
    client_key = encrypt_key(pki.client_key, tmp_path / "rig.enc.key", secret.encode())
    in_url = secret.replace("&", "%26")
    server_url = (
        f"tls-listen://127.0.0.1:0?cert={pki.server_cert}&key={server_key}&key_password={in_url}"
        f"&client_ca={pki.client_ca_file}&require_client_cert=1"
    )
    async with open_source(server_url) as collector:
        rig_url = (
            f"tls://127.0.0.1:{collector.port}?ca={pki.ca_file}&cert={pki.client_cert}&key={client_key}"
            f"&key_password={in_url}&hostname=localhost&handshake_interval=0&reconnect=0"
        )
        rig = open_source(rig_url)
        assert secret not in repr(rig)
        assert in_url not in repr(rig)
        rig_task = asyncio.create_task(take(rig, 1))
        (event,) = await take(collector, 1)
        rig_task.cancel()
        await asyncio.gather(rig_task, return_exceptions=True)
        await rig.aclose()
    assert event.lines == (b"0111-9999",)  # the rig's handshake: its encrypted key worked
    # The pipeline file's form: the password as an option, not in the URL.
    listener = open_source(
        f"tls-listen://127.0.0.1:0?cert={pki.server_cert}&key={server_key}", key_password=secret
    )
    assert listener.ssl_context is not None  # type: ignore[attr-defined]
    # Wrong, missing and misplaced passwords: clear errors that never echo the value.
    listen = f"tls-listen://127.0.0.1:0?cert={pki.server_cert}&key={server_key}"
    failures = {
        f"{listen}&key_password=wrong-{in_url}": "wrong password",
        listen: "give its key_password",
        f"{listen}&key_password=": "empty",
        f"{listen}&key_password={in_url}&bogus=1": "unknown option 'bogus'",
        f"tls://h:1?key_password={in_url}&key_password={in_url}": "given twice",
        f"tcp://h:1?key_password={in_url}": "unknown option 'key_password'",
    }
    for url, message in failures.items():
        with pytest.raises(UsageError, match=message) as info:
            open_source(url)
        assert secret not in str(info.value), str(info.value)
        assert in_url not in str(info.value), str(info.value)
    with pytest.raises(UsageError, match="key_password applies to") as info:
        open_source("tcp://h:1", key_password=secret)
    assert secret not in str(info.value)
    assert not any(secret in r.getMessage() or in_url in r.getMessage() for r in caplog.records)


async def test_key_password_from_a_pipeline_files_options(pki: PKI, tmp_path: Path) -> None:
    from witskit.config import load_pipeline
    from witskit.transport import open_source

    key = encrypt_key(pki.server_key, tmp_path / "server.enc.key", b"from-the-pipeline")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        f"sources:\n  - url: tls-listen://127.0.0.1:0?cert={pki.server_cert}&key={key}\n"
        "    options:\n      key_password: from-the-pipeline\n"
    )
    (src,) = load_pipeline(pipeline).sources
    async with open_source(src.url, **src.options) as listener:  # as stream --config and run open it
        _, writer = await push(listener.port, FRAME, ssl_context=client_context(pki.ca_file))  # type: ignore[attr-defined]
        (event,) = await take(listener, 1)
        await close_writer(writer)
    assert event.lines == (b"01083650.4",)
