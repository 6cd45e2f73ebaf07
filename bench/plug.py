"""Port plugging: on the host (HostNet beside ip/bridge) and end to end through the API.

Run as root:  .venv/bin/python bench/plug.py [--host-ports 1000] [--e2e-ports 400] [--clients 16]

Host part: bench/hostnet.py's per-port and batched rows, in a throwaway namespace.
End-to-end part: a real control worker and host worker (its host is a throwaway namespace),
real PostgreSQL (a fresh database, dropped afterwards) and Redis, and the real API over
HTTP. Latency is POST /v1/networks/{net}/ports?wait=5 until the response says `plugged`;
throughput is plugs completed per second with N clients doing the same in a loop.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import hostnet  # noqa: E402
import httpx  # noqa: E402

from app.config import Settings  # noqa: E402
from app.services.schema import upgrade_database  # noqa: E402
from tests import netns, services  # noqa: E402
from tests.cluster import Cluster  # noqa: E402

OWNER = {"name": "bench", "uuid": "8d3f0c2e-5b7a-4c1d-9e6f-0a1b2c3d4e5f"}


def host_rows(ports: int) -> list[hostnet.Row]:
    rows: list[hostnet.Row] = []
    with hostnet.namespace() as ns, hostnet.HostNet(ns) as net:
        for name, bench in (
            ("brs", hostnet.bench_hostnet_single),
            ("brm", hostnet.bench_hostnet_batch),
            ("bri", lambda n, b, p: hostnet.bench_ip_commands(ns, n, b, p)),
            ("brb", lambda n, b, p: hostnet.bench_ip_batch(ns, n, b, p)),
        ):
            hostnet.new_bridge(net, name)
            hostnet.settle(net)
            rows += bench(net, name, hostnet.specs(name, ports))
            net.remove_bridge(name, "bench")
            hostnet.settle(net)
    return rows


def _plug(client: httpx.Client, base: str, mac: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    r = client.post(
        f"{base}/v1/networks/bench/ports?wait=5",
        json={"owner": OWNER, "host": "bench-host", "mac": mac},
    )
    took = time.perf_counter() - started
    if r.status_code != 201 or r.json()["state"] != "plugged":
        raise SystemExit(f"plug failed: {r.status_code} {r.text}")
    return took, r.json()


def e2e_rows(ports: int, clients: int) -> list[hostnet.Row]:
    url, dbname = services.create_pg_database()
    upgrade_database(Settings(database_url=url))
    redis_url = services.redis_test_url()
    services.empty_redis(redis_url)
    state = Path(tempfile.mkdtemp(prefix="virtnet-bench-"))
    settings = Settings(database_url=url, broker_url=redis_url, state_dir=state)
    cluster = Cluster(settings, state)
    try:
        with netns.namespace("bench") as ns:
            cluster.start_control()
            cluster.start_host("bench-host", ns)
            cluster.wait_hosts_up("bench-host")
            cluster.api.post(
                "/v1/networks",
                json={
                    "name": "bench",
                    "bridge": {"name": "vnbench0", "stp": False, "mac_table_manager": "libvirt"},
                },
            )
            cluster.api.post("/v1/networks/bench/start")
            cluster.wait_network("bench")
            base = cluster.serve_http()
            headers = dict(cluster.api.headers)
            with httpx.Client(headers=headers, timeout=30) as client:
                for i in range(20):  # warm-up: connections, caches, first-task costs
                    _plug(client, base, hostnet.guest_mac(900_000 + i))
                serial = hostnet.Row("POST port -> plugged (1 client)", "API+Redis+worker")
                for i in range(ports):
                    serial.samples.append(_plug(client, base, hostnet.guest_mac(i))[0])
            limits = httpx.Limits(max_connections=clients)
            with (
                httpx.Client(headers=headers, timeout=30, limits=limits) as client,
                ThreadPoolExecutor(clients) as pool,
            ):
                started = time.perf_counter()
                macs = [hostnet.guest_mac(100_000 + i) for i in range(ports)]
                lat = [t for t, _ in pool.map(lambda m: _plug(client, base, m), macs)]
                wall = time.perf_counter() - started
            busy = hostnet.Row(f"POST port -> plugged ({clients} clients)", "API+Redis+worker")
            busy.samples = lat
            rate = hostnet.Row(
                f"sustained: {ports / wall:.0f} plugs/s with {clients} clients",
                "API+Redis+worker",
                n=ports,
                span=True,
            )
            rate.batch_total = wall
            cluster.close()
            return [serial, busy, rate]
    finally:
        cluster.close()
        services.drop_pg_database(url, dbname)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-ports", type=int, default=1000)
    parser.add_argument("--e2e-ports", type=int, default=400)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--skip-host", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (creates network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs", flush=True)
    rows = [] if args.skip_host else host_rows(args.host_ports)
    rows += e2e_rows(args.e2e_ports, args.clients)
    hostnet.print_table(rows)
    if rows and not args.skip_host:
        print("host targets: plug <= 1.0 ms median per port with flags + FDB; 1000 ports <= 1 s")
    print("end-to-end target: median <= 15 ms (libvirt attach-interface RPC: 13.7 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
