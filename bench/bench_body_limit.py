"""Memory of a real server receiving one unauthenticated oversized POST to ``/api/v1/auth/logout``.

Run:  PYTHONPATH=src .venv/bin/python bench/bench_body_limit.py [--mib 300]

Prints how far the server's RSS grew as a ratio of the body offered. Before the body limit, one
300 MiB POST grew the server by 650-725 MiB (ratio ~2.2: the body, then its decoded copy) that it
kept; with it, the server answers 413 after the first 16 KiB and reads no more (ratio ~0).
The server runs in this process (uvicorn on 127.0.0.1, port 0), so its RSS is this process's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "service"))


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run(mib: int) -> None:
    from service_helpers import make_config, serving

    with tempfile.TemporaryDirectory() as tmp:
        async with serving(make_config(Path(tmp)), ingest=False) as bound:
            before = rss_mib()
            parts = urlsplit(bound.url)
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            total = mib << 20
            writer.write(
                b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {total}\r\n\r\n".encode()
            )
            answer = asyncio.create_task(reader.readline())
            chunk, sent = b"x" * (1 << 20), 0
            try:
                while sent < total and not answer.done():
                    writer.write(chunk)
                    await asyncio.wait_for(writer.drain(), 30)
                    sent += len(chunk)
            except (ConnectionError, TimeoutError):
                pass
            status = (await asyncio.wait_for(answer, 60)).decode().strip()
            writer.close()
            await asyncio.sleep(1)
            grown = rss_mib() - before
    print(f"answer: {status}")
    print(f"sent before the answer: {sent / 2**20:.0f} of {mib} MiB")
    print(f"RSS growth: {grown:.0f} MiB = {grown / mib:.2f} x the body offered")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300, help="body size offered (MiB)")
    asyncio.run(run(parser.parse_args().mib))


if __name__ == "__main__":
    main()
