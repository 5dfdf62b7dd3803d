"""Faults under an independent sender counting sequence numbers, end to end through ``witskit stream``.

Run:  PYTHONPATH=src .venv/bin/python bench/bench_faults.py [scenario ...]

Scenarios, each against the real CLI (``witskit stream --config``, a subprocess) writing into a
fresh PostgreSQL database on 127.0.0.1 (created with a unique name, dropped after):

1. ``db-down``: the database URL points at a closed loopback port at start; after a few seconds a
   TCP forwarder to the real server starts on that port (the database "comes up").
2. ``disk-full``: the data directory (the spool) is on a 1 MiB tmpfs mounted in a private mount
   namespace (``unshare -m``); mid-stream the bench fills that disk (through
   ``/proc/PID/root``), a real ``ENOSPC``, then deletes the filler (space returns). Without
   ``unshare`` the file size limit of the running process is lowered instead (``prlimit``,
   ``EFBIG``) and raised again.
3. ``kill-9``: the ingesting process is killed with SIGKILL mid-stream (three times) and started
   again at once on the same data directory; the bytes the kernel held unread at each kill (the
   window TCP acknowledged that no process had read) are printed.
4. ``kill-paused`` and ``term-paused``: the same, once, while the source is paused because the
   spool cannot write (the process's file size limit set to 0 with ``prlimit``: every append
   fails with EFBIG), with SIGKILL or SIGTERM: what was taken from the rig and not stored.
5. ``flapping``: a ``tcp://`` client source against an EDR that accepts and closes every
   connection at once for 8 s, then serves: connection attempts per second and time back.

The sender numbers every frame in item 0104 (record 1's sequence identifier) and counts, per
scenario: frames ``sent`` (handed whole to the kernel), ``acked`` (acknowledged by the peer's TCP:
``tcpi_bytes_acked`` of the sending socket, sampled while the link lives), ``stored`` (distinct
numbers in the database), ``lost`` (acked but not stored: what the docs promise never happens,
except for the ``kill -9`` window they state), ``dup`` (numbers stored more than once) and
``recover``: seconds from the end of the fault until every frame sent before it that is stored at
all is in the database and a frame sent after it is too. ``printed`` counts the frames the process
printed (jsonl on stdout), which it does only after their spool append returned.

Everything runs on 127.0.0.1 and in a temporary directory; every wait is bounded (the whole run
takes about two minutes). Figures are printed, never asserted: a loss or a duplicate the
docs do not allow is a bug to fix with a test (see docs/pipeline.md, "Loss window").
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True  # the test helpers imported below leave no __pycache__ in the tree
sys.path.insert(0, str(ROOT / "tests" / "service"))

import pytest  # noqa: E402
from live_helpers import database, free_port  # noqa: E402
from test_database_down_at_start import forwarder  # noqa: E402

from witskit.storage import Store  # noqa: E402

#: Frames a second the sender offers (a fast rig sends 1-5; more makes the windows measurable).
RATE = 100
#: Bound on any one wait (seconds): a scenario that does not recover within it is reported as such.
WAIT = 45.0
#: Byte offset of ``tcpi_bytes_acked`` (u64) in Linux's ``struct tcp_info`` (since 4.1). It counts
#: the SYN as one byte on the connecting side, not on the accepting side: read it once before the
#: first byte is sent and count from there.
_TCPI_BYTES_ACKED = 120


def frame(seq: int) -> bytes:
    """A WITS frame carrying sequence number ``seq`` in 0104 (and a depth that moves with it)."""
    return f"&&\r\n0104{seq}\r\n0108{1000 + seq / 100:.2f}\r\n!!\r\n".encode("ascii")


def bytes_acked(sock: socket.socket) -> int:
    """``tcpi_bytes_acked`` of ``sock`` (0 if the kernel cannot say)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return 0
    if len(info) < _TCPI_BYTES_ACKED + 8:
        return 0
    return int(struct.unpack_from("<Q", info, _TCPI_BYTES_ACKED)[0])


