from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import netns
from tests.cluster import Cluster

GUEST_LV, GUEST_KN = "vnglv0", "vngkn0"


@pytest.fixture
def guest_host(cluster: Cluster) -> Iterator[str]:
    """One simulated host (a namespace with its worker) for real guests, with networks
    'lv' (macTableManager libvirt) and 'kn' (kernel), STP off so ports forward at once."""
    if not netns.can_create_namespaces():
        pytest.skip("needs root and ip netns")
    with netns.namespace("h") as ns:
        cluster.start_control()
        cluster.start_host("h1", ns)
        cluster.wait_hosts_up("h1")
        for name, bridge, mtm in (("lv", GUEST_LV, "libvirt"), ("kn", GUEST_KN, "kernel")):
            bridge_def = {"name": bridge, "stp": False, "mac_table_manager": mtm}
            cluster.api.post("/v1/networks", json={"name": name, "bridge": bridge_def})
            assert cluster.api.post(f"/v1/networks/{name}/start").status_code == 200
            cluster.wait_network(name)
        yield ns
        cluster.close()
