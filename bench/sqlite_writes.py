"""Write latency on the embedded SQLite with event streams open, against none open.

Run:  .venv/bin/python bench/sqlite_writes.py [--writes 200] [--streams 3]

The real API over HTTP (uvicorn in a thread) on a fresh SQLite file, with the test Redis as
broker (VIRTNET_TEST_REDIS, or the shared one). A write is `POST /v1/networks` (define) then
`DELETE` of the same network: two write transactions, no host involved. Measured first with no
stream open, then with `--streams` open `GET /v1/events` streams (the dashboard's and two
`virtnet event --loop`), each read continuously in its own thread; each round is preceded by
a few warm-up writes. Prints median and p90 per round and the ratio of medians.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import httpx  # noqa: E402

from app.cli.server import upgrade_database  # noqa: E402
from app.config import Settings  # noqa: E402
from tests import services  # noqa: E402
from tests.cluster import Cluster  # noqa: E402


def writes(client: httpx.Client, base: str, n: int, tag: str) -> list[float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        r = client.post(f"{base}/v1/networks", json={"name": f"{tag}{i}"})
        if r.status_code != 201:
            raise SystemExit(f"define failed: {r.status_code} {r.text}")
        r = client.delete(f"{base}/v1/networks/{tag}{i}")
        if r.status_code not in (200, 204):
            raise SystemExit(f"undefine failed: {r.status_code} {r.text}")
        times.append(time.perf_counter() - started)
    return sorted(times)


def hold_stream(client: httpx.Client, base: str, stop: threading.Event) -> None:
    with contextlib.suppress(httpx.HTTPError), client.stream("GET", f"{base}/v1/events") as r:
        for _ in r.iter_lines():
            if stop.is_set():
                return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--streams", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vnt-sqlite-") as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/virtnet.db",
            broker_url=services.redis_test_url(),
            state_dir=Path(tmp),
        )
        upgrade_database(settings)
        cluster = Cluster(settings, Path(tmp))
        try:
            base = cluster.serve_http()
            headers = dict(cluster.api.headers)
            client = httpx.Client(headers=headers, timeout=60)
            writes(client, base, 10, "warm")
            alone = writes(client, base, args.writes, "a")
            stop = threading.Event()
            stream_client = httpx.Client(headers=headers, timeout=httpx.Timeout(10, read=None))
            threads = [
                threading.Thread(target=hold_stream, args=(stream_client, base, stop), daemon=True)
                for _ in range(args.streams)
            ]
            for t in threads:
                t.start()
            writes(client, base, 10, "warm2-")
            streaming = writes(client, base, args.writes, "b")
            stop.set()
            stream_client.close()
            client.close()
        finally:
            cluster.close()

    def row(label: str, times: list[float]) -> str:
        median, p90 = times[len(times) // 2] * 1000, times[int(len(times) * 0.9)] * 1000
        return f"{label:28} | {len(times):6} | {median:9.2f} | {p90:7.2f}"

    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    print(f"{'define + undefine':28} | writes | median ms |  p90 ms")
    print(row("no event stream", alone))
    print(row(f"{args.streams} event streams open", streaming))
    ratio = streaming[len(streaming) // 2] / alone[len(alone) // 2]
    print(f"median with streams / without: {ratio:.2f}")


if __name__ == "__main__":
    main()
