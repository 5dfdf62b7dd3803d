"""A real NATS JetStream cluster on 127.0.0.1 for the fleet tests: ``nats-server`` processes.

:class:`NatsCluster` starts ``size`` nodes (``-js -sd DIR``, ``--cluster`` and ``--routes`` to the
others, each on free loopback ports), waits until JetStream has a meta leader, and can kill a node
with SIGKILL, stop every node and start them again on the same storage directories. It never
touches the shared server on 4222. Without the ``nats-server`` binary the tests skip (fail in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from support.ci import in_ci

#: Seconds for a node to listen, and for the cluster to elect its JetStream meta leader.
START_WAIT = 20.0


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound, read, released together)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def require_nats_server() -> str:
    """The ``nats-server`` binary's path, or skip (fail under CI=true) saying it is missing."""
    path = shutil.which("nats-server")
    if path is None:
        message = "the fleet tests need the nats-server binary on the PATH (apt-get install nats-server)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        import nats  # noqa: F401
    except ImportError:
        message = "the fleet tests need nats-py: pip install 'witskit[fleet]'"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


class NodeExited(AssertionError):
    """A ``nats-server`` node exited while starting (its log says why)."""


class NatsCluster:
    """``size`` JetStream nodes routed to each other; :attr:`url_hosts` is ``h:p,h:p,...``."""

    def __init__(
        self, base: Path, size: int = 3, *, name: str = "witskit-test", extra: tuple[str, ...] = ()
    ) -> None:
        self.binary = require_nats_server()
        self.extra = extra  # more nats-server arguments (auth, TLS), the same on every node
        #: nats.connect() keywords the readiness check needs (credentials, TLS) with such arguments.
        self.client_options: dict[str, Any] = {}
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.name = name
        ports = free_ports(2 * size)
        self.client_ports = ports[:size]
        self.cluster_ports = ports[size:]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        #: True once every node has run (then a start keeps the ports).
        self.started = False

    @property
    def url_hosts(self) -> str:
        """The client addresses, comma-separated, as a ``nats://`` URL's host list takes them."""
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    @property
    def live_servers(self) -> list[str]:
        """``nats://`` URLs of the nodes running now."""
        ports = [p for p, proc in zip(self.client_ports, self.procs, strict=True) if proc is not None]
        return [f"nats://127.0.0.1:{p}" for p in ports]

    def _args(self, i: int) -> list[str]:
        routes = ",".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.cluster_ports) if j != i)
        store = self.base / f"n{i}"
        store.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "-a",
            "127.0.0.1",
            "-p",
            str(self.client_ports[i]),
            "-n",
            f"n{i}",
            "-js",
            "-sd",
            str(store),
        ]
        args += self.extra
        if self.size > 1:
            args += [
                "--cluster_name",
                self.name,
                "--cluster",
                f"nats://127.0.0.1:{self.cluster_ports[i]}",
                "--routes",
                routes,
            ]
        return args

    def start_node(self, i: int) -> None:
        log = (self.base / f"n{i}.log").open("ab")
        self.procs[i] = subprocess.Popen(self._args(i), stdout=log, stderr=log)
        log.close()
        proc = self.procs[i]
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.procs[i] = None
                raise NodeExited(f"nats node n{i} exited with {proc.returncode} (see {self.base}/n{i}.log)")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.client_ports[i]), 0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError(
            f"nats node n{i} did not listen within {START_WAIT} s (see {self.base}/n{i}.log)"
        )

    def start(self) -> None:
        """Start the nodes not running. The first time, a node that exits at once (a port picked
        free was taken meanwhile, as another process's outgoing connection may take it) makes
        the cluster start again on new ports, up to three times; later starts keep the ports
        (the clients have them). Nothing is left running when the first start fails."""
        if self.started:
            self._start_nodes()
            return
        for attempt in range(3):
            try:
                self._start_nodes()
                self.started = True
                return
            except NodeExited:
                self.stop()
                if attempt == 2:
                    raise
                for i in range(self.size):  # nothing stored yet: no state of the failed start kept
                    shutil.rmtree(self.base / f"n{i}", ignore_errors=True)
                ports = free_ports(2 * self.size)
                self.client_ports = ports[: self.size]
                self.cluster_ports = ports[self.size :]
            except BaseException:
                self.stop()
                raise

    def _start_nodes(self) -> None:
        for i in range(self.size):
            if self.procs[i] is None:
                self.start_node(i)
        asyncio.run(self.wait_ready())
        for i, proc in enumerate(self.procs):  # a node may listen for clients, then fail its route port
            if proc is not None and proc.poll() is not None:
                self.procs[i] = None
                raise NodeExited(f"nats node n{i} exited with {proc.returncode} (see {self.base}/n{i}.log)")

    async def wait_ready(self, timeout: float = START_WAIT) -> None:
        """Until JetStream answers on the cluster (a meta leader is elected)."""
        import nats

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                nc = await nats.connect(
                    servers=self.live_servers,
                    **{"connect_timeout": 1, **self.client_options},
                    max_reconnect_attempts=0,
                    allow_reconnect=False,
                )
            except Exception as exc:
                last = exc
                await asyncio.sleep(0.2)
                continue
            try:
                await nc.jetstream(timeout=1).account_info()
                return
            except Exception as exc:
                last = exc
                await asyncio.sleep(0.2)
            finally:
                await nc.close()
        raise AssertionError(f"JetStream not ready within {timeout} s: {last}")

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (its storage stays for a restart)."""
        proc = self.procs[i]
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            self.procs[i] = None

    def stop(self) -> None:
        """SIGKILL every node."""
        for i in range(self.size):
            self.kill(i)

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
