"""Throughput of the durable spool: appends/s per fsync policy, group commit, open, replay and ack.

Run:  .venv/bin/python bench/bench_spool.py                   (about 15 s; writes bench/out/spool.json)
      .venv/bin/python bench/bench_spool.py --dir /data/tmp   (measure on the disk the spool will use)

Numbers depend on the disk far more than on Python: ``fsync="always"`` is one ``fdatasync`` per
append, so its single-append rate is the disk's sync rate (a few hundred to a few thousand per
second); batching with ``append_many`` amortises it. Reported, not asserted.

What it measures (400-byte payloads, a WITS record-1 frame is about that size):
1. ``append`` one record at a time, per fsync policy (time-capped).
2. ``append_many`` of 1000 records, per fsync policy: batches/s and records/s.
3. Opening a spool with a backlog (the crash-recovery scan, CRC of every record).
4. Replay: ``pending()`` in one pass, and in pipeline-style batches ``pending(after=last, limit=1000)``.
5. ``ack`` every 1000 records while draining the backlog (each ack stores the ack file atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from witskit.storage.spool import Spool

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

PAYLOAD = b"&&\r\n" + b"0108 1234.56\r\n" * 28 + b"!!\r\n"
PAYLOAD = PAYLOAD[:400].ljust(400, b"x")
POLICIES = ("always", "interval", "never")


def filesystem_of(path: Path) -> str:
    """The mount point and filesystem type holding path (best effort, Linux)."""
    best = ("?", "?")
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                _dev, mount, fstype, *_ = line.split()
                if str(path.resolve()).startswith(mount) and len(mount) >= len(best[0]):
                    best = (mount, fstype)
    except OSError:
        pass
    return f"{best[1]} at {best[0]}"


def bench_single(root: Path, policy: str, seconds: float, cap: int) -> dict[str, float]:
    d = root / f"single-{policy}"
    with Spool(d, fsync=policy) as spool:
        n = 0
        t0 = time.perf_counter()
        while n < cap and time.perf_counter() - t0 < seconds:
            spool.append(PAYLOAD)
            n += 1
        elapsed = time.perf_counter() - t0
    shutil.rmtree(d)
    return {"records": n, "seconds": elapsed, "appends_per_s": n / elapsed}


def bench_batches(root: Path, policy: str, seconds: float, batch: int = 1000) -> dict[str, float]:
    d = root / f"batch-{policy}"
    payloads = [PAYLOAD] * batch
    with Spool(d, fsync=policy) as spool:
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            spool.append_many(payloads)
            n += 1
        elapsed = time.perf_counter() - t0
    shutil.rmtree(d)
    return {
        "batches": n,
        "batch_size": batch,
        "batches_per_s": n / elapsed,
        "records_per_s": n * batch / elapsed,
        "mb_per_s": n * batch * len(PAYLOAD) / elapsed / 1e6,
        "ms_per_batch": elapsed / n * 1000,
    }


def bench_replay(root: Path, records: int) -> dict[str, float]:
    d = root / "replay"
    with Spool(d, fsync="never") as spool:
        for _ in range(records // 1000):
            spool.append_many([PAYLOAD] * 1000)
        spool.sync()
    out: dict[str, float] = {"records": records, "bytes": records * (len(PAYLOAD) + 24)}

    t0 = time.perf_counter()
    spool = Spool(d, fsync="interval")
    out["open_seconds"] = time.perf_counter() - t0
    out["open_records_per_s"] = records / out["open_seconds"]

    t0 = time.perf_counter()
    n = sum(1 for _ in spool.pending())
    elapsed = time.perf_counter() - t0
    assert n == records
    out["replay_records_per_s"] = n / elapsed
    out["replay_mb_per_s"] = n * len(PAYLOAD) / elapsed / 1e6

    t0 = time.perf_counter()
    after, n = 0, 0
    while batch := list(spool.pending(after=after, limit=1000)):
        after = batch[-1][0]
        n += len(batch)
    elapsed = time.perf_counter() - t0
    assert n == records
    out["replay_batched_records_per_s"] = n / elapsed

    t0 = time.perf_counter()
    acks = 0
    for seq in range(1000, records + 1, 1000):
        spool.ack(seq)
        acks += 1
    elapsed = time.perf_counter() - t0
    out["acks_per_s"] = acks / elapsed
    out["ack_ms"] = elapsed / acks * 1000
    assert spool.pending_count == 0
    spool.close()
    shutil.rmtree(d)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to create the spools (default: temp)")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per append measurement")
    parser.add_argument("--replay-records", type=int, default=200_000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="witskit-bench-spool-", dir=args.dir))
    results: dict[str, object] = {
        "payload_bytes": len(PAYLOAD),
        "filesystem": filesystem_of(root),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    try:
        print(f"spool benchmark in {root} ({results['filesystem']}), {len(PAYLOAD)}-byte payloads")
        single = {p: bench_single(root, p, args.seconds, cap=1_000_000) for p in POLICIES}
        batches = {p: bench_batches(root, p, args.seconds) for p in POLICIES}
        replay = bench_replay(root, args.replay_records)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results.update(append=single, append_many=batches, replay=replay)

    print(f"\n{'fsync':<10}{'append/s':>14}{'append_many(1000)/s':>22}{'records/s':>14}{'ms/batch':>10}")
    for p in POLICIES:
        s, b = single[p], batches[p]
        print(
            f"{p:<10}{s['appends_per_s']:>14,.0f}{b['batches_per_s']:>22,.1f}"
            f"{b['records_per_s']:>14,.0f}{b['ms_per_batch']:>10.2f}"
        )
    print(
        f"\nbacklog of {replay['records']:,} records ({replay['bytes'] / 1e6:.0f} MB):\n"
        f"  open (scan + CRC)        {replay['open_seconds']:.2f} s "
        f"({replay['open_records_per_s']:,.0f} records/s)\n"
        f"  replay, one pass         {replay['replay_records_per_s']:,.0f} records/s "
        f"({replay['replay_mb_per_s']:.0f} MB/s of payload)\n"
        f"  replay, batches of 1000  {replay['replay_batched_records_per_s']:,.0f} records/s\n"
        f"  ack every 1000           {replay['acks_per_s']:,.0f} acks/s ({replay['ack_ms']:.2f} ms each)"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "spool.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {OUT / 'spool.json'}")


if __name__ == "__main__":
    main()
