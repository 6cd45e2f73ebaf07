"""Soak of the embedded default: `virtnet serve` (SQLite, private redis-server) under mixed traffic.

Run as root:  .venv/bin/python bench/soak.py --minutes 30 [--faults] [--clients 3]

It starts `virtnet serve` the way `scripts/run` does, with a fresh state directory and its host
worker in a throwaway namespace `vnt-soak…`, then for N minutes keeps up, all at once:
- port traffic: N clients create a port (`?wait`) on a started network and delete it (`?wait`);
- domain traffic: two domains with an interface each cycle start, suspend, resume, stop;
- the dashboard's event stream (`GET /v1/events`) open and read, plus two more streams like
  `virtnet event --loop`;
- task round trips: a probe worker process on serve's broker echoes a task back (two broker
  hops, like a host task and its report), 5 times a second.
With --faults, every --fault-every seconds it injects one fault, in turn: SIGKILL of serve's
control worker, a dropped nudge (the host worker stopped, one plugging message deleted from its
queue, the worker resumed), SIGKILL of the host worker, a dropped port report (the same with the
control worker and its queue), SIGKILL of the broker.

Before the traffic, and again after it, it measures idle CPU of serve's whole process tree
over --idle seconds; at the end it waits for every port and operation to settle and prints
crashes (children that died unasked, 5xx answers, serve exiting), stuck operations and ports,
what differs between the database's ports and the host's kernel (taps, masters, flags, static
FDB entries, read back with `ip -json`/`bridge -json`), idle CPU and the round trip (median,
p90). Only loopback and unix-socket traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import httpx  # noqa: E402
from e2e_phases import tree  # noqa: E402

from tests import netns  # noqa: E402

TOKEN = "vn_soak-admin"
OWNER = {"name": "soak", "uuid": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"}
HOST = "soak-host"
TRANSITIONAL_PORT_STATES = ("allocated", "plugging", "unplugging")


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def idle_cpu(serve: int, seconds: float) -> float:
    """Share of one core serve's tree used over ``seconds`` (children counted as they are)."""
    pids = tree(serve)
    before = _cpu(pids)
    time.sleep(seconds)
    return (_cpu(pids) - before) / seconds * 100


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: Counter[str] = Counter()
        self.errors: list[str] = []
        self.latency: dict[str, list[float]] = {}
        self.events = 0
        self.conflicts: Counter[str] = Counter()

    def note(self, what: str, r: httpx.Response | None, took: float, exc: str = "") -> None:
        with self.lock:
            code = str(r.status_code) if r is not None else "no answer"
            self.status[code] += 1
            self.latency.setdefault(what, []).append(took)
            if r is not None and r.status_code == 409:
                self.conflicts[f"{what}: {r.json().get('detail', '')[:90]}"] += 1
            if r is None or r.status_code >= 500:
                self.errors.append(
                    f"{time.strftime('%H:%M:%S')} {what}: {code} "
                    f"{exc or (r.text[:200] if r is not None else '')}"
                )