class Link:
    """One connection of the sender: which frame ends at which byte, and how far TCP acked."""

    def __init__(self, sock: socket.socket, rig: Rig) -> None:
        self.sock = sock
        self.rig = rig
        self.ends: list[tuple[int, int]] = []  # (end offset, seq), in order
        self.written = 0
        self.acked = 0
        self._base = bytes_acked(sock)  # the SYN, or nothing (see _TCPI_BYTES_ACKED)

    def sample(self) -> None:
        self.acked = max(self.acked, min(self.written, bytes_acked(self.sock) - self._base))

    async def send(self, seq: int, timeout: float = 20.0) -> bool:
        """Send frame ``seq`` whole; False when the link broke (the frame is not counted sent)."""
        data = frame(seq)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_sendall(self.sock, data)
        except (OSError, TimeoutError):
            self.sample()
            return False
        self.written += len(data)
        self.ends.append((self.written, seq))
        self.rig.sent_at[seq] = time.monotonic()
        self.sample()
        return True

    async def finish(self, linger: float = 1.0) -> None:
        """Let the last bytes be acknowledged (bounded), record what was, and close."""
        deadline = time.monotonic() + linger
        while self.acked < self.written and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            self.sample()
        self.rig.acked.update(seq for end, seq in self.ends if end <= self.acked)
        self.sock.close()


