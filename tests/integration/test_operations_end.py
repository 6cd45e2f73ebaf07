"""Every operation ends, succeeded or failed with a reason: a host silent past the deadline,
superseded by a later operation, cancelled by a force stop (issue 10, item 4)."""

from __future__ import annotations

import itertools
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from app.db import get_sessionmaker
from app.models import Network, Operation, Port
from tests.cluster import Cluster, wait_for
from tests.kernel import readback

OWNER = {"name": "vm", "uuid": "5b0c2a9e-3f7d-4f59-b0a6-9d1c2e3f4a5d"}
DEADLINE = 3.0


@pytest.fixture
def h1(cluster: Cluster, two_hosts: dict[str, str]) -> Iterator[str]:
    """h1's namespace, with a control worker whose operation deadline is short."""
    cluster.kill("control")
    cluster.configure(operation_deadline_seconds=DEADLINE)
    cluster.start_control()
    yield two_hosts["h1"]
    if "h1" in cluster.procs:
        cluster.signal("h1", signal.SIGCONT)  # never leave a stopped worker behind


def network(cluster: Cluster, name: str, bridge: str, *, transient: bool = False) -> None:
    body = {"name": name, "bridge": {"name": bridge, "stp": False}}
    if transient:
        r = cluster.api.post("/v1/networks?start=true", json=body)
        assert r.status_code in (200, 201), r.text
    else:
        cluster.api.post("/v1/networks", json=body)
        assert cluster.api.post(f"/v1/networks/{name}/start").status_code == 200
    cluster.wait_network(name)


def create(cluster: Cluster, net: str, i: int, host: str = "h1") -> dict[str, Any]:
    body = {"owner": OWNER, "host": host, "mac": f"52:54:00:50:00:{i:02x}"}
    r = cluster.api.post(f"/v1/networks/{net}/ports", json=body)
    assert r.status_code == 202, r.text
    return r.json()


def operation(cluster: Cluster, op_id: str) -> dict[str, Any]:
    r = cluster.api.get(f"/v1/operations/{op_id}")
    assert r.status_code == 200, r.text
    return r.json()


def ended(cluster: Cluster, op_id: str, timeout: float = 20) -> dict[str, Any]:
    return wait_for(
        lambda: (op := operation(cluster, op_id))["state"] != "running" and op,
        timeout=timeout,
        what=f"operation {op_id} ended\n{cluster.logs()}",
    )


def test_a_silent_host_fails_the_operation_and_converges_when_back(
    cluster: Cluster, h1: str
) -> None:
    network(cluster, "lab", "vnoe0")
    cluster.signal("h1", signal.SIGSTOP)  # heartbeats stop too: create before h1 looks down
    port = create(cluster, "lab", 1)
    op = ended(cluster, port["operation_id"])
    assert op["state"] == "failed"
    assert op["error"] == f"host h1 did not answer within {DEADLINE:g} s"
    # the port is still wanted: once the host is back, it converges
    assert cluster.api.get(f"/v1/networks/lab/ports/{port['id']}").json()["state"] == "plugging"
    cluster.signal("h1", signal.SIGCONT)
    wait_for(
        lambda: (
            cluster.api.get(f"/v1/networks/lab/ports/{port['id']}").json()["state"] == "plugged"
        ),
        what=f"port plugged once h1 is back\n{cluster.logs()}",
    )
    assert readback.taps(h1)[port["actual"]["tap"]]["master"] == "vnoe0"


def test_a_delete_supersedes_the_plug_it_raced(cluster: Cluster, h1: str) -> None:
    network(cluster, "lab", "vnoe0")
    cluster.signal("h1", signal.SIGSTOP)  # neither task runs before the delete is in
    port = create(cluster, "lab", 2)
    gone = cluster.api.delete(f"/v1/networks/lab/ports/{port['id']}")
    assert gone.status_code == 202, gone.text
    plug = operation(cluster, port["operation_id"])
    assert plug["state"] == "failed"
    assert plug["error"] == f"superseded by operation {gone.json()['id']}"
    cluster.signal("h1", signal.SIGCONT)
    unplug = ended(cluster, gone.json()["id"])
    assert unplug["state"] == "succeeded", unplug
    assert cluster.api.get(f"/v1/networks/lab/ports/{port['id']}").status_code == 404
    assert not readback.taps(h1)


def test_a_force_stop_cancels_the_plugs_it_cascades_away(cluster: Cluster, h1: str) -> None:
    network(cluster, "tr", "vnoe1", transient=True)
    cluster.signal("h1", signal.SIGSTOP)
    ports = [create(cluster, "tr", i) for i in (3, 4)]
    assert cluster.api.post("/v1/networks/tr/stop?force=true").status_code == 204
    for port in ports:
        op = operation(cluster, port["operation_id"])
        assert (op["state"], op["error"]) == ("failed", "cancelled by force stop of network tr")
    with get_sessionmaker(cluster.settings.effective_database_url)() as session:
        assert not session.query(Port).count()
        assert not session.query(Operation).filter(Operation.state == "running").count()
    cluster.signal("h1", signal.SIGCONT)
    wait_for(lambda: "vnoe1" not in readback.links(h1), what="bridge removed")
    wait_for(lambda: not readback.taps(h1), what="taps removed")


def test_force_stop_and_undefine_racing_creates_leave_nothing_behind(
    cluster: Cluster, h1: str
) -> None:
    network(cluster, "lab", "vnoe2")
    base = cluster.serve_http()
    headers = dict(cluster.api.headers)

    counter = itertools.count()
    stopped = threading.Event()

    def allocate(client: httpx.Client) -> list[int]:
        codes: list[int] = []
        while not stopped.is_set() or len(codes) < 40:  # a few more after the stop, too
            i = next(counter)
            body = {
                "owner": OWNER,
                "host": "h1",
                "mac": f"52:54:00:51:{i // 256:02x}:{i % 256:02x}",
            }
            r = client.post(f"{base}/v1/networks/lab/ports", json=body, headers=headers)
            assert r.status_code in (202, 404, 409), r.text
            codes.append(r.status_code)
        return codes

    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(4) as pool:
        creators = [pool.submit(allocate, client) for _ in range(4)]
        wait_for(lambda: len(readback.taps(h1)) >= 10, what="plugging under way")
        stop = client.post(f"{base}/v1/networks/lab/stop?force=true", headers=headers)
        assert stop.status_code == 200, stop.text
        gone = client.delete(f"{base}/v1/networks/lab", headers=headers)
        stopped.set()
        assert gone.status_code in (200, 204), gone.text
        codes = [c for f in creators for c in f.result()]
    assert 202 in codes and {404, 409} & set(codes), codes

    def settled() -> bool:
        with get_sessionmaker(cluster.settings.effective_database_url)() as session:
            return not session.query(Port).count() and not session.query(Network).count()

    wait_for(settled, what="no port row left")
    wait_for(lambda: "vnoe2" not in readback.links(h1), what="bridge removed")
    wait_for(lambda: not readback.taps(h1), what=f"no tap left\n{readback.taps(h1)}")
    with get_sessionmaker(cluster.settings.effective_database_url)() as session:
        running = session.query(Operation).filter(Operation.state == "running").all()
        assert not running, [(o.kind, o.target) for o in running]
