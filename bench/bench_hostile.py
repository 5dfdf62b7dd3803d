"""Hostile peers against one listener while a good rig streams: bounded memory, no lost frames.

Run:  .venv/bin/python bench/bench_hostile.py     (about 30 s; writes bench/out/hostile.json)

At the same time, against one ``tcp-listen://`` listener (``max_connections`` 1024):
* a good rig sends 10 frames/s for the whole run;
* a peer sends binary garbage as fast as it can;
* a peer sends a 100 MB line with no newline;
* a slowloris peer sends one byte per second;
* 10,000 connection attempts are made (most are refused at the limit).
Reported: frames from the good rig sent vs received, frame errors per kind, connections
accepted/refused, and the listener process's peak RSS growth (target: bounded, tens of MB).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
GOOD_FRAME = b"&&\r\n0101GOOD RIG\r\n01083650.40\r\n011323.38\r\n!!\r\n"


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def main(seconds: float = 20.0, floods: int = 10_000) -> dict[str, object]:
    from witskit.errors import FrameError
    from witskit.transport.listener import ListenerSource

    source = ListenerSource("127.0.0.1", 0, max_connections=1024, idle_timeout=5, queue_size=4096)
    await source.start()
    port = source.port
    good_received = 0
    errors: dict[str, int] = {}
    rss0 = rss_mb()
    peak = rss0

    async def consume() -> None:
        nonlocal good_received, peak
        async for event in source:
            if isinstance(event, FrameError):
                errors[event.kind] = errors.get(event.kind, 0) + 1
            elif event.lines[0] == b"0101GOOD RIG":
                good_received += 1
            peak = max(peak, rss_mb()) if good_received % 50 == 0 else peak

    async def good_rig() -> int:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            w.write(GOOD_FRAME)
            await w.drain()
            sent += 1
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        w.close()
        with contextlib.suppress(Exception):
            await w.wait_closed()
        return sent

    async def garbage() -> None:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        junk = os.urandom(64 * 1024).replace(b"&", b"x")
        end = time.monotonic() + seconds
        with contextlib.suppress(ConnectionError):
            while time.monotonic() < end:
                w.write(junk)
                await w.drain()
        w.close()

    async def long_line() -> None:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        chunk = b"&&\r\n0108" + b"9" * (1 << 20)
        with contextlib.suppress(ConnectionError):
            for _ in range(100):  # 100 MB, no newline
                w.write(chunk)
                await w.drain()
        w.close()

    async def slowloris() -> None:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        with contextlib.suppress(ConnectionError):
            for byte in b"&&\r\n0108123.4" * 100:
                w.write(bytes([byte]))
                await w.drain()
                await asyncio.sleep(1.0)
        w.close()

    refused = 0

    async def flood() -> None:
        nonlocal refused
        writers = []
        for _ in range(floods):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                writers.append(w)
            except OSError:
                refused += 1
            if len(writers) >= 2000:  # stay within this process's file handles
                for w in writers:
                    w.close()
                writers.clear()
        await asyncio.sleep(1)
        for w in writers:
            w.close()

    consumer = asyncio.create_task(consume())
    slow = asyncio.create_task(slowloris())
    results = await asyncio.gather(good_rig(), garbage(), long_line(), flood(), return_exceptions=True)
    slow.cancel()
    await asyncio.sleep(1.0)
    peak = max(peak, rss_mb())
    report: dict[str, object] = {
        "good_sent": results[0],
        "good_received": good_received,
        "frame_errors": errors,
        "accepted": source.accepted,
        "refused_by_listener": source.refused,
        "refused_at_connect": refused,
        "rss_start_mb": round(rss0, 1),
        "rss_peak_mb": round(peak, 1),
        "max_frame_bytes": 65536,
    }
    await source.aclose()
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    return report


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))
    OUT.mkdir(exist_ok=True)
    result = asyncio.run(main())
    print(json.dumps(result, indent=2))
    (OUT / "hostile.json").write_text(json.dumps(result, indent=2))
