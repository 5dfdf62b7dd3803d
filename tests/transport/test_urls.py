"""open_source(url): schemes, query options, errors; the package's exports; docs/transports.md runs."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import sys
import types
from pathlib import Path

import pytest

import witskit.transport
from support.commands import run_shell
from support.edr import PKI, Peer, close_writer, push, take
from witskit import _schemes
from witskit.errors import UsageError
from witskit.protocol import WITSFrame, encode_frame, handshake_packet, request_packet
from witskit.protocol.limits import DEFAULT_HANDSHAKE
from witskit.transport import ListenerSource, TCPSource, open_source
from witskit.transport import urls as urls_module
from witskit.transport.tls import client_context, server_context
from witskit.transport.urls import DEFAULT_REQUEST_INTERVAL, SCHEMES, known_schemes

FRAME = encode_frame([("0108", 3650.4)])
DOC = Path(__file__).resolve().parents[2] / "docs" / "transports.md"


# Client URLs ------------------------------------------------------------------------------------
def test_tcp_url_defaults() -> None:
    src = open_source("tcp://rig-7.example:4000")
    assert isinstance(src, TCPSource)
    assert (src.host, src.port, src.name) == ("rig-7.example", 4000, "tcp://rig-7.example:4000")
    assert src.ssl_context is None
    assert src.handshake == DEFAULT_HANDSHAKE
    assert src.handshake_interval == 30
    assert src.idle_timeout == 60
    assert src.request is None
    assert src.reconnect


def test_tcp_url_options() -> None:
    src = open_source(
        "tcp://10.1.2.3:4000?handshake=0112-8888&handshake_interval=15&idle_timeout=0"
        "&reconnect=0&connect_timeout=2.5"
    )
    assert isinstance(src, TCPSource)
    assert src.handshake == handshake_packet("0112", "-8888")
    assert src.handshake_interval == 15
    assert src.idle_timeout is None
    assert src.reconnect is False
    assert src.connect_timeout == 2.5
    assert open_source("tcp://h:1?handshake=0").handshake is None  # type: ignore[attr-defined]
    assert open_source("tcp://h:1?handshake=1").handshake == DEFAULT_HANDSHAKE  # type: ignore[attr-defined]
    assert open_source("tcp://h:1?handshake_interval=0").handshake_interval is None  # type: ignore[attr-defined]
    assert open_source("tcp://[::1]:4000").host == "::1"  # type: ignore[attr-defined]


def test_request_mode_url() -> None:
    src = open_source("tcp://h:1?request=1,11&request_interval=0.5")
    assert src.request == request_packet((1, 11))  # type: ignore[attr-defined]
    assert src.request_interval == 0.5  # type: ignore[attr-defined]
    default = open_source("tcp://h:1?request=1")
    assert default.request == request_packet((1,))  # type: ignore[attr-defined]
    assert default.request_interval == DEFAULT_REQUEST_INTERVAL  # type: ignore[attr-defined]
    assert open_source("tcp://h:1?request=0").request is None  # type: ignore[attr-defined]


def test_keyword_options_override_the_query() -> None:
    statuses: list[object] = []
    src = open_source("tcp://h:1?idle_timeout=5", idle_timeout=7.0, on_status=statuses.append)
    assert src.idle_timeout == 7.0  # type: ignore[attr-defined]
    assert src.on_status is not None  # type: ignore[attr-defined]


def test_tls_url_builds_a_verifying_context(pki: PKI) -> None:
    src = open_source(
        f"tls://10.1.2.3:4000?ca={pki.ca_file}&cert={pki.client_cert}&key={pki.client_key}"
        "&hostname=edr.rig-7.example"
    )
    assert isinstance(src, TCPSource)
    assert src.name == "tls://10.1.2.3:4000"
    assert src.server_hostname == "edr.rig-7.example"
    assert src.ssl_context is not None
    assert src.ssl_context.verify_mode is ssl.CERT_REQUIRED
    assert src.ssl_context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert len(src.ssl_context.get_ca_certs()) == 1


# Listener URLs ----------------------------------------------------------------------------------
def test_listen_urls(pki: PKI) -> None:
    src = open_source("tcp-listen://0.0.0.0:10001?allow=192.0.2.7,10.0.0.0/8&max_connections=50&queue_size=8")
    assert isinstance(src, ListenerSource)
    assert src.name == "tcp-listen://0.0.0.0:10001"
    assert [str(n) for n in src.allowlist or ()] == ["192.0.2.7/32", "10.0.0.0/8"]
    assert (src.max_connections, src.queue_size) == (50, 8)
    everywhere = open_source("tcp-listen://:10001?idle_timeout=0")
    assert isinstance(everywhere, ListenerSource)
    assert everywhere.host is None
    assert everywhere.idle_timeout is None
    tls = open_source(
        f"tls-listen://127.0.0.1:0?cert={pki.server_cert}&key={pki.server_key}"
        f"&client_ca={pki.client_ca_file}&require_client_cert=1&tls_handshake_timeout=3"
    )
    assert isinstance(tls, ListenerSource)
    assert tls.ssl_context is not None
    assert tls.ssl_context.verify_mode is ssl.CERT_REQUIRED
    assert tls.tls_handshake_timeout == 3
    assert tls.name == "tls-listen://127.0.0.1:0"


# Bad URLs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "udp://rig:4000",
            r"unknown scheme 'udp' \(known: file, mqtt, mqtts, serial, sim, tcp, tcp-listen, tls, ",
        ),
        ("rig-7:4000", r"is not a source URL: expected scheme://"),
        ("tcp://rig-7", r"^tcp://rig-7: missing port"),
        ("tcp://:4000", r"missing host"),
        ("tcp://rig:0", r"port 0 is not a TCP port \(1-65535\)"),
        ("tcp://rig:99999", r"port '99999' is not a TCP port \(1-65535\)"),
        ("tcp://rig:http", r"port 'http' is not a TCP port"),
        ("tcp-listen://0.0.0.0:70000", r"port '70000' is not a TCP port \(0-65535\)"),
        ("tcp://rig:4000?retries=3", r"unknown option 'retries' for tcp:// \(known: connect_timeout, hand"),
        ("tcp://rig:4000?ca=x.pem", r"unknown option 'ca' for tcp://"),
        ("tcp-listen://h:1?handshake=0", r"unknown option 'handshake' for tcp-listen://"),
        ("tls-listen://h:1?cert=s.pem&require_client_crt=1", r"unknown option 'require_client_crt'"),
        ("tcp://rig:4000?idle_timeout=5&idle_timeout=6", r"option 'idle_timeout' is given twice"),
        ("tcp://rig:4000?idle_timeout=soon", r"idle_timeout='soon' is not a positive number of seconds"),
        ("tcp://rig:4000?idle_timeout=-1", r"is not a positive number"),
        ("tcp://rig:4000?connect_timeout=0", r"connect_timeout='0' is not a positive number"),
        ("tcp://rig:4000?reconnect=maybe", r"reconnect='maybe' is not a boolean"),
        ("tcp://rig:4000?handshake=hello", r"handshake='hello' is not 0, 1 or a data line"),
        ("tcp://rig:4000?handshake=0111&&", r"malformed query|handshake"),
        ("tcp://rig:4000?request=1,100", r"request='1,100' is not 0 or record numbers 1-99"),
        ("tcp://rig:4000?request_interval=2", r"request_interval='2' needs request=1"),
        ("tcp://rig:4000/path", r"unexpected path '/path'"),
        ("tcp://rig:4000#frag", r"unexpected fragment"),
        ("tcp-listen://h:1?max_connections=0", r"max_connections='0' is not a positive integer"),
        ("tcp-listen://h:1?allow=rig-7.example", r"allowlist entry 'rig-7.example' is not an IP"),
        ("tcp-listen://h:1?allow=", r"allow='' is empty"),
        ("tls-listen://h:1", r"tls-listen:// needs cert="),
        ("tls://rig:4000?ca=/no/such/ca.pem", r"/no/such/ca\.pem.*not found"),
    ],
)
def test_bad_urls_are_usage_errors_naming_the_url_and_the_problem(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        open_source(url)
    assert str(info.value).startswith((url, f"{url!r} is not a source URL"))


def test_a_password_in_a_url_is_never_echoed() -> None:
    with pytest.raises(UsageError) as info:
        open_source("tcp://operator:hunter2@rig:4000")
    assert "hunter2" not in str(info.value)
    assert "operator:***@rig:4000" in str(info.value)


def test_a_url_must_be_a_string() -> None:
    with pytest.raises(UsageError, match="must be a string"):
        open_source(b"tcp://rig:4000")  # type: ignore[arg-type]


# Serial and file: delegated to their modules --------------------------------------------------------
def test_serial_and_file_urls_are_delegated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    class Fake:
        @classmethod
        def from_url(cls, url: str, **options: object) -> str:
            seen.append((url, options))
            return "a source"

    for module, name in (("serial", "SerialSource"), ("file", "FileSource")):
        fake = types.ModuleType(f"witskit.transport.{module}")
        setattr(fake, name, Fake)
        monkeypatch.setitem(sys.modules, f"witskit.transport.{module}", fake)
    assert open_source("serial:///dev/ttyUSB0?baud=9600&parity=N", idle_timeout=5) == "a source"
    assert open_source("file://logs/rig.wits?follow=1") == "a source"
    assert seen == [
        ("serial:///dev/ttyUSB0?baud=9600&parity=N", {"idle_timeout": 5}),
        ("file://logs/rig.wits?follow=1", {}),
    ]


def test_a_missing_serial_extra_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def import_module(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'serial_asyncio_fast'", name="serial_asyncio_fast")

    monkeypatch.setattr(urls_module, "importlib", types.SimpleNamespace(import_module=import_module))
    with pytest.raises(UsageError, match=r"pip install 'witskit\[serial\]'"):
        open_source("serial:///dev/ttyUSB0")


def test_a_missing_source_module_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "witskit.transport.file", None)  # import raises ModuleNotFoundError
    with pytest.raises(UsageError, match=r"has no witskit\.transport\.file"):
        open_source("file://rig.wits")


def test_a_scheme_served_above_transport_is_imported_when_first_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # How witskit.sim serves sim://: its module is named in witskit._schemes, never imported by
    # transport, and imported only when a URL of the scheme is opened.
    seen: list[tuple[str, dict[str, object]]] = []

    class Served:
        @classmethod
        def from_url(cls, url: str, **options: object) -> str:
            seen.append((url, options))
            return "a served source"

    module = types.ModuleType("served_above_transport")
    module.Served = Served  # type: ignore[attr-defined]
    monkeypatch.setattr(_schemes, "_SOURCES", dict(_schemes._SOURCES))
    _schemes.register_source("rig-replay", "served_above_transport", "Served")
    assert "rig-replay" in known_schemes()
    with pytest.raises(UsageError, match=r"has no served_above_transport"):
        open_source("rig-replay://x")
    monkeypatch.setitem(sys.modules, "served_above_transport", module)
    assert open_source(" rig-replay://x?speed=2 ", idle_timeout=5) == "a served source"
    assert seen == [("rig-replay://x?speed=2", {"idle_timeout": 5})]
    with pytest.raises(UsageError, match="'Rig Replay' is not a URL scheme"):
        _schemes.register_source("Rig Replay", "served_above_transport", "Served")


# Real links through URLs ------------------------------------------------------------------------
async def test_tcp_url_end_to_end(edr) -> None:
    async def sends(peer: Peer) -> None:
        await peer.send(FRAME)
        await peer.hold()

    server = await edr(sends)
    async with open_source(f"tcp://127.0.0.1:{server.port}?handshake=0&idle_timeout=5&reconnect=0") as src:
        events = await take(src, 1)
    assert isinstance(events[0], WITSFrame)
    assert server.peers[0].received == b"", "handshake=0 sends nothing"


async def test_tls_url_end_to_end(edr, pki: PKI) -> None:
    async def sends(peer: Peer) -> None:
        await peer.send(FRAME)
        await peer.hold()

    server = await edr(sends, ssl_context=server_context(pki.server_cert, pki.server_key))
    url = f"tls://127.0.0.1:{server.port}?ca={pki.ca_file}&hostname=localhost&reconnect=0"
    async with open_source(url) as src:
        events = await take(src, 1)
    assert events[0].lines == (b"01083650.4",)


async def test_listen_urls_end_to_end(pki: PKI) -> None:
    async with open_source("tcp-listen://127.0.0.1:0?allow=127.0.0.1") as plain:
        _, writer = await push(plain.port, FRAME)  # type: ignore[attr-defined]
        events = await take(plain, 1)
        await close_writer(writer)
    assert events[0].source == plain.name + "/127.0.0.1"  # the peer's address, not its port
    url = f"tls-listen://127.0.0.1:0?cert={pki.server_cert}&key={pki.server_key}"
    async with open_source(url) as secure:
        _, writer = await push(secure.port, FRAME, ssl_context=client_context(pki.ca_file))  # type: ignore[attr-defined]
        events = await take(secure, 1)
        await close_writer(writer)
    assert events[0].source.startswith("tls-listen://127.0.0.1:")


# The package ------------------------------------------------------------------------------------
def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in witskit.transport.__all__:
        obj = getattr(witskit.transport, name)
        assert obj is not None, name
        if callable(obj) and not isinstance(obj, types.UnionType):
            assert obj.__doc__, name
    assert set(witskit.transport.__all__) <= set(dir(witskit.transport))
    with pytest.raises(AttributeError):
        _ = witskit.transport.no_such_name  # type: ignore[attr-defined]


def test_importing_witskit_transport_stays_light() -> None:
    code = (
        "import sys, witskit.transport as t; "
        "print(','.join(m for m in sys.modules if m.startswith(('serial', 'witskit.transport.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.strip().split(","))
    assert loaded <= {"witskit.transport.error_handling", "witskit.transport.resilience"}, loaded


# docs/transports.md -------------------------------------------------------------------------------
BLOCKS = re.findall(r"```(python|console)\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_doc_covers_every_scheme_and_error() -> None:
    text = DOC.read_text(encoding="utf-8")
    for scheme in SCHEMES:
        assert f"`{scheme}:" in text, scheme
    for name in ("UsageError", "ConnectError", "TLSError", "ConnectionLost", "FrameError"):
        assert f"`{name}`" in text, name
    assert any(lang == "console" for lang, _ in BLOCKS)
    assert sum(lang == "python" for lang, _ in BLOCKS) >= 4


def test_the_doc_examples_run_in_order_and_print_what_they_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the TLS recipe in docs/transports.md needs the openssl command")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__transports_doc__"}
    for index, (lang, body) in enumerate(BLOCKS, start=1):
        if lang == "console":
            for line in body.splitlines():
                if line.startswith("$ "):
                    done = run_shell(line[2:], cwd=tmp_path, timeout=60)
                    assert done.returncode == 0, (line, done.stderr[-2000:])
            continue
        exec(compile(body, f"docs/transports.md block {index}", "exec"), namespace)
        printed = capsys.readouterr().out.splitlines()
        expected = [m.strip() for m in re.findall(r"#> (.+)$", body, flags=re.M)]
        assert expected or "print(" not in body, f"block {index} prints but states no output"
        for want in expected:
            assert any(want in line for line in printed), (index, want, printed)


def test_redact_url_masks_key_password_however_it_is_written() -> None:
    from witskit.transport.urls import redact_url

    for url, shown in (
        ("tls://h:1?key_password=s3cret&ca=ca.pem", "tls://h:1?key_password=***&ca=ca.pem"),
        ("tls://h:1?ca=ca.pem&key%5Fpassword=s3cret", "tls://h:1?ca=ca.pem&key%5Fpassword=***"),
        ("tls://h:1?KEY_PASSWORD=s3c;ret#frag", "tls://h:1?KEY_PASSWORD=***#frag"),
        ("tls://user:s3cret@h:1?key_password=s3cret", "tls://user:***@h:1?key_password=***"),
        ("tls://h:1?password_hint=x&key=k.pem", "tls://h:1?password_hint=x&key=k.pem"),
    ):
        assert redact_url(url) == shown
    with pytest.raises(UsageError) as info:
        open_source("tls://h:1?key%5Fpassword=s3c;ret&bogus=1")
    assert "s3c" not in str(info.value)


def test_every_scheme_takes_a_name(tmp_path: Path) -> None:
    for url in (
        "tcp://rig-7.example:4000?name=rig-7",
        "tcp-listen://127.0.0.1:0?name=rig-7",
        f"file://{tmp_path}/log.wits?name=rig-7",
        "sim://rig-1?name=rig-7",
    ):
        assert open_source(url).name == "rig-7", url
    # And without one: the rig for sim://, the file's name for file://, the URL for links.
    assert open_source("sim://rig-1?rate=5").name == "rig-1"
    assert open_source(f"file://{tmp_path}/log.wits?follow=1").name == "log.wits"
    assert open_source("tcp://rig-7.example:4000?handshake=0").name == "tcp://rig-7.example:4000"
    with pytest.raises(UsageError, match="name='' is empty"):
        open_source("tcp://rig-7.example:4000?name=")
