"""1000 simulated rigs push into one listener: every frame decoded, latency and CPU reported.

Run:  .venv/bin/python bench/bench_listener.py   (1000 rigs, 60 s; writes bench/out/listener.json)
      .venv/bin/python bench/bench_listener.py --rigs 200 --seconds 10

Targets (transport issue): every frame decoded; p99 from the last byte received to the frame decoded
< 50 ms; the listener under one core. The listener (a ``tcp-listen://`` :class:`ListenerSource` plus
a :class:`WITSDecoder`) runs in this process; the rigs run in a separate process, so their CPU is
not counted. "Received" is the time the parser was fed the chunk that completed the frame (the
frame's receive timestamp); "decoded" is when decoding returned. CPU is this process's user+system
time over the run divided by wall time (1.0 = one full core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import resource
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

# 40 items of record 1 (header + the channels a driller watches), as a 40-item frame.
CODES = [f"01{i:02d}" for i in range(1, 41)]


def frame_bytes(rig: int, n: int) -> bytes:
    from witskit.protocol import encode_frame
    from witskit.symbols import WITS_SYMBOLS

    now = datetime.now(UTC)
    items: list[tuple[str, object]] = []
    for code in CODES:
        kind = WITS_SYMBOLS[code].data_type.value
        if code == "0101":
            items.append((code, f"RIG-{rig:04d}"))
        elif code == "0104":
            items.append((code, n))
        elif code == "0105":
            items.append((code, int(now.strftime("%y%m%d"))))
        elif code == "0106":
            items.append((code, int(now.strftime("%H%M%S"))))
        elif kind in ("S", "L"):
            items.append((code, (rig * 7 + n) % 200))
        else:
            items.append((code, round(1000 + rig + n * 0.1, 2)))
    return encode_frame(items)


def rigs_process(port: int, rigs: int, seconds: float, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    async def rig(i: int, start: float) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        del reader
        sent = 0
        await asyncio.sleep(random.random())  # spread the rigs over the second
        next_at = time.monotonic()
        while time.monotonic() - start < seconds:
            writer.write(frame_bytes(i, sent))
            await writer.drain()
            sent += 1
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        writer.close()
        await writer.wait_closed()
        return sent

    async def main() -> None:
        start = time.monotonic()
        ready.set()
        counts = await asyncio.gather(*(rig(i, start) for i in range(rigs)))
        (OUT / "listener-sent.json").write_text(json.dumps(sum(counts)))

    asyncio.run(main())


async def listen(rigs: int, seconds: float) -> dict[str, float]:
    from witskit.errors import FrameError
    from witskit.protocol import WITSDecoder
    from witskit.transport.listener import ListenerSource

    source = ListenerSource("127.0.0.1", 0, max_connections=rigs + 10, idle_timeout=30)
    await source.start()
    decoder = WITSDecoder(use_frame_time=False)
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=rigs_process, args=(source.port, rigs, seconds, ready))
    proc.start()
    latencies: list[float] = []
    errors = 0
    points = 0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()

    async def consume() -> None:
        nonlocal errors, points
        async for event in source:
            if isinstance(event, FrameError):
                errors += 1
                continue
            decoded = decoder.decode(event)
            done = datetime.now(UTC)
            points += len(decoded.codes)
            latencies.append((done - event.timestamp).total_seconds())

    consumer = asyncio.create_task(consume())
    while proc.is_alive():
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)  # let the last frames through
    wall = time.monotonic() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await source.aclose()
    await asyncio.wait_for(consumer, 10)
    sent = json.loads((OUT / "listener-sent.json").read_text())
    latencies.sort()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "rigs": rigs,
        "seconds": seconds,
        "frames_sent": sent,
        "frames_decoded": len(latencies),
        "frame_errors": errors,
        "points": points,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "cpu_cores": cpu / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rigs", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.rigs + 100)), hard))
    OUT.mkdir(exist_ok=True)
    report = asyncio.run(listen(args.rigs, args.seconds))
    print(
        f"{report['rigs']} rigs for {report['seconds']:.0f} s: sent {report['frames_sent']}, "
        f"decoded {report['frames_decoded']} ({report['frame_errors']} frame errors)\n"
        f"receive -> decoded: p50 {report['p50_ms']:.2f} ms, p99 {report['p99_ms']:.2f} ms "
        f"(target < 50 ms), max {report['max_ms']:.1f} ms\n"
        f"listener CPU: {report['cpu_cores']:.2f} cores (target < 1)"
    )
    (OUT / "listener.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
