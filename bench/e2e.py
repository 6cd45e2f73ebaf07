"""Issue 12's numbers in one table: virtnet end to end beside the bare kernel tools.

Run as root:  .venv/bin/python bench/e2e.py [--ports 200] [--seconds 10] [--bulk 1000]
                 [--reconcile-ports 10000] [--idle 30] [--api-workers N] [--profile DIR]

Everything runs for real, as bench/plug.py does: a fresh PostgreSQL database (dropped
afterwards), Redis, the control worker and one host worker whose host is a throwaway
namespace, and the API as its own process (`virtnet api`, VIRTNET_API_WORKERS from
``--api-workers``, else the default). Rows:

- single port: the bare ``ip``/``bridge`` sequence for one port (tuntap add, link set
  master/up, bridge link set, fdb replace), ``ip -batch`` for all of them, and
  ``POST …/ports?wait`` until the answer says ``plugged`` (one client);
- throughput: 1, 4 and 16 clients, each creating a port with ``?wait`` and deleting it with
  ``?wait`` in a loop for ``--seconds``; plugs/s and the create latency;
- bulk: one ``POST …/ports?wait`` with a list of ``--bulk`` ports until all are plugged, then
  ``POST …/stop?force=true`` until the kernel has no tap left on the bridge;
- idle: % of a core the API, control and host worker use with nothing asked of them
  (``--idle`` seconds; before the reconcile phase, and again after it with its ports);
- reconcile: a host worker restarted with ``--reconcile-ports`` wanted ports, all correct,
  then with a tenth of the taps deleted behind its back (bench/e2e_phases.py says how each
  end point is observed).

``--profile DIR`` writes a py-spy profile of each process for the single-port, the idle and the
16-client phases (``DIR/<phase>-<process>.svg``; ``--profile-format speedscope`` for JSON).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import e2e_phases  # noqa: E402
import hostnet  # noqa: E402
import httpx  # noqa: E402

from app.config import Settings  # noqa: E402
from app.services.schema import upgrade_database  # noqa: E402
from tests import netns, services  # noqa: E402
from tests.cluster import Cluster  # noqa: E402

HOST = "bench-host"
HEAD = ["what", "n", "median ms", "p90 ms", "p99 ms", "total / rate"]


def stats(what: str, samples: list[float], total: str = "") -> list[str]:
    ms = sorted(s * 1e3 for s in samples)
    cuts = statistics.quantiles(ms, n=100) if len(ms) > 1 else [ms[0]] * 99
    med = statistics.median(ms)
    return [what, str(len(ms)), f"{med:.2f}", f"{cuts[89]:.2f}", f"{cuts[98]:.2f}", total]


def bare_rows(ports: int) -> tuple[list[list[str]], float]:
    """The kernel tools for the same ports, in a namespace of their own."""
    with hostnet.namespace() as ns, hostnet.HostNet(ns) as net:
        hostnet.new_bridge(net, "bri")
        hostnet.settle(net)
        seq = hostnet.bench_ip_commands(ns, net, "bri", hostnet.specs("bri", ports))[0]
        net.remove_bridge("bri", "bench")
        hostnet.new_bridge(net, "brb")
        hostnet.settle(net)
        batch = hostnet.bench_ip_batch(ns, net, "brb", hostnet.specs("brb", ports))[0]
    assert batch.batch_total is not None
    per = batch.batch_total / ports
    rows = [
        stats("bare ip/bridge sequence, per port", seq.samples, f"{sum(seq.samples):.3f} s"),
        ["ip -batch + bridge -batch, per port", str(ports), f"{per * 1e3:.3f}*", "", "", ""],
    ]
    return rows, statistics.median(seq.samples)


class Api:
    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base, self.headers = base, headers
        self.local = threading.local()

    def client(self) -> httpx.Client:
        if not hasattr(self.local, "c"):
            self.local.c = httpx.Client(headers=self.headers, timeout=120)
        client: httpx.Client = self.local.c
        return client

    def plug(self, net: str, mac: str) -> tuple[float, str]:
        started = time.perf_counter()
        r = self.client().post(
            f"{self.base}/v1/networks/{net}/ports?wait=10",
            json={"owner": owner(), "host": HOST, "mac": mac},
        )
        took = time.perf_counter() - started
        if r.status_code != 201 or r.json()["state"] != "plugged":
            raise SystemExit(f"plug failed: {r.status_code} {r.text}")
        return took, r.json()["id"]

    def unplug(self, net: str, port_id: str) -> None:
        r = self.client().delete(f"{self.base}/v1/networks/{net}/ports/{port_id}?wait=10")
        if r.status_code != 200:
            raise SystemExit(f"unplug failed: {r.status_code} {r.text}")


def owner() -> dict[str, str]:
    return {"name": "bench", "uuid": "8d3f0c2e-5b7a-4c1d-9e6f-0a1b2c3d4e5f"}


def define(cluster: Cluster, name: str, bridge: str) -> None:
    body = {"name": name, "bridge": {"name": bridge, "stp": False, "mac_table_manager": "libvirt"}}
    cluster.api.post("/v1/networks", json=body)
    cluster.api.post(f"/v1/networks/{name}/start")
    cluster.wait_network(name)


def load(api: Api, clients: int, seconds: float, offset: int) -> list[str]:
    """``clients`` loops of create+delete for ``seconds``; plugs/s and create latency."""
    stop = time.monotonic() + seconds
    lat: list[list[float]] = [[] for _ in range(clients)]

    def loop(k: int) -> None:
        i = 0
        while time.monotonic() < stop:
            took, port_id = api.plug("bench", hostnet.guest_mac(offset + k * 10_000 + i))
            lat[k].append(took)
            api.unplug("bench", port_id)
            i += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(loop, range(clients)))
    wall = time.perf_counter() - started
    samples = [t for per in lat for t in per]
    rate = f"{len(samples) / wall:.0f} plugs/s"
    return stats(f"{clients} clients: create ?wait (with deletes)", samples, rate)


def kernel_taps(ns: str, bridge: str) -> int:
    return sum(1 for link in e2e_phases.tun_links(ns) if link.get("master") == bridge)


def bulk_rows(cluster: Cluster, api: Api, ns: str, count: int) -> list[list[str]]:
    define(cluster, "bulk", "vnbulk0")
    items = [
        {
            "id": str(uuid.uuid4()),
            "owner": {"name": f"vm{i}", "uuid": str(uuid.uuid4())},
            "host": HOST,
            "mac": hostnet.guest_mac(500_000 + i),
        }
        for i in range(count)
    ]
    started = time.perf_counter()
    r = api.client().post(f"{api.base}/v1/networks/bulk/ports?wait=120", json=items)
    made = time.perf_counter() - started
    body = r.json()
    if r.status_code != 200 or body["operation"]["state"] != "succeeded":
        raise SystemExit(f"bulk create failed: {r.status_code} {r.text[:500]}")
    on_kernel = kernel_taps(ns, "vnbulk0")
    started = time.perf_counter()
    r = api.client().post(f"{api.base}/v1/networks/bulk/stop?force=true")
    if r.status_code != 200:
        raise SystemExit(f"stop failed: {r.status_code} {r.text}")
    while kernel_taps(ns, "vnbulk0"):
        time.sleep(0.01)
    gone = time.perf_counter() - started
    return [
        [
            f"bulk create, one request ?wait ({on_kernel} taps)",
            str(count),
            "",
            "",
            "",
            f"{made:.3f} s",
        ],
        ["teardown: stop?force until no tap is left", str(count), "", "", "", f"{gone:.3f} s"],
    ]


def pids(cluster: Cluster) -> dict[str, int]:
    return {
        k: cluster.procs[key].pid
        for k, key in (("api", "api"), ("control", "control"), ("host", HOST))
    }


def e2e_rows(args: argparse.Namespace) -> tuple[list[list[str]], float]:
    url, dbname = services.create_pg_database()
    upgrade_database(Settings(database_url=url))
    redis_url = services.redis_test_url()
    services.empty_redis(redis_url)
    state = Path(tempfile.mkdtemp(prefix="virtnet-bench-"))
    cluster = Cluster(Settings(database_url=url, broker_url=redis_url, state_dir=state), state)
    rows: list[list[str]] = []
    try:
        with netns.namespace("bench") as ns:
            cluster.start_control()
            cluster.start_host(HOST, ns)
            cluster.wait_hosts_up(HOST)
            define(cluster, "bench", "vnbench0")
            api = Api(cluster.start_api(args.api_workers), dict(cluster.api.headers))
            for i in range(20):  # warm-up: connections, caches, first-task costs
                api.unplug("bench", api.plug("bench", hostnet.guest_mac(900_000 + i))[1])
            single = [0.0]
            if args.ports:
                single = []
                with e2e_phases.profiled(args.profile, "single", pids(cluster), args.fmt):
                    for i in range(args.ports):
                        took, port_id = api.plug("bench", hostnet.guest_mac(i))
                        single.append(took)
                        api.unplug("bench", port_id)
                rows.append(stats("virtnet POST ?wait -> plugged, 1 client", single))
            for k, clients in enumerate(args.clients):
                with e2e_phases.profiled(
                    args.profile if clients == 16 else None, "c16", pids(cluster), args.fmt
                ):
                    with e2e_phases.PeakConnections(cluster) as seen:
                        row = load(api, clients, args.seconds, 1_000_000 * (k + 1))
                    rows.append([*row[:-1], f"{row[-1]}, {seen.peak} db conns"])
            if args.bulk:
                rows += bulk_rows(cluster, api, ns, args.bulk)
            if args.idle:
                time.sleep(2)  # the last reports and events drain
                with e2e_phases.profiled(args.profile, "idle", pids(cluster), args.fmt):
                    rows += e2e_phases.idle_rows(pids(cluster), args.idle)
            if args.reconcile_ports:
                rows += e2e_phases.reconcile_rows(
                    cluster, api.base, HOST, ns, args.reconcile_ports, (args.profile, args.fmt)
                )
                if args.ports:  # the same plug, now beside that many ports on its host
                    crowded = []
                    for i in range(min(args.ports, 100)):
                        took, port_id = api.plug("bench", hostnet.guest_mac(i))
                        crowded.append(took)
                        api.unplug("bench", port_id)
                    what = f"virtnet POST ?wait -> plugged, {args.reconcile_ports} on the host"
                    rows.append(stats(what, crowded))
                if args.idle:
                    time.sleep(2)
                    idle = e2e_phases.idle_rows(pids(cluster), args.idle)
                    rows += [[f"{r[0]} ({args.reconcile_ports} ports)", *r[1:]] for r in idle]
            cluster.close()
        return rows, statistics.median(single)
    finally:
        cluster.close()
        services.drop_pg_database(url, dbname)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=200, help="single-port samples")
    parser.add_argument("--seconds", type=float, default=10, help="per throughput row")
    parser.add_argument("--bulk", type=int, default=1000, help="ports in the bulk row (<= 1023)")
    parser.add_argument(
        "--clients",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[1, 4, 16],
        help="throughput rows, comma-separated client counts (empty: none)",
    )
    parser.add_argument("--idle", type=float, default=30, help="seconds of the idle rows (0: none)")
    parser.add_argument(
        "--reconcile-ports", type=int, default=10_000, help="ports of the reconcile rows (0: none)"
    )
    parser.add_argument(
        "--api-workers", type=int, default=None, help="VIRTNET_API_WORKERS (default: its default)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy profiles go here")
    parser.add_argument(
        "--profile-format", dest="fmt", choices=("flamegraph", "speedscope"), default="flamegraph"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (creates network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    bare, bare_median = bare_rows(args.ports) if args.ports else ([], 1.0)
    rows, virtnet_median = e2e_rows(args)
    table = [HEAD, *bare, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEAD))]
    for i, line in enumerate(table):
        print(
            " | ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    print("* one batch: total / n")
    if args.ports:
        print(
            "single port: virtnet median / bare sequence median = "
            f"{virtnet_median / bare_median:.1f}x (target <= 2x)"
        )
    print(f"load after the run {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
