"""Races between clients answer 4xx, never 500: the real app over HTTP, on real PostgreSQL.

Each test starts the API under uvicorn and fires requests from many threads at once, so the
transactions really interleave in PostgreSQL (unique indexes, row locks, deadlocks).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db import get_sessionmaker
from app.models import Port
from tests.api.test_ports_api import add_host
from tests.cluster import Cluster, wait_for

CLIENTS = 8


@pytest.fixture
def http(cluster: Cluster) -> Iterator[Callable[[], httpx.Client]]:
    """A factory of HTTP clients of the API served by uvicorn, as an admin."""
    base = cluster.serve_http()
    auth = cluster.api.headers["Authorization"]
    made: list[httpx.Client] = []

    def client() -> httpx.Client:
        c = httpx.Client(base_url=base, headers={"Authorization": auth}, timeout=60)
        made.append(c)
        return c

    yield client
    for c in made:
        c.close()


def at_once(n: int, call: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """``call(i)`` for i in range(n), all released together by a barrier."""
    barrier = threading.Barrier(n)

    def run(i: int) -> httpx.Response:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def no_server_errors(responses: list[httpx.Response]) -> None:
    errors = [(r.status_code, r.text) for r in responses if r.status_code >= 500]
    assert not errors, errors


def test_one_name_defined_by_many_clients(http: Callable[[], httpx.Client]) -> None:
    clients = [http() for _ in range(CLIENTS)]
    for round_ in range(5):
        name = f"same{round_}"
        body: dict[str, Any] = {"name": name}
        answers = at_once(CLIENTS, lambda i, b=body: clients[i].post("/v1/networks", json=b))
        no_server_errors(answers)
        assert statuses(answers) == {201: 1, 409: CLIENTS - 1}, [a.text for a in answers]
        for lost in (a for a in answers if a.status_code == 409):
            assert lost.headers["content-type"].startswith("application/problem+json")
            assert name in lost.json()["detail"], lost.text


def test_networks_without_a_bridge_name_get_distinct_ones(
    http: Callable[[], httpx.Client],
) -> None:
    clients = [http() for _ in range(CLIENTS)]
    for round_ in range(3):
        answers = at_once(
            CLIENTS,
            lambda i, r=round_: clients[i].post("/v1/networks", json={"name": f"auto{r}-{i}"}),
        )
        no_server_errors(answers)
        assert statuses(answers) == {201: CLIENTS}, [a.text for a in answers]
    bridges = [n["bridge"]["name"] for n in clients[0].get("/v1/networks").json()["items"]]
    assert len(bridges) == 3 * CLIENTS
    assert len(set(bridges)) == len(bridges), sorted(bridges)
    assert all(b.startswith("virbr") for b in bridges)


def test_ports_created_at_once_on_one_host_get_distinct_taps(
    http: Callable[[], httpx.Client], cluster: Cluster
) -> None:
    add_host(cluster.settings, "hostA")
    c = http()
    assert c.post("/v1/networks?start=true", json={"name": "n"}).status_code == 201
    clients = [http() for _ in range(CLIENTS)]
    owner = {"name": "vm", "uuid": "6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d"}
    for _ in range(3):
        answers = at_once(
            CLIENTS,
            lambda i: clients[i].post(
                "/v1/networks/n/ports", json={"owner": owner, "host": "hostA"}
            ),
        )
        no_server_errors(answers)
        assert statuses(answers) == {202: CLIENTS}, [a.text for a in answers]
    with get_sessionmaker(cluster.settings.effective_database_url)() as session:
        taps = list(session.scalars(select(Port.tap).where(Port.host == "hostA")))
    assert len(taps) == 3 * CLIENTS and len(set(taps)) == len(taps), sorted(taps)


def test_stop_and_undefine_against_port_traffic(
    http: Callable[[], httpx.Client], cluster: Cluster, two_hosts: dict[str, str]
) -> None:
    """Ports created, reported plugged and deleted by real host workers while the network is
    force-stopped and undefined: every answer is a 2xx or a 4xx."""
    admin = http()
    owner = {"name": "vm", "uuid": "6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d"}
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def traffic(client: httpx.Client, host: str, stop: threading.Event) -> None:
        while not stop.is_set():
            r = client.post("/v1/networks/busy/ports?wait=2", json={"owner": owner, "host": host})
            got = [r]
            if r.status_code in (200, 201, 202) and random.random() < 0.5:
                got.append(client.delete(f"/v1/networks/busy/ports/{r.json()['id']}?wait=2"))
            with lock:
                answers.extend(got)

    for round_ in range(int(os.environ.get("RACE_ROUNDS", "4"))):
        if round_ % 2 == 0:  # the odd rounds leave no network behind
            r = admin.post("/v1/networks", json={"name": "busy", "bridge": {"stp": False}})
            assert r.status_code == 201, r.text
        assert admin.post("/v1/networks/busy/start").status_code == 200
        cluster.wait_network("busy")
        stop = threading.Event()
        workers = [
            threading.Thread(target=traffic, args=(http(), host, stop)) for host in ("h1", "h2") * 3
        ]
        for w in workers:
            w.start()
        before = len(answers)
        wait_for(lambda b=before: len(answers) > b + 8, what="port traffic")
        # undefine an active network (it lives on as transient), then stop it for good;
        # or stop the persistent one and keep its definition for the next round
        if round_ % 2 == 1:
            answers.append(admin.delete("/v1/networks/busy"))
        answers.append(admin.post("/v1/networks/busy/stop?force=true"))
        time.sleep(0.5)  # ports keep coming at a network now inactive or gone
        stop.set()
        for w in workers:
            w.join()
    no_server_errors(answers)
    assert {r.status_code for r in answers} <= {200, 201, 202, 204, 404, 409}, statuses(answers)
    # nor did a report get lost to a deadlock or a port changed meanwhile: each is run again
    control = (cluster.log_dir / "control.log").read_text()
    assert "raised unexpected" not in control, control[-3000:]


def test_one_explicit_bridge_or_domain_name_claimed_by_many(
    http: Callable[[], httpx.Client], cluster: Cluster
) -> None:
    clients = [http() for _ in range(CLIENTS)]
    answers = at_once(
        CLIENTS,
        lambda i: clients[i].post(
            "/v1/networks", json={"name": f"br{i}", "bridge": {"name": "vnshared0"}}
        ),
    )
    no_server_errors(answers)
    assert statuses(answers) == {201: 1, 409: CLIENTS - 1}, [a.text for a in answers]
    assert all("vnshared0" in a.json()["detail"] for a in answers if a.status_code == 409)

    add_host(cluster.settings, "hostA")
    domain = {"name": "vm1", "host": "hostA", "type": "kvm", "memory": 1048576, "vcpus": 1}
    answers = at_once(CLIENTS, lambda i: clients[i].post("/v1/domains", json=domain))
    no_server_errors(answers)
    assert statuses(answers) == {201: 1, 409: CLIENTS - 1}, [a.text for a in answers]
    assert all("vm1" in a.json()["detail"] for a in answers if a.status_code == 409)


def test_concurrent_updates_from_one_revision_keep_one(http: Callable[[], httpx.Client]) -> None:
    """Each client read revision 1 and PUTs its own change with If-Match: 1. The network's row
    is locked for the write, so exactly one wins and the others get 412, not a lost update."""
    clients = [http() for _ in range(CLIENTS)]
    r = clients[0].post("/v1/networks", json={"name": "upd", "bridge": {"name": "vnupd0"}})
    assert r.status_code == 201 and r.headers["etag"] == '"1"', r.text
    answers = at_once(
        CLIENTS,
        lambda i: clients[i].put(
            "/v1/networks/upd",
            json={"name": "upd", "bridge": {"name": "vnupd0", "delay": i}},
            headers={"If-Match": '"1"'},
        ),
    )
    no_server_errors(answers)
    assert statuses(answers) == {200: 1, 412: CLIENTS - 1}, [a.text for a in answers]
    winner = next(i for i, a in enumerate(answers) if a.status_code == 200)
    stored = clients[0].get("/v1/networks/upd").json()
    assert stored["bridge"]["delay"] == winner and stored["status"]["revision"] == 2
