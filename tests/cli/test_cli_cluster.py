"""The client against real host workers in network namespaces: waiting, and a failed operation."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Result, Virtnet, fields, make_token, table
from tests.cluster import Cluster

pytestmark = pytest.mark.integration


def test_verbs_wait_for_hosts_and_report_a_failed_operation(
    cluster: Cluster,
    two_hosts: dict[str, str],
) -> None:
    virtnet = Virtnet(cluster.serve_http(), cluster.settings, make_token(cluster.settings, "admin"))
    network = {
        "name": "lab",
        "bridge": {"name": "vnclab0", "stp": False, "mac_table_manager": "kernel"},
    }
    domain = {
        "name": "vm1",
        "host": "h1",
        "interfaces": [
            {"type": "network", "source": {"network": "lab"}, "mac": "52:54:00:c1:00:01"}
        ],
    }
    cluster.api.post("/v1/networks", json=network).raise_for_status()
    cluster.api.post("/v1/domains", json=domain).raise_for_status()

    # net-start returns once both hosts made the bridge; start once the tap is plugged
    assert virtnet.ok("net-start", "lab").out == "Network lab started\n"
    assert virtnet.ok("start", "vm1").out == "Domain 'vm1' started\n"
    info, iflist = virtnet.each(["net-info", "lab"], ["domiflist", "vm1"])
    assert fields(info.out)["Host h1"] == "active" and fields(info.out)["Host h2"] == "active"
    assert table(iflist.out)[1] == [
        ["vnet0", "network", "lab", "-", "52:54:00:c1:00:01", "vnclab0", "kernel", "plugged", "tap"]
    ]

    # a bridge that does not exist on h1: the host refuses, the operation fails, exit 1
    failed: Result = virtnet(
        "attach-interface", "vm1", "--type", "bridge", "--source", "nosuchbr0", "--json"
    )
    assert failed.code == 1
    assert failed.err.startswith("error: operation ") and " failed: " in failed.err
    assert "nosuchbr0" in failed.err
    assert failed.json()["state"] == "failed"  # --json still prints the operation

    assert virtnet.ok("destroy", "vm1").out == "Domain 'vm1' destroyed\n"
    assert table(virtnet.ok("domiflist", "vm1").out)[1][0][-1] == "-"
