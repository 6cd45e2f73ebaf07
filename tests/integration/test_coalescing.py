"""Workers coalesce what piles up in their queues (issue 12), with real processes: bundles
queued while the host worker is busy become one kernel batch and one report; reports queued
while the control worker is busy are recorded in one transaction; a host worker killed in
the middle of a drained batch converges once restarted. The kernel is read back."""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import text

from app.celery_app import CONTROL_QUEUE, REPORT_APPLIED, REPORT_PORTS, host_queue
from app.db import get_sessionmaker
from tests.cluster import Cluster, wait_for
from tests.integration.test_lost_messages import broker, create_port, in_sync, lv_on_h1, stop
from tests.kernel import readback

N = 30
HOST_QUEUE = host_queue("h1")


@pytest.fixture
def host(cluster: Cluster) -> Iterator[str]:
    """h1 in a namespace, network 'lv' active on it. Stopped workers send and record no
    heartbeats: neither the control worker nor the API may call h1 down meanwhile."""
    yield from lv_on_h1(cluster)


def queued(client: redis.Redis, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """(task, kwargs) of each message waiting in ``queue``, oldest first."""
    out = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], body[1]))
    return out


def reports(client: redis.Redis) -> tuple[list[dict[str, Any]], list[int]]:
    """The port results and the revisions waiting in the control queue."""
    waiting = queued(client, CONTROL_QUEUE)
    results = [r for name, kw in waiting if name == REPORT_PORTS for r in kw["results"]]
    said = [
        kw.get("revision") if name == REPORT_APPLIED else kw.get("applied") for name, kw in waiting
    ]
    return results, [r for r in said if r is not None]


def ports(cluster: Cluster) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.api.get("/v1/networks/lv/ports").json()
    return found


def all_plugged(cluster: Cluster, count: int) -> bool:
    listed = ports(cluster)
    return len(listed) == count and all(p["state"] == "plugged" for p in listed)


def transactions(cluster: Cluster) -> set[int]:
    """The transactions that last wrote the port rows (PostgreSQL's xmin)."""
    with get_sessionmaker(cluster.settings.effective_database_url)() as session:
        return {int(x) for x in session.scalars(text("SELECT xmin::text::bigint FROM ports"))}


def plug_samples(cluster: Cluster) -> int:
    """How many plug times h1's latency histogram has counted."""
    with get_sessionmaker(cluster.settings.effective_database_url)() as session:
        query = text("SELECT count FROM host_latency WHERE host = 'h1' AND action = 'plug'")
        return session.scalar(query) or 0


def db_taps(cluster: Cluster) -> list[str]:
    """The taps of the ports, as the database has them."""
    with get_sessionmaker(cluster.settings.effective_database_url)() as session:
        return sorted(session.scalars(text("SELECT tap FROM ports")))


def desired(cluster: Cluster) -> int:
    return int(cluster.api.get("/v1/hosts/h1").json()["desired_revision"])


def test_bundles_queued_while_the_host_is_busy_are_one_batch_and_one_report(
    cluster: Cluster, host: str
) -> None:
    client = broker(cluster)
    stop(cluster, "control", CONTROL_QUEUE)
    stop(cluster, "h1", HOST_QUEUE)
    made = [create_port(cluster, f"52:54:00:30:00:{i:02x}") for i in range(N)]
    assert [name for name, _ in queued(client, HOST_QUEUE)].count("virtnet.host.apply") == N
    cluster.signal("h1", signal.SIGCONT)
    revision = desired(cluster)
    wait_for(lambda: revision in reports(client)[1], what=f"h1 applied\n{cluster.logs()}")
    results, revisions = reports(client)
    # one report of each kind for the lot (an empty one answers the harmless stop message)
    port_reports = [kw for name, kw in queued(client, CONTROL_QUEUE) if name == REPORT_PORTS]
    assert [len(kw["results"]) for kw in port_reports if kw["results"]] == [N]
    assert revisions == [revision]
    assert {r["state"] for r in results} == {"plugged"}
    cluster.signal("control", signal.SIGCONT)
    wait_for(lambda: all_plugged(cluster, N), what=f"{N} plugged\n{cluster.logs()}")
    assert sorted(readback.taps(host)) == db_taps(cluster)
    assert sorted(p["id"] for p in ports(cluster)) == sorted(p["id"] for p in made)
    assert len(transactions(cluster)) == 1  # the report was recorded in one transaction


def test_reports_queued_while_the_control_worker_is_busy_are_one_transaction(
    cluster: Cluster, host: str
) -> None:
    client = broker(cluster)
    stop(cluster, "control", CONTROL_QUEUE)
    made = []
    for i in range(N):  # one at a time: one bundle, one ports report with its revision
        made.append(create_port(cluster, f"52:54:00:31:00:{i:02x}"))
        revision = desired(cluster)
        wait_for(lambda r=revision: r in reports(client)[1], what=f"h1 applied\n{cluster.logs()}")
    assert len(reports(client)[1]) == N
    cluster.signal("control", signal.SIGCONT)
    wait_for(lambda: all_plugged(cluster, N), what=f"{N} plugged\n{cluster.logs()}")
    assert len(transactions(cluster)) == 1  # N reports, one transaction
    # their plug times, counted after that commit in a transaction of their own
    wait_for(lambda: plug_samples(cluster) >= N, what=f"{N} plug times counted")
    # the resync may meanwhile have resent the whole state (the host lagged while the
    # control worker was stopped): its revision is recorded too
    wait_for(lambda: in_sync(cluster), what=f"h1 in sync\n{cluster.logs()}")
    assert sorted(readback.taps(host)) == db_taps(cluster)


def test_a_host_worker_killed_in_a_drained_batch_converges(cluster: Cluster, host: str) -> None:
    client = broker(cluster)
    stop(cluster, "h1", HOST_QUEUE)
    made = [create_port(cluster, f"52:54:00:32:00:{i:02x}") for i in range(N)]
    unacked = f"unacked:{HOST_QUEUE}"
    cluster.signal("h1", signal.SIGCONT)
    # killed while it holds the one it was given and those it took along, unacknowledged
    deadline = time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, "h1 held no drained batch"
        if client.hlen(unacked) > 1:
            cluster.signal("h1", signal.SIGSTOP)
            if client.hlen(unacked) > 1:
                break
            cluster.signal("h1", signal.SIGCONT)
        time.sleep(0.001)
    cluster.kill("h1", signal.SIGKILL)
    assert {p["state"] for p in ports(cluster)} == {"plugging"}  # no report was recorded
    cluster.start_host("h1", host)
    wait_for(lambda: all_plugged(cluster, N), timeout=60, what=f"{N} plugged\n{cluster.logs()}")
    found = readback.taps(host)
    assert sorted(found) == db_taps(cluster)
    assert sorted(p["id"] for p in ports(cluster)) == sorted(p["id"] for p in made)
    assert all(link["master"] == "vnlv0" for link in found.values())
    assert len(readback.static_entries(host)) == N
