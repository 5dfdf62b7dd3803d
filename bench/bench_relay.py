"""Ingest -> consumer latency of the WITS relay: 50 consumers on one ``wits-serve://`` of 10 rigs at 1 Hz.

Run:  PYTHONPATH=src .venv/bin/python bench/bench_relay.py [--seconds 10] [--consumers 50] [--rigs 10]
      (``--seconds 3`` for a quick look)

Three runs, printed side by side, with the same rigs and the same consumer process:

* baseline: a bare asyncio fan-out server writes each frame to every consumer the moment the rig
  makes it (no parser, no spool, no pipeline): what loopback TCP and the consumers cost;
* relay: the rigs are sources of a real :class:`~witskit.pipeline.Pipeline` with a real spool
  (its default fsync policy) and a ``wits-serve://`` relay sink, which the consumers read;
* relay + hostile: the same, while another process attacks the relay: a consumer that never
  reads, one that sends garbage as fast as it can, and 10,000 connection attempts held open (the
  relay's cap, ``max_consumers=64``, refuses all but a few). The good consumers' latency and the
  relay process's peak RSS growth are printed.

Each frame carries the rig's ``CLOCK_MONOTONIC`` time in nanoseconds (an extra data line, ``0199``,
that the relay passes on unchanged with the EDR's own bytes); the consumers run in a separate
process and subtract it from their own clock at receipt. The goal is relay p99 < 50 ms. Bounded:
``--seconds`` per run (10 s by default: 10 rigs x 10 frames x 50 consumers = 5,000 samples).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

STAMP = b"0199"


def rig_frame(rig: int, seq: int) -> bytes:
    """A record-1 frame of a rig (header items and a few channels) stamped with the time it is made."""
    stamp = time.monotonic_ns()
    lines = [
        b"&&",
        b"1984PASON/EDR",
        f"0101RIG-{rig:02d}".encode(),
        f"0104{seq}".encode(),
        b"01083650.40",
        b"01103650.40",
        b"011323.38",
        b"0117120.0",
        b"0121220.5",
        STAMP + str(stamp).encode(),
        b"!!",
    ]
    return b"\r\n".join(lines) + b"\r\n"


async def rig_ticks(rig: int, rigs: int, seconds: float) -> AsyncIterator[bytes]:
    """A rig at 1 Hz, its phase spread over the second so the rigs do not all send at once."""
    start = time.monotonic() + 0.5 + rig / rigs
    for seq in range(int(seconds)):
        delay = start + seq - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield rig_frame(rig, seq)


# Consumers (a separate process) --------------------------------------------------------------------
async def consume(port: int, consumers: int, expected: int, timeout: float) -> list[float]:
    latencies: list[float] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        buffer = b""
        seen = 0
        try:
            async with asyncio.timeout(timeout):
                while seen < expected:
                    chunk = await reader.read(65536)
                    if not chunk:
                        return
                    now = time.monotonic_ns()
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\r\n")
                    for line in lines:
                        if line.startswith(STAMP):
                            latencies.append((now - int(line[4:])) / 1e6)
                            seen += 1
        except TimeoutError:
            pass
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(consumers)))
    return latencies


async def hostile(port: int, seconds: float, attempts: int) -> None:
    import os

    deaf = await asyncio.open_connection("127.0.0.1", port, limit=1024)
    deaf[1].transport.pause_reading()  # never reads: its queue fills, then drops
    noisy = await asyncio.open_connection("127.0.0.1", port)
    held: list[asyncio.StreamWriter] = []

    async def flood() -> None:
        for start in range(0, attempts, 200):
            batch = await asyncio.gather(
                *(asyncio.open_connection("127.0.0.1", port) for _ in range(min(200, attempts - start))),
                return_exceptions=True,
            )
            held.extend(pair[1] for pair in batch if isinstance(pair, tuple))

    async def garbage() -> None:
        end = time.monotonic() + seconds
        with contextlib.suppress(ConnectionError):
            while time.monotonic() < end:
                noisy[1].write(os.urandom(65536).replace(b"&", b"?"))
                await noisy[1].drain()
                await asyncio.sleep(0.01)

    await asyncio.gather(flood(), garbage())
    for writer in [*held, deaf[1], noisy[1]]:
        writer.close()


def consumer_main(port: int, consumers: int, expected: int, timeout: float) -> None:
    latencies = asyncio.run(consume(port, consumers, expected, timeout))
    print(json.dumps(latencies))


def start_consumers(port: int, consumers: int, expected: int, timeout: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--consumer", str(port), str(consumers), str(expected), str(timeout)],
        stdout=subprocess.PIPE,
        text=True,
    )


async def wait_consumers(count: int, connected: Callable[[], int]) -> None:
    async with asyncio.timeout(30):
        while connected() < count:
            await asyncio.sleep(0.02)


# The two runs ------------------------------------------------------------------------------------
async def baseline(args: argparse.Namespace) -> list[float]:
    writers: set[asyncio.StreamWriter] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        await reader.read()  # until the consumer leaves
        writers.discard(writer)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = start_consumers(port, args.consumers, args.rigs * int(args.seconds), args.seconds + 10)
    await wait_consumers(args.consumers, lambda: len(writers))

    async def rig(i: int) -> None:
        async for frame in rig_ticks(i, args.rigs, args.seconds):
            for writer in tuple(writers):
                writer.write(frame)

    await asyncio.gather(*(rig(i) for i in range(args.rigs)))
    out, _ = await asyncio.to_thread(proc.communicate)
    server.close()
    return list(json.loads(out))


async def relay(
    args: argparse.Namespace, *, attacked: bool = False
) -> tuple[list[float], dict[str, int], float]:
    from witskit.pipeline import Pipeline, open_sink
    from witskit.pipeline.relay import RelaySink
    from witskit.protocol import FrameParser
    from witskit.storage.spool import Spool
    from witskit.transport.base import Source, SourceEvent

    class Rig(Source):
        def __init__(self, index: int) -> None:
            self.index = index
            self.name = f"rig-{index:02d}"
            self.go = asyncio.Event()

        async def events(self) -> AsyncIterator[SourceEvent]:
            await self.go.wait()
            parser = FrameParser(source=self.name)
            async for frame in rig_ticks(self.index, args.rigs, args.seconds):
                for event in parser.feed(frame):
                    yield event

        async def aclose(self) -> None:
            pass

    sink = open_sink("wits-serve://127.0.0.1:0?max_consumers=64")
    assert isinstance(sink, RelaySink)
    rigs = [Rig(i) for i in range(args.rigs)]
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp) / "spool")
        pipe = Pipeline(rigs, [sink], spool)
        task = asyncio.create_task(pipe.run())
        while sink.outlet._server is None:
            await asyncio.sleep(0.01)
        proc = start_consumers(sink.port, args.consumers, args.rigs * int(args.seconds), args.seconds + 10)
        await wait_consumers(args.consumers, lambda: sink.stats.consumers)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        attack = None
        if attacked:
            attack = subprocess.Popen(
                [sys.executable, __file__, "--hostile", str(sink.port), str(args.seconds), "10000"]
            )
        for rig in rigs:
            rig.go.set()
        out, _ = await asyncio.to_thread(proc.communicate)
        if attack is not None:
            await asyncio.to_thread(attack.wait, 60)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
        pipe.stop()
        await task
        spool.close()
    return list(json.loads(out)), sink.counters(), grown


def summary(latencies: list[float]) -> tuple[float, float, float]:
    if len(latencies) < 2:
        return (float("nan"),) * 3
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return q[49], q[98], max(latencies)


async def main(args: argparse.Namespace) -> None:
    expected = args.consumers * args.rigs * int(args.seconds)
    print(
        f"{args.consumers} consumers, {args.rigs} rigs at 1 Hz, {args.seconds:g} s per run: "
        f"{expected:,} deliveries expected per run"
    )
    base = await baseline(args)
    relayed, counters, _ = await relay(args)
    attacked, hostile_counters, grown = await relay(args, attacked=True)
    b50, b99, bmax = summary(base)
    r50, r99, rmax = summary(relayed)
    h50, h99, hmax = summary(attacked)
    print(f"{'':16} {'samples':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{'baseline':16} {len(base):>8,} {b50:>8.2f} {b99:>8.2f} {bmax:>8.2f}")
    print(f"{'relay':16} {len(relayed):>8,} {r50:>8.2f} {r99:>8.2f} {rmax:>8.2f}")
    print(f"{'relay + hostile':16} {len(attacked):>8,} {h50:>8.2f} {h99:>8.2f} {hmax:>8.2f}")
    goal = "met" if r99 < 50 else "NOT met"
    print(f"relay / baseline: p50 x{r50 / b50:.1f}, p99 x{r99 / b99:.1f}; goal p99 < 50 ms: {goal}")
    print(f"relay counters: {counters}")
    print(f"relay + hostile counters: {hostile_counters}")
    print(f"relay + hostile: peak RSS of the relay process grew {grown:.1f} MiB")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--hostile":
        port, seconds, attempts = sys.argv[2:5]
        asyncio.run(hostile(int(port), float(seconds), int(attempts)))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--consumer":
        port, consumers, expected, timeout = sys.argv[2:6]
        consumer_main(int(port), int(consumers), int(expected), float(timeout))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run (bounded)")
    parser.add_argument("--consumers", type=int, default=50)
    parser.add_argument("--rigs", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
