"""Overlay networks at fleet scale: how fast a guest's entry reaches every other host.

Run as root, with a Redis of your own:
    VIRTNET_TEST_REDIS=redis://127.0.0.1:PORT .venv/bin/python bench/overlay.py \\
        [--hosts 10] [--ports 100] [--samples 40]

A real control worker and one host worker per host, each host a throwaway namespace joined
to an underlay bridge in another namespace (tests/underlay.py); real PostgreSQL (a fresh
database, dropped afterwards) and Redis; the API in-process. One overlay network (libvirt
mode) gets ``--ports`` guest ports on every host (a domain per host with that many
interfaces, less one), then:

- plug → everywhere: a port is plugged on one host; from the moment its static entry
  appears on that host's bridge to the moment its VXLAN entry appears on the last of the
  other hosts (kernel events read with ``bridge monitor fdb`` in each namespace);
- restart: a host worker is killed, the host's VXLAN device deleted (a host that lost its
  table), the worker started again; the time until all its remote entries are back, from
  the worker's first heartbeat and from its process start;
- per change: FDB changes made in the kernels (from the monitors), and the messages pushed
  onto the broker for a plug (to hosts, and reports to the control worker; counted over 10
  more plugs with Redis MONITOR on, apart from the timed ones).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from app.cli.server import upgrade_database  # noqa: E402
from app.config import Settings  # noqa: E402
from tests import services  # noqa: E402
from tests import underlay as ul  # noqa: E402
from tests.cluster import Cluster, wait_for  # noqa: E402

VNI = 7000
DEV = f"vxn{VNI}"


class Monitor:
    """`bridge monitor fdb` in one namespace: when each MAC's entries appeared."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.remote: dict[str, float] = {}  # MAC -> when its VXLAN (dst) entry appeared
        self.local: dict[str, float] = {}  # MAC -> when its static entry on a tap appeared
        self.changes = 0
        self._proc = subprocess.Popen(
            ["bridge", "-n", ns, "monitor", "fdb"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            now = time.monotonic()
            if f"dev {DEV}" in line or " dev vnet" in line:
                self.changes += 1
            if line.startswith("Deleted"):
                mac = line.split()[1]
                if f"dev {DEV} dst" in line:
                    self.remote.pop(mac, None)
                continue
            mac = line.split(" ", 1)[0]
            if f"dev {DEV} dst" in line and " self" in line and mac != "00:00:00:00:00:00":
                self.remote.setdefault(mac, now)
            elif " dev vnet" in line and " master " in line and "static" in line:
                self.local.setdefault(mac, now)

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=5)


class Broker:
    """Messages pushed onto the broker's queues (Redis MONITOR), by kind: to hosts, and to
    the control worker apart from heartbeats."""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url)
        self.pushed: dict[str, list[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with self._client.monitor() as monitor:
            self._ready.set()
            for event in monitor.listen():
                if self._stop.is_set():
                    return
                command = str(event.get("command", ""))
                parts = command.split(" ", 2)
                if parts[0].upper() != "LPUSH" or len(parts) < 3:
                    continue
                queue = parts[1].strip('"')
                kind = (
                    "to hosts"
                    if queue.startswith("host.")
                    else "from hosts (reports)"
                    if queue == "control"
                    else ""
                )
                if kind:
                    self.pushed.setdefault(kind, []).append(len(parts[2]))

    def __enter__(self) -> Broker:
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._client.ping()  # wakes the monitor
        self._thread.join(5)
        self._client.close()

    def per_change(self, changes: int) -> dict[str, tuple[float, float]]:
        return {
            kind: (len(sizes) / changes, statistics.mean(sizes))
            for kind, sizes in sorted(self.pushed.items())
        }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def mac(host: int, i: int) -> str:
    return f"52:54:{host:02x}:00:{i >> 8:02x}:{i & 0xFF:02x}"


def run(hosts: int, ports: int, samples: int) -> dict[str, Any]:
    url, dbname = services.create_pg_database()
    upgrade_database(Settings(database_url=url))
    redis_url = services.redis_test_url()
    services.empty_redis(redis_url)
    state = Path(tempfile.mkdtemp(prefix="virtnet-bench-"))
    settings = Settings(
        database_url=url,
        broker_url=redis_url,
        state_dir=state,
        heartbeat_seconds=1.0,
        missed_heartbeats=60,  # a loaded machine must not make hosts look down
    )
    cluster = Cluster(settings, state)
    names = [f"b{i}" for i in range(hosts)]
    monitors: list[Monitor] = []
    try:
        with ul.underlay(hosts, tag="b") as (_, namespaces):
            cluster.start_control()
            for i, (name, ns) in enumerate(zip(names, namespaces, strict=True)):
                cluster.start_host(name, ns, underlay=ul.address(i))
            cluster.wait_hosts_up(*names, timeout=120)
            api = cluster.api
            network = {
                "name": "ov",
                "bridge": {"name": "vbrov", "stp": False, "mac_table_manager": "libvirt"},
                "overlay": {"vni": VNI},
            }
            assert api.post("/v1/networks?start=true", json=network).status_code == 201
            cluster.wait_network("ov", timeout=120)
            monitors = [Monitor(ns) for ns in namespaces]
            started = time.monotonic()
            for h, name in enumerate(names):
                interfaces = [
                    {"type": "network", "source": {"network": "ov"}, "mac": mac(h, i)}
                    for i in range(ports - 1)
                ]
                body = {"name": f"d{h}", "host": name, "interfaces": interfaces}
                assert api.post("/v1/domains", json=body).status_code == 201
                t = time.monotonic()
                r = api.post(f"/v1/domains/d{h}/start?wait=300")
                assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
                print(
                    f"  domain d{h}: {ports - 1} ports in {time.monotonic() - t:.1f} s", flush=True
                )
            others = (hosts - 1) * (ports - 1)
            wait_for(
                lambda: all(len(m.remote) >= others for m in monitors),
                timeout=300,
                what="every host has every remote entry",
            )
            fill = time.monotonic() - started

            def plug(n: int) -> float:
                """Plug port ``n``; from its entry on its host to the last other host's."""
                h = n % hosts
                m = mac(h, ports - 1 + n // hosts)
                owner = {"name": f"p{n}", "uuid": str(uuid.uuid4())}
                r = api.post(
                    "/v1/networks/ov/ports?wait=30",
                    json={"owner": owner, "host": names[h], "mac": m},
                )
                assert r.status_code in (200, 201), r.text
                rest = [x for i, x in enumerate(monitors) if i != h]
                wait_for(
                    lambda: all(m in x.remote for x in rest),
                    timeout=30,
                    what=f"entry of {m} on every other host",
                )
                local = wait_for(lambda: monitors[h].local.get(m), timeout=10)
                return max(x.remote[m] for x in rest) - local

            # plug on one host -> entry on all others
            changes_before = [m.changes for m in monitors]
            latencies = [plug(n) for n in range(samples)]
            changes = sum(m.changes for m in monitors) - sum(changes_before)
            # messages per plug, counted apart: watching the broker slows it down
            counted = min(samples, 10)
            with Broker(redis_url) as broker:
                for n in range(samples, samples + counted):
                    plug(n)
                    time.sleep(0.3)  # the hosts' reports of this plug arrive too
            messages = broker.per_change(counted)
            samples += counted

            # a host that lost its table comes back
            victim, victim_ns = names[-1], namespaces[-1]
            cluster.kill(victim)
            subprocess.run(["ip", "-n", victim_ns, "link", "del", DEV], check=True)
            monitors[-1].remote.clear()
            extra = sum(1 for n in range(samples) if n % hosts != hosts - 1)
            want = (hosts - 1) * (ports - 1) + extra
            before = _worker_id(settings, victim)
            spawned = time.monotonic()
            cluster.start_host(victim, victim_ns, underlay=ul.address(hosts - 1))
            wait_for(
                lambda: _worker_id(settings, victim) != before,
                timeout=60,
                what="the restarted worker registers",
            )
            up = time.monotonic()
            wait_for(
                lambda: len(monitors[-1].remote) >= want,
                timeout=120,
                what=f"{want} remote entries back on {victim}",
            )
            back = max(monitors[-1].remote.values())
            return {
                "hosts": hosts,
                "ports": ports,
                "fill_seconds": fill,
                "samples": latencies,
                "changes_per_plug": changes / len(latencies),
                "messages": messages,
                "restart_entries": want,
                "restart_from_up": back - up,
                "restart_from_spawn": back - spawned,
            }
    finally:
        for m in monitors:
            m.close()
        cluster.close()
        services.drop_pg_database(url, dbname)


def _worker_id(settings: Settings, host: str) -> str:
    from app.db import get_sessionmaker
    from app.models import Host

    with get_sessionmaker(settings.effective_database_url)() as session:
        row = session.get(Host, host)
        return row.worker_id if row is not None else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--ports", type=int, default=100)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: it creates network namespaces", file=sys.stderr)
        return 2
    result = run(args.hosts, args.ports, args.samples)
    ms = [s * 1000 for s in result["samples"]]
    print(
        f"{result['hosts']} hosts x {result['ports']} guest ports, overlay VNI {VNI} "
        f"(libvirt mode); kernel {os.uname().release}, {os.cpu_count()} CPUs"
    )
    print(f"filling the table (every host, every entry): {result['fill_seconds']:.1f} s")
    print(
        f"plug -> entry on all {result['hosts'] - 1} other hosts, n={len(ms)}: "
        f"median {statistics.median(ms):.1f} ms, p90 {pct(ms, 0.9):.1f} ms, "
        f"p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms"
    )
    print(f"FDB changes in all kernels per plug: {result['changes_per_plug']:.1f}")
    for what, (count, size) in result["messages"].items():
        print(f"messages per plug {what}: {count:.1f}, {size:.0f} bytes each on average")
    print(
        f"restarted host, {result['restart_entries']} remote entries: "
        f"{result['restart_from_up'] * 1000:.0f} ms after it registered, "
        f"{result['restart_from_spawn'] * 1000:.0f} ms after its process started"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
