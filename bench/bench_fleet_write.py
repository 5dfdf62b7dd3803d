"""A central worker's write alone: batches of a 1000-rig fleet's frames into PostgreSQL.

Run:  PYTHONPATH=src .venv/bin/python bench/bench_fleet_write.py                (1000 rigs, 10 writes)
      PYTHONPATH=src .venv/bin/python bench/bench_fleet_write.py --per-rig 5    (a catch-up batch)
      PYTHONPATH=src .venv/bin/python bench/bench_fleet_write.py --profile      (cProfile, top 15)

What ``bench_fleet.py`` measures end to end, without the rigs, edges and NATS: one
``Store.write`` per batch holding ``--per-rig`` 40-item frames of every rig (a worker's batch
holds about one frame per rig when live, several when catching up), into a fresh database
(created with a unique name, dropped after). Printed, never asserted: seconds per write
(min, median, max), frames and points per second, and the client's CPU seconds per write (the rest
of a write's time is the server's), and the server's: every ``postgres`` process's CPU (the
machine's server is taken to serve this bench alone while it runs).

Each rig's frames are a second apart, as a backlog's. ``--new-block-min N`` sets the store's
threshold for new blocks (``_NEW_BLOCK_MIN_FRAMES``, 16: from that many frames of a source's hour in
one write, a fresh hour becomes blocks); 256 writes rows below the bulk threshold, as before it:
``--per-rig 40 --rigs 200 --writes 3`` is a catch-up's writes, ``--per-rig 40 --rigs 25 --writes 90``
an hour of a long one (the first writes of each hour make blocks and append to them while they
hold at most 4 times a write, the rest are rows).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_fleet import ITEMS, frame  # noqa: E402
from support.databases import admin_url, temporary_database  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def server_cpu() -> dict[int, float]:
    """CPU seconds of every ``postgres`` process, by pid (exited backends: the postmaster's ``cutime``)."""
    out: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        name, _, rest = stat.partition(" (")[2].partition(") ")
        if name != "postgres":
            continue
        f = rest.split()
        out[int(proc.name)] = sum(int(x) for x in f[11:15]) / _TICK
    return out


def server_used(before: dict[int, float]) -> float:
    """CPU seconds the server's processes used since ``before``."""
    after = server_cpu()
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


async def run(
    url: str, rigs: int, per_rig: int, writes: int, profile: bool, new_block_min: int | None
) -> None:
    from witskit.protocol import WITSDecoder
    from witskit.storage import Store, _postgres

    if new_block_min is not None:
        _postgres._NEW_BLOCK_MIN_FRAMES = new_block_min  # type: ignore[misc]

    decoder = WITSDecoder()
    base = time.time() - 3 * 3600
    batches = [
        [
            decoder.decode_frame(frame(rig, seq, at=base + seq), source=f"rig-{rig:04d}")
            for seq in range(1 + n * per_rig, 1 + (n + 1) * per_rig)
            for rig in range(rigs)
        ]
        for n in range(writes + 1)
    ]
    store = await Store.open(url, timeout=60)
    try:
        await store.write(batches[0])  # sources and this month's partitions made: not measured
        prof = cProfile.Profile() if profile else None
        took: list[float] = []
        cpu = time.process_time()
        server = server_cpu()
        if prof is not None:
            prof.enable()
        for batch in batches[1:]:
            start = time.perf_counter()
            await store.write(batch)
            took.append(time.perf_counter() - start)
        if prof is not None:
            prof.disable()
        cpu = time.process_time() - cpu
        server_s = server_used(server)
    finally:
        await store.aclose()
    frames = rigs * per_rig * writes
    print(
        f"{rigs} rigs x {per_rig} frame(s) per write, {writes} writes: {min(took):.2f} / "
        f"{statistics.median(took):.2f} / {max(took):.2f} s per write (min / median / max); "
        f"{frames / sum(took):,.0f} frames/s = {frames * ITEMS / sum(took):,.0f} points/s; "
        f"client CPU {cpu / writes:.2f} s per write; server CPU {server_s / writes:.2f} s per write "
        f"({frames / server_s:,.0f} frames per server CPU second)"
    )
    if prof is not None:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rigs", type=int, default=1000)
    parser.add_argument("--per-rig", type=int, default=1)
    parser.add_argument("--writes", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--new-block-min", type=int, default=None)
    args = parser.parse_args()
    with temporary_database("postgresql", admin_url("postgresql")) as url:
        asyncio.run(run(url, args.rigs, args.per_rig, args.writes, args.profile, args.new_block_min))


if __name__ == "__main__":
    main()
