"""SerialSource against a real pseudo-terminal: the test is the rig on the master side.

The source opens a symlink in tmp_path (like a udev ``/dev/serial/by-id`` link) that points to the
pty's slave device. "Unplugging" closes the master (reads on the slave fail, as when a USB adapter
goes away) and removes the link; "plugging back" makes a new pty and points the link at it.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
import re
import subprocess
import sys
import termios
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import serial  # type: ignore[import-untyped]
import serial.serialutil  # type: ignore[import-untyped]

from support.waiting import until
from witskit.errors import FrameError, SerialPortError, TransportError, UsageError, WitsKitError
from witskit.protocol import WITSFrame
from witskit.protocol.limits import DEFAULT_HANDSHAKE
from witskit.transport.base import LinkState, LinkStatus, SourceEvent
from witskit.transport.resilience import RetryPolicy
from witskit.transport.serial import SerialSource, map_serial_errors

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are posix")

WAIT = 5.0  # upper bound for any one step; the tests normally take milliseconds
FRAME_A = b"&&\r\n01083650.40\r\n011323.38\r\n!!\r\n"
FRAME_B = b"&&\r\n01083651.90\r\n!!\r\n"


def fast_retry(attempts: int | None = None) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=attempts, backoff_factor=0.02, max_backoff=0.2, retry_on=(TransportError,)
    )


class Rig:
    """The rig's end of a pseudo-terminal, reachable through the symlink ``port``."""

    def __init__(self, port: Path) -> None:
        self.master, slave = os.openpty()
        self.device = os.ttyname(slave)
        os.close(slave)  # the source opens the slave by name, as it would /dev/ttyUSB0
        os.set_blocking(self.master, False)
        self.port = port
        port.unlink(missing_ok=True)
        port.symlink_to(self.device)
        self.received = bytearray()
        self.plugged = True

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    async def read_until(self, marker: bytes) -> bytes:
        """What the source sent, up to and including ``marker`` (bounded wait)."""

        async def poll() -> bytes:
            while marker not in self.received:
                try:
                    self.received += os.read(self.master, 4096)
                except BlockingIOError:
                    await asyncio.sleep(0.005)
                except OSError as exc:  # EIO until the source has the slave side open
                    if exc.errno != errno.EIO:
                        raise
                    await asyncio.sleep(0.005)
            end = self.received.index(marker) + len(marker)
            data = bytes(self.received[:end])
            del self.received[:end]
            return data

        return await asyncio.wait_for(poll(), WAIT)

    def termios(self) -> list[object]:
        return termios.tcgetattr(self.master)  # a pty pair shares one set of line settings

    def unplug(self) -> None:
        if self.plugged:
            self.plugged = False
            os.close(self.master)
            self.port.unlink(missing_ok=True)


@pytest.fixture
def port(tmp_path: Path) -> Path:
    return tmp_path / "ttyRIG"


@pytest.fixture
def rigs(port: Path) -> Iterator[list[Rig]]:
    """Rigs made by the test; each one is unplugged at the end."""
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.unplug()


@pytest.fixture
def plug(port: Path, rigs: list[Rig]) -> Callable[[], Rig]:
    def make() -> Rig:
        rig = Rig(port)
        rigs.append(rig)
        return rig

    return make


async def next_event(it: AsyncIterator[SourceEvent]) -> SourceEvent:
    return await asyncio.wait_for(anext(it), WAIT)


async def close(src: SerialSource, it: AsyncIterator[SourceEvent]) -> None:
    await src.aclose()
    await it.aclose()  # type: ignore[attr-defined]  # ends the loop's keep-alive task too


# Reading ------------------------------------------------------------------------------------
async def test_frames_arrive_after_the_handshake_is_sent(port: Path, plug: Callable[[], Rig]) -> None:
    rig = plug()
    src = SerialSource(str(port), retry=fast_retry())
    assert src.name == f"serial://{port}"
    it = aiter(src)
    try:
        pending = asyncio.ensure_future(anext(it))
        assert await rig.read_until(b"!!\r\n") == DEFAULT_HANDSHAKE  # sent at connect
        rig.write(FRAME_A + FRAME_B[:7])
        rig.write(FRAME_B[7:])
        first = await asyncio.wait_for(pending, WAIT)
        second = await next_event(it)
        assert isinstance(first, WITSFrame)
        assert first.lines == (b"01083650.40", b"011323.38")
        assert first.source == f"serial://{port}"
        assert isinstance(second, WITSFrame)
        assert second.lines == (b"01083651.90",)
        assert src.state is LinkState.CONNECTED
    finally:
        await close(src, it)


