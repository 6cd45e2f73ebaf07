"""`virtnet api` with several worker processes (app/cli/api_server.py): a worker that dies is
replaced, SIGTERM ends them all, and a SIGKILLed parent leaves none behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.cluster import Cluster, wait_for


def workers(pid: int) -> set[int]:
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in listed if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_dead_worker_is_replaced_and_sigterm_ends_them_all(cluster: Cluster) -> None:
    base = cluster.start_api(workers=2)
    parent = cluster.procs["api"]
    first = wait_for(lambda: len(workers(parent.pid)) == 2 and workers(parent.pid), what="2")
    killed = min(first)
    os.kill(killed, signal.SIGKILL)
    again = wait_for(
        lambda: len(w := workers(parent.pid)) == 2 and killed not in w and w, what="a new worker"
    )
    assert again - first and answers(base)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=15) == 0
    assert all(gone(pid) for pid in again)
    assert not answers(base)


def test_a_killed_parent_leaves_no_worker(cluster: Cluster) -> None:
    cluster.start_api(workers=2)
    parent = cluster.procs["api"]
    started = wait_for(lambda: len(workers(parent.pid)) == 2 and workers(parent.pid), what="2")
    parent.kill()
    parent.wait(timeout=5)
    wait_for(lambda: all(gone(pid) for pid in started), timeout=10, what="workers to end")