@dataclass
class Rig:
    """The independent sender's books: numbers sent, when, and which TCP acknowledged."""

    next_seq: int = 1
    sent_at: dict[int, float] = field(default_factory=dict)
    acked: set[int] = field(default_factory=set)

    def take(self) -> int:
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        return seq

    async def push(
        self, port: int, stop: asyncio.Event, on_link: Callable[[Link], None] | None = None
    ) -> None:
        """Connect to a listener on ``port`` and send RATE frames a second until ``stop``; when
        the link breaks, reconnect every 0.1 s (a rig that pushes), numbering on."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            sock = socket.socket()
            sock.setblocking(False)
            try:
                async with asyncio.timeout(2):
                    await loop.sock_connect(sock, ("127.0.0.1", port))
            except (OSError, TimeoutError):
                sock.close()
                await asyncio.sleep(0.1)
                continue
            link = Link(sock, self)
            if on_link is not None:
                on_link(link)
            seq = self.take()
            while not stop.is_set():
                if not await link.send(seq):
                    break
                seq = self.take()
                await asyncio.sleep(1 / RATE)
            await link.finish()

    async def serve(self, link: Link, stop: asyncio.Event) -> None:
        """Send RATE frames a second on an accepted ``link`` until ``stop`` or it breaks."""
        while not stop.is_set() and await link.send(self.take()):
            await asyncio.sleep(1 / RATE)
        await link.finish()


class Stored:
    """Polls the database: when each sequence number was first seen, and how often it is stored."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.first_seen: dict[int, float] = {}
        self.counts: collections.Counter[int] = collections.Counter()
        self._store: Store | None = None
        self._polling = False

    async def poll(self) -> None:
        try:
            if self._store is None:
                self._store = await Store.open(self.url, migrate=False, timeout=2)
            counts: collections.Counter[int] = collections.Counter()
            async for row in self._store.query(codes=["0104"]):
                counts[int(row.value)] += 1  # type: ignore[arg-type]
        except Exception:  # not migrated yet, or a transient error: poll again
            return
        now = time.monotonic()
        for seq in counts:
            self.first_seen.setdefault(seq, now)
        self.counts = counts

    async def until(self, check: Callable[[], bool], timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._polling:
                await self.poll()
            if check():
                return True
            await asyncio.sleep(0.25)
        return False

    @contextlib.asynccontextmanager
    async def polling(self, every: float = 0.2) -> AsyncIterator[None]:
        """Poll in the background while the block runs, so first-seen times are exact to ``every``."""

        async def loop() -> None:
            while True:
                await self.poll()
                await asyncio.sleep(every)

        task = asyncio.create_task(loop())
        self._polling = True
        try:
            yield
        finally:
            self._polling = False
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()


@dataclass
class Result:
    name: str
    sent: int = 0
    acked: int = 0
    printed: int = 0
    stored: int = 0
    lost: int = 0
    dup: int = 0
    recover: float | None = None
    note: str = ""


def recovery(rig: Rig, stored: Stored, fault_end: float) -> float | None:
    """Seconds from ``fault_end`` until every frame sent before it that is stored at all is in,
    and a frame sent after it is too (None: nothing sent after it was stored)."""
    before = [stored.first_seen[s] for s in stored.counts if rig.sent_at.get(s, 0.0) <= fault_end]
    after = [stored.first_seen[s] for s in stored.counts if rig.sent_at.get(s, 0.0) > fault_end]
    if not after:
        return None
    return max([min(after), *before]) - fault_end


def tally(
    name: str, rig: Rig, stored: Stored, printed: set[int], fault_ends: float | list[float], note: str
) -> Result:
    have = set(stored.counts)
    ends = fault_ends if isinstance(fault_ends, list) else [fault_ends]
    times = [recovery(rig, stored, t) for t in ends]
    recover = None if None in times or not times else max(t for t in times if t is not None)
    unacked = sorted(set(rig.sent_at) - rig.acked)
    if unacked:
        note += f"; sent, not acked: {_ranges(unacked)} (stored: {len(set(unacked) & have)})"
    return Result(
        name=name,
        sent=len(rig.sent_at),
        acked=len(rig.acked),
        printed=len(printed),
        stored=len(have),
        lost=len(rig.acked - have),
        dup=sum(1 for n in stored.counts.values() if n > 1),
        recover=recover,
        note=note,
    )


# The ingesting process --------------------------------------------------------------------------


@dataclass
class Witskit:
    """``witskit stream --config`` as a subprocess; this process copies its stdout (jsonl) and
    stderr into files (through pipes, so that a file size limit put on it spares them)."""

    config: Path
    data: Path
    logs: Path
    wrap: list[str] = field(default_factory=list)
    runs: int = 0
    proc: subprocess.Popen[bytes] | None = None
    pumps: list[threading.Thread] = field(default_factory=list)

    def start(self, **popen: object) -> subprocess.Popen[bytes]:
        self.runs += 1
        command = [sys.executable, "-m", "witskit", "stream", "--config", str(self.config), "-f", "jsonl"]
        env = {**os.environ, "WITS_DATA_DIR": str(self.data), "PYTHONDONTWRITEBYTECODE": "1"}
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            [*self.wrap, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            **popen,  # type: ignore[call-overload]
        )
        for pipe, name in ((proc.stdout, f"out-{self.runs}.jsonl"), (proc.stderr, f"err-{self.runs}.txt")):
            assert pipe is not None
            pump = threading.Thread(target=_copy, args=(pipe, self.logs / name), daemon=True)
            pump.start()
            self.pumps.append(pump)
        self.proc = proc
        return proc

    def stderr(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("err-*.txt")))

    def printed(self) -> set[int]:
        seqs: set[int] = set()
        for path in self.logs.glob("out-*.jsonl"):
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    points = json.loads(line)["points"]
                    seqs.update(int(p["value"]) for p in points if p["code"] == "0104")
        return seqs

    async def stop(self) -> int | None:
        """SIGTERM, then wait (bounded; SIGKILL after 30 s). The exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            status = await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = await asyncio.to_thread(proc.wait, 10)
        for pump in self.pumps:
            await asyncio.to_thread(pump.join, 10)
        return status


def _copy(pipe: IO[bytes], path: Path) -> None:
    """Copy ``pipe`` into ``path`` line by line (flushed, so the bench can read it meanwhile)."""
    with pipe, open(path, "wb") as out:
        for line in iter(pipe.readline, b""):
            out.write(line)
            out.flush()


def write_config(path: Path, source: str, sink: str) -> Path:
    path.write_text(
        f"sources:\n  - url: {source}\n    name: rig\nsinks:\n  - url: {sink}\n", encoding="utf-8"
    )
    return path


async def wait_for(check: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return False


@contextlib.asynccontextmanager
async def pushing(rig: Rig, port: int, on_link: Callable[[Link], None] | None = None) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(rig.push(port, stop, on_link))
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task


# Scenarios ---------------------------------------------------------------------------------------


async def database_down(tmp: Path, url: str, stored: Stored) -> Result:
    real = urlsplit(url)
    assert real.hostname is not None
    assert real.port is not None
    db_port = free_port()  # nothing listens here until the forwarder starts
    down = urlunsplit(real._replace(netloc=real.netloc.replace(f":{real.port}", f":{db_port}")))
    rig_port = free_port()
    ws = Witskit(
        write_config(tmp / "pipeline.yaml", f"tcp-listen://127.0.0.1:{rig_port}", down), tmp / "data", tmp
    )
    rig = Rig()
    ws.start()
    stop = asyncio.Event()
    sender = asyncio.create_task(rig.push(rig_port, stop))
    try:
        await asyncio.sleep(4.0)  # the database is down: frames go to the spool
        async with forwarder(db_port, (real.hostname, real.port)):
            fault_end = time.monotonic()
            await asyncio.sleep(2.0)
            stop.set()
            async with asyncio.timeout(30):
                await sender
            await stored.until(lambda: bool(rig.acked) and rig.acked <= set(stored.counts))
            status = await ws.stop()  # while the database is reachable (it drains into it)
        return tally("db-down", rig, stored, ws.printed(), fault_end, f"down 4.0 s; exit {status}")
    finally:
        stop.set()
        await asyncio.gather(sender, return_exceptions=True)
        await ws.stop()


def _hold_full(path: Path, stop: threading.Event, limit: int = 64 << 20) -> int:
    """Keep the disk of ``path`` full until ``stop``, as a runaway writer would: append to it until
    ENOSPC, then again every 20 ms (taking whatever the spool frees). The bytes written."""
    chunk, written = b"\0" * 4096, 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while not stop.is_set() and written < limit:
            try:
                written += os.write(fd, chunk)
            except OSError:
                stop.wait(0.02)
    finally:
        os.close(fd)
    return written


async def disk_full(tmp: Path, url: str, stored: Stored) -> Result:
    rig_port = free_port()
    disk = tmp / "small-disk"
    disk.mkdir()
    config = write_config(tmp / "pipeline.yaml", f"tcp-listen://127.0.0.1:{rig_port}", url)
    unshare = shutil.which("unshare")
    shell = 'mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"'
    wrap = (
        [unshare, "--mount", "--propagation", "private", "sh", "-c", shell, "sh", str(disk)]
        if unshare
        else []
    )
    ws = Witskit(config, disk / "data", tmp, wrap=wrap)
    rig = Rig()
    ignore_xfsz = {"preexec_fn": lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN)}
    proc = ws.start() if wrap else ws.start(**ignore_xfsz)
    if wrap and await wait_for(lambda: proc.poll() is not None, timeout=3):
        ws.wrap = wrap = []  # no private mount here: fall back to the file size limit
        proc = ws.start(**ignore_xfsz)
    how = "tmpfs ENOSPC" if wrap else "RLIMIT_FSIZE EFBIG"
    try:
        async with pushing(rig, rig_port):
            await stored.until(lambda: len(stored.counts) >= RATE, timeout=WAIT)
            said = len(ws.stderr())
            full = threading.Event()
            fault_start = time.monotonic()
            if wrap:
                filler = Path(f"/proc/{proc.pid}/root") / disk.relative_to("/") / "filler"
                filling = asyncio.create_task(asyncio.to_thread(_hold_full, filler, full))
            else:
                resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
            seen = await wait_for(lambda: "spool cannot write" in ws.stderr()[said:], timeout=15)
            await asyncio.sleep(3.0)
            if wrap:
                full.set()
                await filling
                filler.unlink()
            else:
                resource.prlimit(
                    proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
                )
            fault_end = time.monotonic()
            resumed = await wait_for(lambda: "spool writes again" in ws.stderr()[said:], timeout=15)
            await asyncio.sleep(2.0)
        await stored.until(lambda: rig.acked <= set(stored.counts))
        status = await ws.stop()
        note = (
            f"{how}; paused {'yes' if seen else 'NO'}, resumed {'yes' if resumed else 'NO'}, "
            f"fault {fault_end - fault_start:.1f} s; "
            f"{ws.stderr().count('ack position in place')} 'ack in place' warnings; exit {status}"
        )
        return tally("disk-full", rig, stored, ws.printed(), fault_end, note)
    finally:
        await ws.stop()


def rx_queue(local_port: int, remote_port: int) -> int | None:
    """Bytes waiting unread in the kernel for the socket 127.0.0.1:local <- :remote (/proc/net/tcp)."""
    want = (f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}")
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            cols = line.split()
            if (cols[1], cols[2]) == want:
                return int(cols[4].split(":")[1], 16)
    return None


#: Kills of the kill-9 scenario, each once the restarted process stores again.
KILLS = 3
#: Seconds the source stays paused (the spool cannot write) before the kill of kill-paused.
PAUSED = 3.0


async def kill_9(tmp: Path, url: str, stored: Stored) -> Result:
    rig_port = free_port()
    ws = Witskit(
        write_config(tmp / "pipeline.yaml", f"tcp-listen://127.0.0.1:{rig_port}", url), tmp / "data", tmp
    )
    rig = Rig()
    links: list[Link] = []
    unread: list[int | None] = []
    restarts: list[float] = []
    ws.start()
    try:
        async with pushing(rig, rig_port, links.append):
            await stored.until(lambda: len(stored.counts) >= RATE, timeout=WAIT)
            for kill in range(KILLS):
                await asyncio.sleep(1.0)
                link = links[-1]
                assert ws.proc is not None
                # What the kernel holds unread (acknowledged to the rig, not yet read) at the kill.
                unread.append(rx_queue(rig_port, link.sock.getsockname()[1]))
                ws.proc.kill()
                await asyncio.to_thread(ws.proc.wait, 10)
                ws.start()
                restarts.append(time.monotonic())
                await stored.until(
                    lambda k=kill: len(links) > k + 1 and _stores_after(rig, stored, restarts[-1])
                )
            await asyncio.sleep(1.0)
        await stored.until(lambda: rig.acked <= set(stored.counts), timeout=15)
        status = await ws.stop()
        lost = sorted(rig.acked - set(stored.counts))
        printed = ws.printed()
        note = (
            f"{KILLS} kills; unread in the kernel at each: {', '.join(f'{b} B' for b in unread)}; "
            f"lost {_ranges(lost)} (printed before the kill: {len(printed & set(lost))}); exit {status}"
        )
        return tally("kill-9", rig, stored, printed, restarts, note)
    finally:
        await ws.stop()


async def kill_9_paused(tmp: Path, url: str, stored: Stored, *, term: bool = False) -> Result:
    """kill -9 (or SIGTERM) while the source is paused because the spool cannot write (its file
    size limit lowered: EFBIG), then a restart: what TCP had acknowledged to the rig meanwhile."""
    rig_port = free_port()
    ws = Witskit(
        write_config(tmp / "pipeline.yaml", f"tcp-listen://127.0.0.1:{rig_port}", url), tmp / "data", tmp
    )
    rig = Rig()
    links: list[Link] = []
    proc = ws.start(preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN))
    try:
        async with pushing(rig, rig_port, links.append):
            await stored.until(lambda: len(stored.counts) >= RATE, timeout=WAIT)
            said = len(ws.stderr())
            # No file of the process may grow: each spool append fails (EFBIG).
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
            paused = await wait_for(lambda: "spool cannot write" in ws.stderr()[said:], timeout=15)
            await asyncio.sleep(PAUSED)
            link = links[-1]
            unread = rx_queue(rig_port, link.sock.getsockname()[1])
            first = await ws.stop() if term else None
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)
            ws.start()
            fault_end = time.monotonic()
            await stored.until(lambda: len(links) > 1 and _stores_after(rig, stored, fault_end))
            await asyncio.sleep(1.0)
        after = {s for s in rig.acked if rig.sent_at[s] > fault_end}
        await stored.until(lambda: after <= set(stored.counts), timeout=10)
        status = await ws.stop()
        lost = sorted(rig.acked - set(stored.counts))
        note = (
            f"paused {'yes' if paused else 'NO'} {PAUSED:.0f} s, then "
            f"{f'SIGTERM (exit {first}, said {_said_lost(ws.stderr())} not stored)' if term else 'killed'}; "
            "unread in the kernel then: "
            f"{unread} B; lost {_ranges(lost)}; exit {status}"
        )
        return tally("term-paused" if term else "kill-paused", rig, stored, ws.printed(), fault_end, note)
    finally:
        await ws.stop()


def _said_lost(stderr: str) -> int:
    """The frames witskit said it received but did not store (its exit line), summed over runs."""
    return sum(int(n) for n in re.findall(r"(\d+) frame\(s\) received were not stored", stderr))


def _stores_after(rig: Rig, stored: Stored, t: float) -> bool:
    return any(rig.sent_at.get(s, 0.0) > t for s in stored.counts)


def _ranges(seqs: list[int]) -> str:
    if not seqs:
        return "none"
    out, start, prev = [], seqs[0], seqs[0]
    for s in [*seqs[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(f"{start}" if start == prev else f"{start}..{prev}")
        if s is not None:
            start = prev = s
    return ",".join(out)


async def flapping(tmp: Path, url: str, stored: Stored) -> Result:
    """An EDR that accepts and closes at once for FLAP seconds, then serves."""
    flap = 8.0
    rig = Rig()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    ws = Witskit(write_config(tmp / "pipeline.yaml", f"tcp://127.0.0.1:{port}", url), tmp / "data", tmp)
    loop = asyncio.get_running_loop()
    accepts: list[float] = []
    serving = asyncio.Event()
    stop = asyncio.Event()
    servers: set[asyncio.Task[None]] = set()

    async def edr() -> None:
        while not stop.is_set():
            sock, _ = await loop.sock_accept(listener)
            accepts.append(time.monotonic())
            if not serving.is_set():
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()  # accept and close at once (a reset, as a busy single-client EDR does)
                continue
            sock.setblocking(False)
            task = asyncio.create_task(rig.serve(Link(sock, rig), stop))
            servers.add(task)

    acceptor = asyncio.create_task(edr())
    start = time.monotonic()
    ws.start()
    try:
        await asyncio.sleep(flap)
        serving.set()
        fault_end = time.monotonic()
        flaps = [t for t in accepts if t <= fault_end]
        await wait_for(lambda: bool(servers), timeout=30)
        back = min(t for t in accepts if t > fault_end) - fault_end if servers else None
        await asyncio.sleep(4.0)
        stop.set()
        acceptor.cancel()
        await asyncio.gather(acceptor, *servers, return_exceptions=True)
        await stored.until(lambda: bool(rig.acked) and rig.acked <= set(stored.counts), timeout=15)
        status = await ws.stop()
        rate = (len(flaps) - 1) / (flaps[-1] - flaps[0]) if len(flaps) > 1 else 0.0
        back_text = f"{back:.1f} s" if back is not None else "never"
        note = (
            f"{len(flaps)} connections in {fault_end - start:.1f} s ({rate:.1f}/s); back {back_text}; "
            f"exit {status}"
        )
        return tally("flapping", rig, stored, ws.printed(), fault_end, note)
    finally:
        stop.set()
        acceptor.cancel()
        with contextlib.suppress(BaseException):
            await acceptor
        listener.close()
        await ws.stop()


SCENARIOS = {
    "db-down": database_down,
    "disk-full": disk_full,
    "kill-9": kill_9,
    "kill-paused": kill_9_paused,
    "term-paused": functools.partial(kill_9_paused, term=True),
    "flapping": flapping,
}


async def measure(scenario: Callable[[Path, str, Stored], Awaitable[Result]], tmp: Path, url: str) -> Result:
    """Run ``scenario`` while its database is polled in the background."""
    stored = Stored(url)
    try:
        async with stored.polling():
            return await scenario(tmp, url, stored)
    except Exception:  # show what witskit said before the error propagates
        for log in sorted(tmp.glob("err-*.txt")):
            print(
                f"--- {log.name} (last lines)", *log.read_text(errors="replace").splitlines()[-15:], sep="\n"
            )
        raise
    finally:
        await stored.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    args = parser.parse_args()
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        for name in args.scenarios or SCENARIOS:
            place = Path(tmp) / name
            place.mkdir()
            try:
                with database("postgresql", place) as url:
                    results.append(asyncio.run(measure(SCENARIOS[name], place, url)))
            except pytest.skip.Exception as exc:  # no PostgreSQL here: say so, measure the rest
                print(f"{name}: skipped: {exc}", file=sys.stderr)
            except Exception as exc:  # a scenario that breaks is reported; the others still run
                print(f"{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    columns = ("scenario", "sent", "acked", "printed", "stored", "lost", "dup", "recover")
    rows = [
        (
            r.name,
            r.sent,
            r.acked,
            r.printed,
            r.stored,
            r.lost,
            r.dup,
            "never" if r.recover is None else f"{r.recover:.1f} s",
        )
        for r in results
    ]
    widths = [max(len(str(v)) for v in column) for column in zip(columns, *rows, strict=True)]
    for row in (columns, *rows):
        print(
            " ".join(
                f"{v!s:<{w}}" if i == 0 else f"{v!s:>{w}}"
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for r in results:
        print(f"  {r.name}: {r.note}")


if __name__ == "__main__":
    main()