async def test_line_settings_reach_the_device(port: Path, plug: Callable[[], Rig]) -> None:
    rig = plug()
    src = SerialSource(str(port), baudrate=19200, stopbits=2, handshake=None)
    it = aiter(src)
    try:
        pending = asyncio.ensure_future(anext(it))
        await until(lambda: src.state is LinkState.CONNECTED)
        rig.write(FRAME_A)
        assert isinstance(await asyncio.wait_for(pending, WAIT), WITSFrame)
        _iflag, _oflag, cflag, _lflag, ispeed, _ospeed, _cc = rig.termios()
        assert ispeed == termios.B19200
        assert cflag & termios.CSIZE == termios.CS8  # type: ignore[operator]
        assert not cflag & termios.PARENB  # type: ignore[operator]
        assert cflag & termios.CSTOPB  # type: ignore[operator]
    finally:
        await close(src, it)


async def test_settings_the_device_rejects_are_a_usage_error_not_retried(
    port: Path, plug: Callable[[], Rig]
) -> None:
    plug()  # Linux ptys refuse 7-bit characters with parity (EINVAL from tcsetattr)
    src = SerialSource(str(port), bytesize=7, parity="E", retry=fast_retry())
    with pytest.raises(UsageError, match=re.escape(f"serial://{port}: the port rejects these line settings")):
        await next_event(aiter(src))
    assert src.connection_attempts == 1
    await src.aclose()


async def test_unplugging_turns_the_partial_frame_into_a_frame_error(
    port: Path, plug: Callable[[], Rig]
) -> None:
    rig = plug()
    statuses: list[LinkStatus] = []
    src = SerialSource(str(port), retry=fast_retry(), on_status=statuses.append)
    it = aiter(src)
    try:
        pending = asyncio.ensure_future(anext(it))
        await rig.read_until(b"!!\r\n")
        rig.write(FRAME_A + b"&&\r\n0108365")
        assert isinstance(await asyncio.wait_for(pending, WAIT), WITSFrame)
        pending = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.02)
        rig.unplug()
        error = await asyncio.wait_for(pending, WAIT)
        assert isinstance(error, FrameError)
        assert error.kind == "truncated"
        assert error.excerpt == b"&&\r\n0108365"
        pending = asyncio.ensure_future(anext(it))  # the loop goes on: reports the drop, retries
        await until(lambda: any(s.state is LinkState.DISCONNECTED for s in statuses))
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
    finally:
        await close(src, it)
    lost = next(s for s in statuses if s.state is LinkState.DISCONNECTED)
    assert lost.error is not None
    assert lost.error.startswith(f"serial://{port}: the port went away")


async def test_the_source_reconnects_when_the_adapter_is_plugged_back(
    port: Path, plug: Callable[[], Rig]
) -> None:
    first_rig = plug()
    statuses: list[LinkStatus] = []
    src = SerialSource(str(port), retry=fast_retry(), on_status=statuses.append)
    it = aiter(src)
    try:
        pending = asyncio.ensure_future(anext(it))
        await first_rig.read_until(b"!!\r\n")
        first_rig.write(FRAME_A + b"&&\r\n01")
        assert isinstance(await asyncio.wait_for(pending, WAIT), WITSFrame)

        pending = asyncio.ensure_future(anext(it))
        first_rig.unplug()
        assert isinstance(await asyncio.wait_for(pending, WAIT), FrameError)

        # While the port is gone, opening it fails and is retried with backoff.
        pending = asyncio.ensure_future(anext(it))

        def failed_opens() -> list[LinkStatus]:
            return [s for s in statuses if s.error and "cannot open the port" in s.error]

        await until(lambda: len(failed_opens()) >= 2)
        assert not pending.done()
        assert str(port) in (failed_opens()[0].error or "")

        second_rig = plug()  # a new pty behind the same name
        assert await second_rig.read_until(b"!!\r\n") == DEFAULT_HANDSHAKE
        second_rig.write(FRAME_B)
        frame = await asyncio.wait_for(pending, WAIT)
        assert isinstance(frame, WITSFrame)
        assert frame.lines == (b"01083651.90",)
        assert frame.offset == 0  # a new parser for the new connection
        assert src.connections == 2
        assert src.state is LinkState.CONNECTED
    finally:
        await close(src, it)


async def test_a_port_already_in_use_is_not_shared(port: Path, plug: Callable[[], Rig]) -> None:
    rig = plug()
    first = SerialSource(str(port), retry=fast_retry())
    it = aiter(first)
    pending = asyncio.ensure_future(anext(it))
    try:
        await rig.read_until(b"!!\r\n")
        second = SerialSource(str(port), retry=fast_retry(attempts=2))
        with pytest.raises(SerialPortError, match="cannot open the port"):
            await next_event(aiter(second))  # two readers would each get part of the bytes
        await second.aclose()
        rig.write(FRAME_A)
        assert isinstance(await asyncio.wait_for(pending, WAIT), WITSFrame)
    finally:
        await close(first, it)


