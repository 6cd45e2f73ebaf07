"""The embedded broker, measured: task round trip and idle CPU of each candidate.

Run:  .venv/bin/python bench/broker.py [--tasks 500] [--idle 20]

For each candidate broker the script starts one real Celery worker process (solo pool, the
options virtnet's workers use) with an `echo` task that sends a task back; the bench process
sends a task and waits for the echo on its own queue: two broker hops, like a host task and
its report. Idle CPU is the worker's (plus the broker server's, if it has one) CPU time over
`--idle` seconds with nothing to do, as a share of one core. A candidate whose worker dies
(kombu's file-system transport does, on a half-written message file: kombu #1551) counts the
rest of its tasks as lost and gets no idle figure.

Candidates: kombu's file-system transport polled every 10 ms (the old default), a private
redis-server on a unix socket with AOF (appendfsync everysec and always), and Redis over TCP
on loopback (same server, for comparison).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from kombu import Queue  # noqa: E402

from app.celery_app import make_celery  # noqa: E402
from app.config import Settings  # noqa: E402

ECHO, REPLY_QUEUE = "bench.echo", "bench.reply"


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # it died (and its CPU time with it)
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_worker(broker_url: str, state_dir: str) -> None:
    celery = make_celery(Settings(broker_url=broker_url, state_dir=Path(state_dir)))

    @celery.task(name=ECHO, ignore_result=True)
    def echo(n: int) -> None:
        celery.send_task(ECHO + ".reply", kwargs={"n": n}, queue=REPLY_QUEUE)

    celery.worker_main(
        [
            "worker",
            "-Q",
            "bench",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ]
    )


def _start_redis(folder: Path, fsync: str) -> tuple[subprocess.Popen[bytes], str]:
    sock = folder / "redis.sock"
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "600",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync,
            "--logfile",
            str(folder / "redis.log"),
        ],
    )
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.05)
    return proc, f"redis+socket://{sock}"


def measure(
    label: str,
    url: str,
    folder: Path,
    tasks: int,
    idle: float,
    server: subprocess.Popen[bytes] | None,
) -> dict[str, object]:
    celery = make_celery(Settings(broker_url=url, state_dir=folder))
    worker = subprocess.Popen(
        [sys.executable, __file__, "--worker", url, str(folder)], stdout=subprocess.DEVNULL
    )
    try:
        conn = celery.connection_for_write()
        producer = celery.amqp.Producer(conn)
        got: list[int] = []
        consumer = conn.Consumer(
            [Queue(REPLY_QUEUE)], accept=["json"], on_message=lambda m: (got.append(1), m.ack())
        )
        consumer.consume()
        times, errors, lost = [], 0, 0
        pids = [worker.pid] + ([server.pid] if server else [])
        cpu_start, died = 0.0, False
        for i in range(tasks + 20):
            got.clear()
            started = time.perf_counter()
            celery.send_task(ECHO, kwargs={"n": i}, queue="bench", producer=producer)
            deadline = started + 5
            while not got and time.perf_counter() < deadline:
                try:
                    conn.drain_events(timeout=max(0.01, deadline - time.perf_counter()))
                except TimeoutError:
                    pass
                except ValueError:  # kombu #1551: a message file read before it was written
                    errors += 1
            if i == 19:
                cpu_start = sum(map(_cpu_seconds, pids)) + time.process_time()
            if not got:
                lost += 1
                if worker.poll() is not None:  # the worker died: the rest can never come back
                    died, lost = True, lost + tasks + 19 - i
                    break
            elif i >= 20:  # the first ones include the worker's start
                times.append(time.perf_counter() - started)
        done = max(1, len(times))
        cpu_per_task = (sum(map(_cpu_seconds, pids)) + time.process_time() - cpu_start) / done
        cpu = float("nan")
        if died:
            cpu_per_task = float("nan")
        else:
            time.sleep(2)
            before = sum(map(_cpu_seconds, pids))
            time.sleep(idle)
            cpu = (sum(map(_cpu_seconds, pids)) - before) / idle
        conn.release()
        times.sort()
        return {
            "broker": label,
            "median_ms": statistics.median(times) * 1000 if times else float("nan"),
            "p90_ms": times[int(len(times) * 0.9)] * 1000 if times else float("nan"),
            "idle_cpu_pct": cpu * 100,
            "errors": errors,
            "cpu_ms": cpu_per_task * 1000,
            "lost": lost,
            "died": died,
        }
    finally:
        worker.terminate()
        worker.wait(10)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        run_worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vnt-broker-") as tmp:
        base = Path(tmp)
        fs = base / "fs"
        fs.mkdir()
        rows.append(
            measure(
                "file-system, 10 ms poll",
                f"filesystem://{fs}/broker",
                fs,
                args.tasks,
                args.idle,
                None,
            )
        )
        for fsync in ("everysec", "always"):
            folder = base / fsync
            folder.mkdir()
            server, url = _start_redis(folder, fsync)
            try:
                rows.append(
                    measure(
                        f"redis-server unix socket, AOF {fsync}",
                        url,
                        folder,
                        args.tasks,
                        args.idle,
                        server,
                    )
                )
            finally:
                server.terminate()
                server.wait(10)
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs, {args.tasks} tasks")
    print(
        f"{'broker':40} | median ms | p90 ms | CPU ms/task | idle CPU % | read errors | lost"
        " | worker died"
    )
    for r in rows:
        print(
            f"{r['broker']:40} | {r['median_ms']:9.2f} | {r['p90_ms']:6.2f} | "
            f"{r['cpu_ms']:11.2f} | {r['idle_cpu_pct']:10.2f} | {r['errors']:11} | {r['lost']:4} | "
            f"{'yes' if r['died'] else 'no'}"
        )


if __name__ == "__main__":
    main()
