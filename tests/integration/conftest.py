from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import netns
from tests.cluster import Cluster

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_namespaces() -> None:
    if not netns.can_create_namespaces():
        pytest.skip("needs root and ip netns")


@pytest.fixture
def two_hosts(cluster: Cluster) -> Iterator[dict[str, str]]:
    """Two simulated hosts, each a namespace with a host worker, and the control worker."""
    with netns.namespace("h1") as ns1, netns.namespace("h2") as ns2:
        hosts = {"h1": ns1, "h2": ns2}
        cluster.start_control()
        for host, ns in hosts.items():
            cluster.start_host(host, ns)
        cluster.wait_hosts_up(*hosts)
        yield hosts
        cluster.close()  # workers stop before their namespaces go
