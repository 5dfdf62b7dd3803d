"""The LAS and WITSML routes under load: how long an export takes, and what it costs everyone else.

Run:  .venv/bin/python bench/bench_export_route.py            (6 hours of 1 Hz record 1: ~40 s)
      .venv/bin/python bench/bench_export_route.py --quick    (1 hour, a few seconds)

A real ``witskit serve`` process over a SQLite store of one simulated rig, on loopback. Measured:

1. one export of each kind alone (``GET /api/v1/data/las`` by time and depth, ``/data/witsml``
   1.4.1.1 and 2.0, the ten channels of the dashboard), in seconds and MB;
2. the latency of a cheap authenticated request (``GET /api/v1/latest?source=rig-1``), sent on a
   fixed schedule (20 a second, counted from when each was due), with the service idle (the
   baseline, in the same run) and while exports are being built: one (the default bound), or
   two at once (``--at-once 2``, with ``WITS_EXPORT_MAX_CONCURRENT=2``) and a third refused. The
   exports are built in worker threads with their own event loop and database connection, so the
   ratio says what they cost the service's loop through the GIL they share.

Nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx

SERVING = re.compile(r"WitsKit is serving at (http://\S+)")
ADMIN, PASSWORD = "bench-admin", "bench-password-0123456789"
CODES = "0108,0110,0113,0114,0116,0120,0118,0121,0130,0126"
KINDS = {
    "las time": ("/data/las", {"index": "time"}),
    "las depth": ("/data/las", {"index": "depth"}),
    "witsml 1.4.1.1": ("/data/witsml", {"version": "1.4.1.1"}),
    "witsml 2.0": ("/data/witsml", {"version": "2.0"}),
}


async def populate(url: str, seconds: int) -> int:
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.sim.model import DrillingSimulator
    from witskit.storage.store import Store

    data = b"".join(DrillingSimulator(7, records=(1,)).frames(seconds))
    frames = [f for f in iter_decode(data, source="rig-1") if isinstance(f, DecodedFrame)]
    async with await Store.open(url) as store:
        for i in range(0, len(frames), 2000):
            await store.write(frames[i : i + 2000])
    return sum(len(f.codes) for f in frames)


def latencies(base: str, auth: dict[str, str], seconds: float, rate: float = 20.0) -> list[float]:
    """Open loop: request k is due at k / rate; its latency counts from then."""
    out = []
    with httpx.Client(base_url=base, headers=auth, timeout=60) as client:
        t0 = time.perf_counter()
        for k in range(int(seconds * rate)):
            due = t0 + k / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            client.get("/api/v1/latest", params={"source": "rig-1"}).raise_for_status()
            out.append((time.perf_counter() - due) * 1000)
    return out


def summary(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49]:7.1f} ms  p99 {q[98]:7.1f} ms  max {max(values):7.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 hour of data instead of 6")
    ap.add_argument("--at-once", type=int, default=1, choices=[1, 2], help="exports built at once")
    args = ap.parse_args()
    seconds = 3600 if args.quick else 6 * 3600
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        points = asyncio.run(populate(url, seconds))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("WITS_")},
            "WITS_DATA_DIR": tmp,
            "WITS_DATABASE_URL": url,
            "WITS_ADMIN_USERNAME": ADMIN,
            "WITS_ADMIN_PASSWORD": PASSWORD,
            "WITS_LOG_LEVEL": "WARNING",
            "WITS_METRICS_ENABLED": "false",
            "WITS_EXPORT_MAX_CONCURRENT": str(args.at_once),
        }
        cmd = [sys.executable, "-m", "witskit", "serve", "--host", "127.0.0.1", "--port", "0"]
        server = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=tmp)
        try:
            assert server.stderr is not None
            base = next(m.group(1) for line in server.stderr if (m := SERVING.search(line)))
            stderr = server.stderr
            threading.Thread(target=stderr.read, daemon=True).start()  # a full pipe would block it
            login = {"username": ADMIN, "password": PASSWORD}
            token = httpx.post(f"{base}/api/v1/auth/token", data=login).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            print(f"store: {seconds / 3600:g} h of 1 Hz record 1, {points:,} points; exports of 10 channels")
            for name, (path, extra) in KINDS.items():
                t0 = time.perf_counter()
                r = httpx.get(f"{base}/api/v1{path}", params={"source": "rig-1", "codes": CODES, **extra},
                              headers=auth, timeout=600)  # fmt: skip
                took = time.perf_counter() - t0
                print(f"  {name:15s} {r.status_code}  {len(r.content) / 1e6:6.2f} MB  {took:6.2f} s")

            idle = latencies(base, auth, 5 if args.quick else 10)
            statuses: list[int] = []

            def export(path: str, extra: dict[str, Any], user_auth: dict[str, str]) -> None:
                params = {"source": "rig-1", "codes": CODES, **extra}
                r = httpx.get(f"{base}/api/v1{path}", params=params, headers=user_auth, timeout=600)
                statuses.append(r.status_code)

            # Two users' exports at once (one per user), and a third user's refused meanwhile.
            users = []
            for n in range(3):
                name = f"bench-user-{n}"
                httpx.post(f"{base}/api/v1/users", headers=auth, json={"username": name, "password": PASSWORD,
                           "roles": ["viewer"]}).raise_for_status()  # fmt: skip
                tok = httpx.post(f"{base}/api/v1/auth/token", data={"username": name, "password": PASSWORD})
                users.append({"Authorization": f"Bearer {tok.json()['access_token']}"})
            busy: list[float] = []
            rounds = 0
            deadline = time.monotonic() + (5 if args.quick else 10)
            while time.monotonic() < deadline or rounds == 0:
                workers = [
                    threading.Thread(target=export, args=("/data/witsml", {"version": "2.0"}, users[0])),
                    threading.Thread(target=export, args=("/data/las", {"index": "time"}, users[1])),
                ][: args.at_once]
                for w in workers:
                    w.start()
                time.sleep(0.3)
                if args.at_once == 2:
                    export("/data/las", {"index": "depth"}, users[2])  # a third at once: refused
                busy += latencies(base, auth, 2)
                for w in workers:
                    w.join()
                rounds += 1
            print(f"cheap request, idle:                      {summary(idle)}")
            print(f"cheap request, {args.at_once} export(s) being built: {summary(busy)}")
            ratio = statistics.quantiles(busy, n=100)[98] / statistics.quantiles(idle, n=100)[98]
            print(f"p99 ratio busy / idle: {ratio:.1f}; export statuses seen: {sorted(set(statuses))}")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