def call(
    stats: Stats, client: httpx.Client, what: str, method: str, url: str, **kw: Any
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        r = client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        stats.note(what, None, time.perf_counter() - started, repr(exc))
        return None
    stats.note(what, r, time.perf_counter() - started)
    return r


def port_client(base: str, stats: Stats, stop: threading.Event, n: int) -> None:
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as client:
        i = 0
        while not stop.is_set():
            i += 1
            mac = f"52:54:00:{n:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"
            r = call(
                stats,
                client,
                "port create",
                "POST",
                "/v1/networks/soak/ports?wait=20",
                json={"owner": OWNER, "host": HOST, "mac": mac},
            )
            if r is not None and r.status_code in (200, 201, 202):
                call(
                    stats,
                    client,
                    "port delete",
                    "DELETE",
                    f"/v1/networks/soak/ports/{r.json()['id']}?wait=20",
                )
            else:
                stop.wait(1)


def domain_client(base: str, stats: Stats, stop: threading.Event, name: str) -> None:
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as client:
        while not stop.is_set():
            for action in ("start", "suspend", "resume", "stop"):
                r = call(
                    stats,
                    client,
                    f"domain {action}",
                    "POST",
                    f"/v1/domains/{name}/{action}?wait=20",
                )
                if r is None or r.status_code >= 400:
                    stop.wait(1)


def event_stream(base: str, stats: Stats, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with httpx.stream(
                "GET", f"{base}/v1/events?token={TOKEN}", timeout=httpx.Timeout(30, read=30)
            ) as r:
                for line in r.iter_lines():
                    if line.startswith("id:"):
                        with stats.lock:
                            stats.events += 1
                    if stop.is_set():
                        return
        except httpx.HTTPError as exc:
            with stats.lock:
                stats.errors.append(f"{time.strftime('%H:%M:%S')} event stream: {exc!r}")
            stop.wait(1)


def probe(
    broker_url: str, state_dir: Path, samples: list[float], stop: threading.Event, errors: list[str]
) -> None:
    """Task round trips through serve's broker: send, a worker echoes, receive."""
    import broker as broker_bench
    from kombu import Queue

    from app.celery_app import make_celery
    from app.config import Settings

    celery = make_celery(Settings(broker_url=broker_url, state_dir=state_dir))
    worker = subprocess.Popen(
        [sys.executable, broker_bench.__file__, "--worker", broker_url, str(state_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not stop.is_set():
            try:
                with celery.connection_for_write() as conn:
                    producer = celery.amqp.Producer(conn)
                    got: list[int] = []
                    consumer = conn.Consumer(
                        [Queue(broker_bench.REPLY_QUEUE)],
                        accept=["json"],
                        on_message=lambda m, got=got: (got.append(1), m.ack()),
                    )
                    consumer.consume()
                    while not stop.is_set():
                        got.clear()
                        started = time.perf_counter()
                        celery.send_task(
                            broker_bench.ECHO, kwargs={"n": 0}, queue="bench", producer=producer
                        )
                        deadline = started + 10
                        while not got and time.perf_counter() < deadline:
                            with contextlib.suppress(TimeoutError):
                                conn.drain_events(timeout=deadline - time.perf_counter())
                        if got:
                            samples.append(time.perf_counter() - started)
                        stop.wait(0.2)
            except Exception as exc:  # the broker may be the fault being injected
                errors.append(f"{time.strftime('%H:%M:%S')} probe: {exc!r}")
                stop.wait(1)
    finally:
        worker.terminate()
        worker.wait(10)


def health(base: str) -> dict[str, Any]:
    try:
        return httpx.get(f"{base}/v1/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}


def drop_one(broker_url: str, queue: str, task_names: tuple[str, ...]) -> bool:
    """Delete the newest message of one of ``task_names`` from ``queue`` (a Redis list)."""
    import redis

    from app.celery_app import redis_client_url

    client = redis.Redis.from_url(redis_client_url(broker_url), socket_timeout=5)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for raw in client.lrange(queue, 0, -1):
                if json.loads(raw)["headers"]["task"] in task_names and client.lrem(queue, 1, raw):
                    return True
            time.sleep(0.02)
        return False
    finally:
        client.close()


def dropped(base: str, broker_url: str, child: str, queue: str, tasks: tuple[str, ...]) -> bool:
    """Stop ``child`` (so that messages wait in its queue), lose one, let it go on."""
    pid = health(base).get("components", {}).get(child, {}).get("pid")
    if not pid:
        return False
    os.kill(pid, signal.SIGSTOP)
    try:
        return drop_one(broker_url, queue, tasks)
    finally:
        os.kill(pid, signal.SIGCONT)


def faults(
    base: str, broker_url: str, every: float, stop: threading.Event, injected: Counter[str]
) -> None:
    """In turn: SIGKILL of a child (serve restarts it), a dropped nudge to the host worker,
    a dropped report to the control worker."""
    from app.celery_app import APPLY_BUNDLE, APPLY_PORTS, CONTROL_QUEUE, REPORT_PORTS, host_queue

    victims = ["control-worker", "nudge", "host-worker", "report", "broker"]
    n = 0
    while not stop.wait(every):
        name = victims[n % len(victims)]
        n += 1
        try:
            if name == "nudge":
                tasks = (APPLY_BUNDLE, APPLY_PORTS)
                if dropped(base, broker_url, "host-worker", host_queue(HOST), tasks):
                    injected["dropped nudge"] += 1
                continue
            if name == "report":
                if dropped(base, broker_url, "control-worker", CONTROL_QUEUE, (REPORT_PORTS,)):
                    injected["dropped report"] += 1
                continue
        except Exception as exc:  # a restart of the broker may be under way
            print(f"fault {name}: {exc!r}", flush=True)
            continue
        pid = health(base).get("components", {}).get(name, {}).get("pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                injected[name] += 1


def kernel_vs_database(db: Path, ns: str) -> list[str]:
    """What differs between the ports of the database and the kernel of the soak's host."""
    from tests.faults.load import kernel_differences

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM ports WHERE host = ?", (HOST,))]
    return kernel_differences(ns, rows)


def settle(db: Path, seconds: float) -> tuple[int, int]:
    """Wait for ports and operations to settle; return (stuck ports, stuck operations)."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            marks = ",".join("?" * len(TRANSITIONAL_PORT_STATES))
            ports = conn.execute(
                f"SELECT count(*) FROM ports WHERE state IN ({marks})", TRANSITIONAL_PORT_STATES
            ).fetchone()[0]
            ops = conn.execute(
                "SELECT count(*) FROM operations WHERE state = 'running'"
            ).fetchone()[0]
        if (ports == 0 and ops == 0) or time.monotonic() > deadline:
            return ports, ops
        time.sleep(1)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--clients", type=int, default=3, help="port clients")
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--fault-every", type=float, default=60)
    parser.add_argument("--idle", type=float, default=60, help="idle CPU window, seconds")
    parser.add_argument("--port", type=int, default=18590)
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vnt-soak-") as tmp, netns.namespace("soak") as ns:
        state = Path(tmp)
        base = f"http://127.0.0.1:{args.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTNET_")}
        env.update(
            VIRTNET_STATE_DIR=tmp,
            VIRTNET_BOOTSTRAP_TOKEN=TOKEN,
            VIRTNET_HOST_NAME=HOST,
            VIRTNET_NETNS=ns,
        )
        log = open(state / "serve.log", "wb")  # noqa: SIM115
        serve = subprocess.Popen(
            [str(ROOT / ".venv/bin/virtnet"), "serve", "--listen", f"127.0.0.1:{args.port}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            run(args, serve, base, state, load, ns)
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()
            log.close()
            tail = (state / "serve.log").read_text(errors="replace").splitlines()[-15:]
            print("serve log, last lines:\n  " + "\n  ".join(tail))


def run(
    args: argparse.Namespace,
    serve: subprocess.Popen[bytes],
    base: str,
    state: Path,
    load: tuple[float, float, float],
    ns: str,
) -> None:
    deadline = time.monotonic() + 120
    while health(base).get("status") != "ok" or len(health(base).get("components", {})) < 4:
        if serve.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("serve did not come up")
        time.sleep(0.5)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as c:
        while not c.get("/v1/hosts").json():
            time.sleep(0.5)
        c.post(
            "/v1/networks",
            json={
                "name": "soak",
                "bridge": {"name": "vnsoak0", "stp": False, "mac_table_manager": "libvirt"},
            },
        ).raise_for_status()
        c.post("/v1/networks/soak/start?wait=20").raise_for_status()
        for i in (1, 2):
            c.post(
                "/v1/domains",
                json={
                    "name": f"soak{i}",
                    "host": HOST,
                    "interfaces": [
                        {
                            "type": "network",
                            "source": {"network": "soak"},
                            "mac": f"52:54:00:ff:00:{i:02x}",
                        }
                    ],
                },
            ).raise_for_status()
    time.sleep(10)  # let the start settle before measuring idle
    idle_before = idle_cpu(serve.pid, args.idle)
    print(f"idle CPU before traffic: {idle_before:.2f} % of one core", flush=True)

    stats, stop = Stats(), threading.Event()
    samples: list[float] = []
    probe_errors: list[str] = []
    injected: Counter[str] = Counter()
    threads = [
        threading.Thread(target=port_client, args=(base, stats, stop, n))
        for n in range(args.clients)
    ]
    threads += [
        threading.Thread(target=domain_client, args=(base, stats, stop, f"soak{i}")) for i in (1, 2)
    ]
    threads += [threading.Thread(target=event_stream, args=(base, stats, stop)) for _ in range(3)]
    broker_url = f"redis+socket://{state / 'broker' / 'redis.sock'}"
    threads.append(
        threading.Thread(target=probe, args=(broker_url, state, samples, stop, probe_errors))
    )
    if args.faults:
        threads.append(
            threading.Thread(
                target=faults, args=(base, broker_url, args.fault_every, stop, injected)
            )
        )
    started = time.monotonic()
    for t in threads:
        t.start()
    end = started + args.minutes * 60
    while time.monotonic() < end and serve.poll() is None:
        time.sleep(min(60, max(0.1, end - time.monotonic())))
        with stats.lock:
            done = sum(stats.status.values())
        print(
            f"{(time.monotonic() - started) / 60:5.1f} min: {done} requests, "
            f"{dict(stats.status)}, {stats.events} events, {len(samples)} round trips, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    stop.set()
    for t in threads:
        t.join(90)
    stuck_ports, stuck_ops = settle(state / "virtnet.db", 60)
    differences = kernel_vs_database(state / "virtnet.db", ns)
    time.sleep(10)
    idle_after = idle_cpu(serve.pid, args.idle) if serve.poll() is None else float("nan")
    h = health(base)
    restarts = {name: c.get("restarts", 0) for name, c in h.get("components", {}).items()}
    unasked = {n: r - injected[n] for n, r in restarts.items() if r - injected[n] > 0}
    five = sum(v for k, v in stats.status.items() if k.startswith("5") or k == "no answer")
    print(json.dumps({"health": h.get("status"), "components": h.get("components")}))
    print(
        f"\nsoak: {args.minutes:g} min, {args.clients} port clients + 2 domains + 3 event "
        f"streams, faults: {dict(injected) if args.faults else 'none'}"
    )
    print(
        f"load average at start {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, at end "
        f"{os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs"
    )
    print(f"serve exited: {serve.poll() is not None}")
    print(f"crashes (children that died unasked): {unasked or 'none'}")
    print(f"answers: {dict(stats.status)}; 5xx or no answer: {five}")
    for line in stats.errors[:10] + probe_errors[:5]:
        print("  " + line)
    for conflict, count in stats.conflicts.most_common(5):
        print(f"  409 x{count}: {conflict}")
    print(f"stuck after 60 s: {stuck_ports} ports, {stuck_ops} operations")
    print(f"kernel vs database: {len(differences)} differences")
    for line in differences[:10]:
        print("  " + line)
    print(f"events read on 3 streams: {stats.events}")
    print(
        f"idle CPU of serve's process tree: {idle_before:.2f} % of one core before, "
        f"{idle_after:.2f} % after"
    )
    print(
        f"task round trip ({len(samples)}): median {pct(samples, 0.5):.2f} ms, "
        f"p90 {pct(samples, 0.9):.2f} ms"
    )
    for what, values in sorted(stats.latency.items()):
        print(
            f"  {what:15} n={len(values):6} median {pct(values, 0.5):8.1f} ms "
            f"p90 {pct(values, 0.9):8.1f} ms"
        )


if __name__ == "__main__":
    main()
