"""A Mosquitto broker of the test's own, on a free loopback port, that the test may stop and restart.

The shared broker on 127.0.0.1:1883 is never touched: an outage test stops its own broker (a real
``mosquitto`` process with a config file in the test's tmp directory) and starts it again on the
same port, with persistence on, so subscribers' sessions and queued QoS 1 messages survive the
restart as they do on a production broker. Without the ``mosquitto`` binary the test is skipped,
and fails under ``CI=true`` (see :mod:`support.ci`).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from support.ci import in_ci

#: A broker starts in milliseconds; this bounds a start on a loaded machine.
START_TIMEOUT = 10.0


def mosquitto_binary() -> str:
    """The broker's executable, or a skip (a failure under CI) naming what to install."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()), None
    )
    if found is None:
        message = "the mosquitto broker is not installed (apt-get install mosquitto)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """``with Mosquitto(tmp_path) as broker:`` a broker on ``broker.port``; ``stop()``, ``start()``.

    ``extra`` lines are added to the listener's config (TLS files, a password file); with
    ``anonymous=False`` a client must log in.
    """

    def __init__(self, directory: Path, *, extra: tuple[str, ...] = (), anonymous: bool = True) -> None:
        self.binary = mosquitto_binary()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.config = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        self.config.write_text(
            "\n".join(
                [
                    "per_listener_settings false",
                    # Run as root, mosquitto switches to the user "mosquitto", who cannot write
                    # the test's directory (its persistence file and log): stay who we are.
                    *([f"user {getpass.getuser()}"] if os.geteuid() == 0 else []),
                    f"allow_anonymous {'true' if anonymous else 'false'}",
                    "persistence true",
                    f"persistence_location {directory}/",
                    "max_queued_messages 100000",
                    f"log_dest file {self.log}",
                    f"listener {self.port} 127.0.0.1",
                    *extra,
                    "",
                ]
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def log_text(self) -> str:
        """What the broker logged so far ("" before it wrote anything)."""
        return self.log.read_text() if self.log.exists() else ""

    def start(self) -> None:
        """Start (again, on the same port) and wait until it accepts connections."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    log = self.log.read_text() if self.log.exists() else ""
                    raise RuntimeError(f"mosquitto exited: {err} {log}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mosquitto did not listen on {self.port} within {START_TIMEOUT} s"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop it (SIGTERM: it saves its persistence file first)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
