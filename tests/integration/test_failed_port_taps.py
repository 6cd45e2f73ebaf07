"""A port whose plug failed keeps its row, but not its tap name: the host has no device for
it, the next port on that host gets the name, and no reconcile plugs the failed one again."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests import netns
from tests.cluster import Cluster, wait_for
from tests.kernel import readback

OWNER = {"name": "vm", "uuid": "0f3c8a51-2f7e-4d0b-9a61-4b7d2c1e9f30"}


@pytest.fixture
def h1(cluster: Cluster) -> Iterator[str]:
    """One host with a network 'kn' it realises and a network 'fb' it cannot: a
    <forward mode='bridge'/> onto a host bridge that does not exist there."""
    if not netns.can_create_namespaces():
        pytest.skip("needs root and ip netns")
    with netns.namespace("h") as ns:
        cluster.start_control()
        cluster.start_host("h1", ns)
        cluster.wait_hosts_up("h1")
        kn = {"name": "kn", "bridge": {"name": "vnkn0", "stp": False}}
        fb = {"name": "fb", "forward": {"mode": "bridge"}, "bridge": {"name": "nosuchbr0"}}
        for network in (kn, fb):
            cluster.api.post("/v1/networks", json=network).raise_for_status()
            cluster.api.post(f"/v1/networks/{network['name']}/start").raise_for_status()
        cluster.wait_network("kn")
        cluster.wait_network("fb", state="failed")
        yield ns
        cluster.close()


def taps(ns: str) -> dict[str, str]:
    """Each tap in the namespace and the port that owns it (its virtnet alias)."""
    return {
        name: link.get("ifalias", "").removeprefix("virtnet:")
        for name, link in readback.links(ns).items()
        if link.get("linkinfo", {}).get("info_kind") == "tun"
    }


def plug(cluster: Cluster, network: str, mac: str) -> dict[str, Any]:
    body = {"owner": OWNER, "host": "h1", "mac": mac}
    r = cluster.api.post(f"/v1/networks/{network}/ports?wait=20", json=body)
    assert r.status_code == 201, r.text
    port: dict[str, Any] = r.json()
    return port


def test_a_failed_ports_tap_name_goes_to_the_next_port(cluster: Cluster, h1: str) -> None:
    failed = plug(cluster, "fb", "52:54:00:fa:00:01")
    assert failed["state"] == "failed" and "nosuchbr0" in failed["error"]
    assert failed["actual"]["tap"] == "vnet0"  # the name it had, shown as history
    assert taps(h1) == {}  # the host made no device for it

    # the lowest free name, the failed port's included
    first = plug(cluster, "kn", "52:54:00:fa:00:02")
    second = plug(cluster, "kn", "52:54:00:fa:00:03")
    assert (first["state"], first["actual"]["tap"]) == ("plugged", "vnet0")
    assert (second["state"], second["actual"]["tap"]) == ("plugged", "vnet1")
    assert taps(h1) == {"vnet0": first["id"], "vnet1": second["id"]}
    assert readback.link(h1, "vnet0")["master"] == "vnkn0"

    # a restarted worker's reconcile puts back what is missing (vnet1), and does not plug
    # the failed port again
    readback.ip(h1, "link", "del", "vnet1")
    cluster.kill("h1", signal.SIGKILL)
    cluster.start_host("h1", h1)
    wait_for(lambda: "vnet1" in taps(h1), what=f"vnet1 put back\n{cluster.logs()}")
    assert taps(h1) == {"vnet0": first["id"], "vnet1": second["id"]}
    ports = {p["id"]: p for p in cluster.api.get("/v1/networks/fb/ports").json()}
    assert ports[failed["id"]]["state"] == "failed"
    assert "nosuchbr0" in ports[failed["id"]]["error"]

    # deleting the failed port leaves the tap that now has its old name alone
    r = cluster.api.delete(f"/v1/networks/fb/ports/{failed['id']}?wait=20")
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
    assert cluster.api.get("/v1/networks/fb/ports").json() == []
    assert taps(h1) == {"vnet0": first["id"], "vnet1": second["id"]}
    third = plug(cluster, "kn", "52:54:00:fa:00:04")
    assert third["actual"]["tap"] == "vnet2"
