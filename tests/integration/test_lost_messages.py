"""Durable intent with real processes: a nudge or a report deleted from Redis delays
convergence by about one resync period; it never prevents it (app.services.intent)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app.celery_app import (
    APPLY_BUNDLE,
    APPLY_PORTS,
    CONTROL_QUEUE,
    REPORT_PORTS,
    REPORT_REALISATION,
    host_queue,
    make_celery,
)
from tests import netns
from tests.cluster import Cluster, wait_for
from tests.kernel import readback

OWNER = {"name": "vm", "uuid": "5b0c2a9e-3f7d-4f59-b0a6-9d1c2e3f4a5c"}
#: the resync period of these tests; convergence is asserted within it plus this margin
RESYNC, MARGIN = 1.0, 10.0


@pytest.fixture
def host(cluster: Cluster) -> Iterator[str]:
    """h1 in a namespace, network 'lv' active on it. A stopped worker sends no heartbeats:
    the host must not go down meanwhile, or its comeback (a full reconcile) would repair
    what these tests leave to the periodic pass."""
    yield from lv_on_h1(cluster)


def lv_on_h1(cluster: Cluster) -> Iterator[str]:
    """A fixture's body: h1 with its worker and the control worker, network 'lv' active on
    it, a resync period of RESYNC, and a host-down window (API and workers) long enough for
    a test to stop workers (SIGSTOP) without h1 being called down."""
    if not netns.can_create_namespaces():
        pytest.skip("needs root and ip netns")
    cluster.configure(resync_seconds=RESYNC, missed_heartbeats=400)
    with netns.namespace("h1") as ns:
        cluster.start_control()
        cluster.start_host("h1", ns)
        cluster.wait_hosts_up("h1")
        bridge = {"name": "vnlv0", "stp": False, "mac_table_manager": "libvirt"}
        cluster.api.post("/v1/networks", json={"name": "lv", "bridge": bridge})
        assert cluster.api.post("/v1/networks/lv/start").status_code == 200
        cluster.wait_network("lv")
        yield ns
        cluster.close()


def taps(ns: str) -> set[str]:
    return {
        name
        for name, link in readback.links(ns).items()
        if link.get("linkinfo", {}).get("info_kind") == "tun"
    }


def broker(cluster: Cluster) -> redis.Redis:
    return redis.Redis.from_url(cluster.settings.effective_broker_url)


def drop(client: redis.Redis, queue: str, *tasks: str) -> int:
    """Delete the queued messages of these task names; how many there were."""
    dropped = 0
    for raw in client.lrange(queue, 0, -1):
        if json.loads(raw)["headers"]["task"] in tasks:
            dropped += client.lrem(queue, 1, raw)
    return dropped


def stop(cluster: Cluster, key: str, queue: str) -> None:
    """SIGSTOP a worker. A wait for messages it had already asked Redis for is answered
    with the next one: give it a harmless one, so that what follows stays in the list."""
    cluster.signal(key, signal.SIGSTOP)
    if key == "control":
        time.sleep(1.5)  # heartbeats arrive every half second and take that answer
        return
    make_celery(cluster.settings).send_task(APPLY_PORTS, kwargs={"ports": []}, queue=queue)
    time.sleep(1.5)


def in_sync(cluster: Cluster) -> bool:
    """The host reported the revision the database last sent it (GET /v1/hosts/h1)."""
    host = cluster.api.get("/v1/hosts/h1").json()
    return bool(host["applied_revision"] == host["desired_revision"] > 0)


def port_state(cluster: Cluster, port_id: str) -> str | None:
    r = cluster.api.get(f"/v1/networks/lv/ports/{port_id}")
    return r.json()["state"] if r.status_code == 200 else None


def create_port(cluster: Cluster, mac: str, **query: Any) -> dict[str, Any]:
    wait = f"?wait={query['wait']}" if "wait" in query else ""
    r = cluster.api.post(
        f"/v1/networks/lv/ports{wait}", json={"owner": OWNER, "host": "h1", "mac": mac}
    )
    assert r.status_code in (200, 201, 202), r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_dropped_nudge_is_repaired_by_the_periodic_pass(cluster: Cluster, host: str) -> None:
    stop(cluster, "h1", host_queue("h1"))
    port = create_port(cluster, "52:54:00:40:00:01")
    assert drop(broker(cluster), host_queue("h1"), APPLY_BUNDLE) == 1
    cluster.signal("h1", signal.SIGCONT)
    wait_for(
        lambda: port_state(cluster, port["id"]) == "plugged",
        timeout=RESYNC + MARGIN,
        what=f"port plugged\n{cluster.logs()}",
    )
    assert taps(host) == {port["actual"]["tap"]}
    assert readback.links(host)[port["actual"]["tap"]]["master"] == "vnlv0"
    wait_for(lambda: in_sync(cluster), timeout=5, what="host h1 at its desired revision")
    assert 'virtnet_host_revision_lag{host="h1"} 0.0' in cluster.api.get("/metrics").text


# the ports report carries the revision its batch reached: losing it loses both; a revision
# report of its own follows only a batch with no port results
@pytest.mark.parametrize("lost", [[REPORT_PORTS]])
def test_a_dropped_report_is_repaired_by_the_periodic_pass(
    cluster: Cluster, host: str, lost: list[str]
) -> None:
    stop(cluster, "control", CONTROL_QUEUE)
    port = create_port(cluster, "52:54:00:40:00:02")
    tap = port["actual"]["tap"]
    wait_for(lambda: tap in taps(host), what="tap plugged on the host")
    client, left = broker(cluster), set(lost)

    def dropped() -> bool:
        for task in list(left):
            if drop(client, CONTROL_QUEUE, task):
                left.discard(task)
        return not left

    wait_for(dropped, what=f"the host's reports {lost} dropped")
    assert port_state(cluster, port["id"]) == "plugging"
    cluster.signal("control", signal.SIGCONT)
    wait_for(
        lambda: port_state(cluster, port["id"]) == "plugged",
        timeout=RESYNC + MARGIN,
        what=f"port plugged\n{cluster.logs()}",
    )
    assert taps(host) == {tap}
    wait_for(lambda: in_sync(cluster), timeout=5, what="host h1 at its desired revision")


def test_a_deleted_port_whose_unplug_was_dropped_loses_its_tap(cluster: Cluster, host: str) -> None:
    port = create_port(cluster, "52:54:00:40:00:03", wait=20)
    assert port["state"] == "plugged"
    assert taps(host) == {port["actual"]["tap"]}
    stop(cluster, "h1", host_queue("h1"))
    r = cluster.api.delete(f"/v1/networks/lv/ports/{port['id']}")
    assert r.status_code == 202, r.text
    assert drop(broker(cluster), host_queue("h1"), APPLY_BUNDLE) == 1
    cluster.signal("h1", signal.SIGCONT)
    wait_for(
        lambda: not taps(host) and port_state(cluster, port["id"]) is None,
        timeout=RESYNC + MARGIN,
        what=f"tap removed and port released\n{cluster.logs()}",
    )


def test_a_dropped_realisation_report_is_repaired(cluster: Cluster, host: str) -> None:
    stop(cluster, "control", CONTROL_QUEUE)
    bridge = {"name": "vnkn0", "stp": False}
    cluster.api.post("/v1/networks", json={"name": "kn", "bridge": bridge})
    assert cluster.api.post("/v1/networks/kn/start").status_code == 200
    wait_for(lambda: "vnkn0" in readback.links(host), what="bridge made on the host")
    client = broker(cluster)
    wait_for(
        lambda: drop(client, CONTROL_QUEUE, REPORT_REALISATION) or None,
        what="the realisation report dropped",
    )
    cluster.signal("control", signal.SIGCONT)
    assert cluster.network("kn")["status"]["state"] == "starting"
    cluster.wait_network("kn", timeout=RESYNC + MARGIN)
    wait_for(lambda: in_sync(cluster), timeout=5, what="host h1 at its desired revision")