async def test_a_missing_port_is_a_serial_port_error_once_retries_are_spent(tmp_path: Path) -> None:
    missing = tmp_path / "ttyNOPE"
    src = SerialSource(str(missing), retry=fast_retry(attempts=2))
    with pytest.raises(SerialPortError, match=re.escape(f"serial://{missing}: cannot open the port")):
        await next_event(aiter(src))
    assert src.connection_attempts == 2
    await src.aclose()


async def test_a_port_that_is_not_a_tty_is_a_serial_port_error(tmp_path: Path) -> None:
    not_a_tty = tmp_path / "plain-file"
    not_a_tty.write_bytes(b"")
    src = SerialSource(str(not_a_tty), retry=fast_retry(attempts=1))
    with pytest.raises(SerialPortError, match=re.escape(str(not_a_tty))):
        await next_event(aiter(src))
    await src.aclose()


async def test_without_pyserial_the_error_names_the_extra(
    port: Path, plug: Callable[[], Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    plug()
    monkeypatch.setitem(sys.modules, "serial_asyncio_fast", None)  # makes the import fail
    src = SerialSource(str(port), retry=fast_retry())
    with pytest.raises(UsageError, match=re.escape("pip install 'witskit[serial]'")):
        await next_event(aiter(src))
    assert src.connection_attempts == 1  # a missing extra is not retried
    await src.aclose()


def test_importing_the_transports_does_not_import_pyserial() -> None:
    code = (
        "import sys, witskit.transport, witskit.transport.serial, witskit.transport.file\n"
        "assert 'serial' not in sys.modules and 'serial_asyncio_fast' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# Error mapping ------------------------------------------------------------------------------
def _pyserial_exceptions() -> list[type[BaseException]]:
    return [
        obj for _, obj in inspect.getmembers(serial.serialutil, inspect.isclass) if issubclass(obj, Exception)
    ]


def test_every_pyserial_exception_is_mapped() -> None:
    found = _pyserial_exceptions()
    assert serial.SerialException in found
    for cls in found:
        try:
            exc = cls("boom")
        except TypeError:  # PortNotOpenError takes no message
            exc = cls()
        with pytest.raises(WitsKitError) as info, map_serial_errors("serial:///dev/ttyX", opening=True):
            raise exc
        assert isinstance(info.value, SerialPortError | UsageError), cls
        assert "serial:///dev/ttyX" in str(info.value)
        assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("exc", "expected", "message"),
    [
        (serial.SerialException("could not open port"), SerialPortError, "cannot open the port"),
        (PermissionError(errno.EACCES, "Permission denied"), SerialPortError, "Permission denied"),
        (ValueError("Invalid baud rate"), UsageError, "invalid serial settings"),
    ],
)
def test_map_serial_errors_when_opening(exc: Exception, expected: type[Exception], message: str) -> None:
    with pytest.raises(expected, match=message), map_serial_errors("serial:///dev/ttyX", opening=True):
        raise exc


def test_map_serial_errors_when_reading_says_the_port_went_away() -> None:
    with (
        pytest.raises(SerialPortError, match="serial:///dev/ttyX: the port went away"),
        map_serial_errors("serial:///dev/ttyX", opening=False),
    ):
        raise serial.SerialException("device reports readiness to read but returned no data")


def test_map_serial_errors_lets_witskit_errors_through() -> None:
    original = SerialPortError("already mapped")
    with pytest.raises(SerialPortError) as info, map_serial_errors("x", opening=True):
        raise original
    assert info.value is original


# Settings and URLs --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baudrate": 0}, "baud rate 0"),
        ({"baudrate": -9600}, "baud rate"),
        ({"baudrate": 9600.0}, "baud rate"),
        ({"baudrate": True}, "baud rate"),
        ({"bytesize": 9}, "bytesize 9"),
        ({"bytesize": 4}, "bytesize"),
        ({"parity": "X"}, "parity 'X'"),
        ({"stopbits": 3}, "stopbits 3"),
        ({"handshake_interval": 0}, "handshake_interval"),
    ],
)
def test_bad_settings_are_usage_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SerialSource("/dev/ttyUSB0", **kwargs)  # type: ignore[arg-type]


def test_an_empty_port_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a device name"):
        SerialSource("")


