"""A change reaches the other hosts of an overlay network as a delta; a delta lost on the way
is repaired, both by the control worker's sweep (the host's digest stays behind) and by the
next delta (it does not fit the table the host holds, so the host asks for all of it).

Three hosts in namespaces, as in test_overlay_hosts; the delta is taken off the broker
(Redis) while h2's worker is stopped, as the fault suite drops nudges."""

from __future__ import annotations

import base64
import json
import signal
import time
from typing import Any

import redis

from app.celery_app import make_celery
from app.messages.names import APPLY_BUNDLE, SYNC_OVERLAY_DELTA, host_queue
from tests import underlay as ul
from tests.cluster import Cluster, wait_for
from tests.kernel import readback as rb
from tests.overlay.test_overlay_hosts import DEV, VNI, add_port, fleet, wait_in_sync

__all__ = ["fleet"]  # the fixture, shared with test_overlay_hosts

MACS = [f"52:54:00:0e:00:{i:02x}" for i in range(1, 5)]


def remote_entries(ns: str) -> dict[str, str]:
    """MAC -> underlay destination of the VXLAN device's entries on one host."""
    return {
        e["mac"]: e["dst"]
        for e in rb.fdb(ns)
        if e.get("ifname") == DEV and e.get("dst") and e["mac"] != "00:00:00:00:00:00"
    }


def delta_bundle(raw: bytes | str) -> bool:
    message = json.loads(raw)
    if message["headers"]["task"] != APPLY_BUNDLE:
        return False
    body = json.loads(base64.b64decode(message["body"]))
    return any(name == SYNC_OVERLAY_DELTA for name, _ in body[1]["steps"])


def plug_with_delta_dropped(cluster: Cluster, host: str, mac: str, victim: str) -> None:
    """Plug ``mac`` on ``host``; the delta bundle for ``victim`` never reaches it."""
    client = redis.Redis.from_url(cluster.settings.effective_broker_url)
    queue = host_queue(victim)
    cluster.signal(victim, signal.SIGSTOP)
    try:
        # a stopped worker may still be blocked reading the queue: a message it cannot act
        # on (a revision it has) takes that read, so the delta waits in the list
        celery = make_celery(cluster.settings)
        empty = {"base": 0, "revision": 0, "full": False, "steps": []}
        celery.send_task(APPLY_BUNDLE, kwargs=empty, queue=queue)
        add_port(cluster, host, mac)
        deadline = time.monotonic() + 20
        while True:
            dropped: list[Any] = [r for r in client.lrange(queue, 0, -1) if delta_bundle(r)]
            if dropped and client.lrem(queue, 1, dropped[-1]) == 1:
                break
            assert time.monotonic() < deadline, "the delta never reached the broker"
            time.sleep(0.02)
    finally:
        cluster.signal(victim, signal.SIGCONT)
        client.close()


def test_a_dropped_delta_is_repaired(cluster: Cluster, fleet: tuple[str, dict[str, str]]) -> None:
    _, ns = fleet
    network: dict[str, Any] = {
        "name": "ov",
        "bridge": {"name": "vbrov", "stp": False, "mac_table_manager": "libvirt"},
        "overlay": {"type": "vxlan", "vni": VNI},
    }
    assert cluster.api.post("/v1/networks?start=true", json=network).status_code == 201
    wait_in_sync(cluster, {"h0": 0, "h1": 0, "h2": 0})
    add_port(cluster, "h0", MACS[0])
    wait_in_sync(cluster, {"h0": 0, "h1": 1, "h2": 1})

    # lost, and nothing changes after it: the sweep sees h2's digest behind and resends all
    plug_with_delta_dropped(cluster, "h0", MACS[1], "h2")
    assert MACS[1] in remote_entries(ns["h1"])
    wait_for(
        lambda: remote_entries(ns["h2"]).get(MACS[1]) == ul.address(0),
        timeout=30,
        what=f"{MACS[1]} repaired on h2",
    )
    wait_in_sync(cluster, {"h0": 0, "h1": 2, "h2": 2})

    # lost, then another change: its delta does not fit h2's table; h2 gets the whole one
    plug_with_delta_dropped(cluster, "h1", MACS[2], "h2")
    asked = (cluster.log_dir / "h2.log").read_text().count("does not fit the table held")
    add_port(cluster, "h0", MACS[3])
    want = {MACS[0]: ul.address(0), MACS[1]: ul.address(0), MACS[3]: ul.address(0)}
    wait_for(
        lambda: remote_entries(ns["h2"]) == {**want, MACS[2]: ul.address(1)},
        timeout=30,
        what="both entries on h2",
    )
    wait_in_sync(cluster, {"h0": 1, "h1": 3, "h2": 4})
    assert (cluster.log_dir / "h2.log").read_text().count("does not fit the table held") > asked
    assert remote_entries(ns["h0"]) == {MACS[2]: ul.address(1)}
    assert remote_entries(ns["h1"]) == want
