"""Host reports racing API writes: a delete that raced a plug stays deleted, every operation
ends, and a force stop leaves neither rows nor taps behind (issue 10, items 2 and 4)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from app.db import get_sessionmaker
from app.models import Operation, Port
from tests.cluster import Cluster, wait_for
from tests.kernel import readback

OWNER = {"name": "vm", "uuid": "5b0c2a9e-3f7d-4f59-b0a6-9d1c2e3f4a5c"}


@pytest.fixture
def lv(cluster: Cluster, two_hosts: dict[str, str]) -> str:
    bridge = {"name": "vnrr0", "stp": False, "mac_table_manager": "libvirt"}
    cluster.api.post("/v1/networks", json={"name": "lv", "bridge": bridge})
    assert cluster.api.post("/v1/networks/lv/start").status_code == 200
    cluster.wait_network("lv")
    return two_hosts["h1"]


def rows(cluster: Cluster, model: Any) -> list[Any]:
    with get_sessionmaker(cluster.settings.effective_database_url)() as session:
        found = list(session.query(model))
        session.expunge_all()
        return found


def running_operations(cluster: Cluster) -> list[tuple[str, str, int]]:
    return [(o.kind, o.target, o.pending) for o in rows(cluster, Operation) if o.state == "running"]


def test_delete_racing_plug_stays_deleted(cluster: Cluster, lv: str) -> None:
    base = cluster.serve_http()
    headers = dict(cluster.api.headers)

    def pair(client: httpx.Client, i: int) -> tuple[str, str, int]:
        body = {"owner": OWNER, "host": "h1", "mac": f"52:54:00:40:{i // 256:02x}:{i % 256:02x}"}
        created = client.post(f"{base}/v1/networks/lv/ports", json=body, headers=headers)
        assert created.status_code == 202, created.text
        port = created.json()
        gone = client.delete(f"{base}/v1/networks/lv/ports/{port['id']}", headers=headers)
        assert gone.status_code in (200, 202), gone.text
        return port["id"], port["operation_id"], gone.status_code

    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(4) as pool:
        pairs = list(pool.map(lambda i: pair(client, i), range(200)))

    def settled() -> bool:
        return not rows(cluster, Port) and not running_operations(cluster)

    wait_for(settled, timeout=60, what=f"every port gone\n{running_operations(cluster)}")
    # the kernel agrees: no tap is left on the host
    wait_for(lambda: not readback.taps(lv), timeout=20, what="no tap left")
    assert not readback.static_entries(lv)
    # a restarted worker reconciles with the whole desired state: nothing comes back
    cluster.kill("h1")
    cluster.start_host("h1", lv)
    cluster.wait_hosts_up("h1")
    probe = cluster.api.post("/v1/networks/lv/ports?wait=20", json={"owner": OWNER, "host": "h1"})
    assert probe.status_code == 201 and probe.json()["state"] == "plugged", probe.text
    assert sorted(readback.taps(lv)) == [
        "vnet0"
    ]  # the probe's: reconcile ran before it (FIFO queue)
    ops = {o.id: o for o in rows(cluster, Operation)}
    for _, plug_id, _ in pairs:
        plug = ops[plug_id]
        assert plug.state in ("succeeded", "failed"), (plug.kind, plug.state)
        if plug.state == "failed":
            assert plug.error and plug.error.startswith("superseded by operation "), plug.error