def test_from_url_with_every_option() -> None:
    src = SerialSource.from_url(
        "serial:///dev/ttyUSB0?baud=19200&bytesize=7&parity=E&stopbits=1.5"
        "&handshake=0&handshake_interval=10&idle_timeout=0&reconnect=0&connect_timeout=2"
    )
    assert src.port == "/dev/ttyUSB0"
    assert src.name == "serial:///dev/ttyUSB0"
    assert (src.baudrate, src.bytesize, src.parity, src.stopbits) == (19200, 7, "E", 1.5)
    assert src.handshake is None
    assert src.handshake_interval == 10.0
    assert src.idle_timeout is None
    assert src.reconnect is False
    assert src.connect_timeout == 2.0


def test_from_url_defaults_are_9600_8n1_with_the_handshake() -> None:
    src = SerialSource.from_url("serial:///dev/serial/by-id/usb-FTDI_rig-if00-port0")
    assert src.port == "/dev/serial/by-id/usb-FTDI_rig-if00-port0"
    assert (src.baudrate, src.bytesize, src.parity, src.stopbits) == (9600, 8, "N", 1)
    assert src.handshake == DEFAULT_HANDSHAKE
    assert src.handshake_interval == 30.0
    assert src.idle_timeout == 60.0
    assert src.reconnect is True


def test_from_url_handshake_interval_zero_means_at_connect_only() -> None:
    src = SerialSource.from_url("serial:///dev/ttyS0?handshake=1&handshake_interval=0&idle_timeout=5")
    assert src.handshake == DEFAULT_HANDSHAKE
    assert src.handshake_interval is None
    assert src.idle_timeout == 5.0


def test_from_url_lower_case_parity_and_request_mode() -> None:
    src = SerialSource.from_url("serial:///dev/ttyS1?parity=o&request=1&request_interval=2")
    assert src.parity == "O"
    assert src.request is not None
    assert src.request_interval == 2.0


def test_from_url_host_form_and_escapes() -> None:
    assert SerialSource.from_url("serial://COM3?baud=4800").port == "COM3"
    assert SerialSource.from_url("serial:///dev/my%20port").port == "/dev/my port"


def test_from_url_passes_other_options() -> None:
    retry = fast_retry()
    src = SerialSource.from_url("serial:///dev/ttyUSB0", retry=retry, connect_timeout=3.0)
    assert src.retry is retry
    assert src.connect_timeout == 3.0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("tcp://rig:4000", "not a serial:// URL"),
        ("serial://", "names no serial port"),
        ("serial:///dev/ttyUSB0?baud=0", "baud='0' is not a positive integer"),
        ("serial:///dev/ttyUSB0?baud=-1", "baud='-1' is not a positive integer"),
        ("serial:///dev/ttyUSB0?baud=96OO", "baud='96OO'"),
        ("serial:///dev/ttyUSB0?baud=9600.5", "baud='9600.5'"),
        ("serial:///dev/ttyUSB0?baud=", "baud=''"),
        ("serial:///dev/ttyUSB0?bytesize=9", "bytesize='9' is not one of 5, 6, 7, 8"),
        ("serial:///dev/ttyUSB0?bytesize=4", "bytesize='4'"),
        ("serial:///dev/ttyUSB0?parity=X", "parity='X' is not one of N, E, O, M, S"),
        ("serial:///dev/ttyUSB0?stopbits=3", "stopbits='3' is not one of 1, 1.5, 2"),
        ("serial:///dev/ttyUSB0?stopbits=1.0", "stopbits='1.0'"),
        ("serial:///dev/ttyUSB0?handshake=maybe", "handshake='maybe'"),
        ("serial:///dev/ttyUSB0?reconnect=2", "reconnect='2'"),
        ("serial:///dev/ttyUSB0?idle_timeout=-1", "idle_timeout='-1'"),
        ("serial:///dev/ttyUSB0?idle_timeout=nan", "idle_timeout='nan'"),
        ("serial:///dev/ttyUSB0?handshake_interval=soon", "handshake_interval='soon'"),
        ("serial:///dev/ttyUSB0?baud=9600&baud=4800", "'baud' is given twice"),
        ("serial:///dev/ttyUSB0?speed=9600&flow=rtscts", "unknown options 'flow', 'speed' for serial://"),
        ("serial:///dev/ttyUSB0#x", "fragment"),
    ],
)
def test_from_url_rejects(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        SerialSource.from_url(url)


def test_from_url_keyword_options_override_the_query() -> None:
    src = SerialSource.from_url("serial:///dev/ttyUSB0?baud=9600&reconnect=0", baudrate=4800)
    assert src.baudrate == 4800
    assert src.reconnect is False


def test_open_source_picks_the_serial_source() -> None:
    from witskit.transport import open_source

    src = open_source("serial:///dev/ttyUSB0?baud=19200&parity=E", reconnect=False)
    assert isinstance(src, SerialSource)
    assert (src.port, src.baudrate, src.parity, src.reconnect) == ("/dev/ttyUSB0", 19200, "E", False)
