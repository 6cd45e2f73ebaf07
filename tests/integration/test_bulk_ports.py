"""Many ports in one request (issue 12, bulk): real workers in namespaces, taps read back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.cluster import Cluster
from tests.kernel import readback

BRIDGE = "vnbulk0"


@pytest.fixture
def net(cluster: Cluster, two_hosts: dict[str, str]) -> dict[str, str]:
    body = {"name": "bulk", "bridge": {"name": BRIDGE, "stp": False}}
    assert cluster.api.post("/v1/networks", json=body).status_code == 201
    assert cluster.api.post("/v1/networks/bulk/start").status_code == 200
    cluster.wait_network("bulk")
    return two_hosts


def items(host: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.UUID(int=start + i + 1)),
            "owner": {"name": f"vm{start + i}", "uuid": str(uuid.UUID(int=10_000 + start + i))},
            "host": host,
            "mac": f"52:54:00:12:{(start + i) // 256:02x}:{(start + i) % 256:02x}",
        }
        for i in range(count)
    ]


def on_bridge(ns: str) -> dict[str, str]:
    """tap -> MAC of every tun device enslaved to the bridge, as the kernel has it."""
    return {
        name: link["address"]
        for name, link in readback.links(ns).items()
        if link.get("linkinfo", {}).get("info_kind") == "tun" and link.get("master") == BRIDGE
    }


def test_fifty_ports_in_one_request_are_all_plugged_and_a_retry_returns_them(
    cluster: Cluster, net: dict[str, str]
) -> None:
    api = cluster.api
    wanted = items("h1", 50)
    made = api.post("/v1/networks/bulk/ports?wait=60", json=wanted)
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["operation"]["state"] == "succeeded", body["operation"]
    assert [p["id"] for p in body["ports"]] == [w["id"] for w in wanted]
    assert {p["state"] for p in body["ports"]} == {"plugged"}
    taps = {p["actual"]["tap"]: p["mac"] for p in body["ports"]}
    kernel = on_bridge(net["h1"])
    assert len(kernel) == 50
    # the guest's MAC is not the tap's own (libvirt's fe:… rule): match by tap name
    assert set(kernel) == set(taps)
    again = api.post("/v1/networks/bulk/ports?wait=60", json=wanted)
    assert again.status_code == 200, again.text
    assert [(p["id"], p["actual"]["tap"]) for p in again.json()["ports"]] == [
        (p["id"], p["actual"]["tap"]) for p in body["ports"]
    ]
    assert len(api.get("/v1/networks/bulk/ports").json()) == 50
    assert set(on_bridge(net["h1"])) == set(taps)


def test_one_bad_item_refuses_the_whole_list_and_changes_nothing(
    cluster: Cluster, net: dict[str, str]
) -> None:
    api = cluster.api
    wanted = items("h1", 5)
    wanted[3]["mac"] = "not-a-mac"
    refused = api.post("/v1/networks/bulk/ports", json=wanted)
    assert refused.status_code == 422, refused.text
    assert "3.mac" in [e["field"] for e in refused.json()["errors"]]
    clash = items("h1", 5)
    clash[4]["mac"] = clash[1]["mac"]  # valid alone, not together
    refused = api.post("/v1/networks/bulk/ports", json=clash)
    assert refused.status_code == 409, refused.text
    assert "item 4" in refused.json()["detail"]
    assert api.get("/v1/networks/bulk/ports").json() == []
    assert on_bridge(net["h1"]) == {}


def test_a_host_failure_is_reported_per_port(cluster: Cluster, net: dict[str, str]) -> None:
    """h2 has a device of its own where virtnet would put its second tap: that port fails,
    with the reason, and every other port of the request (on both hosts) is plugged."""
    readback.ip(net["h2"], "link", "add", "vnet1", "type", "bridge")
    wanted = items("h1", 3) + items("h2", 3, start=3)
    made = api_post = cluster.api.post("/v1/networks/bulk/ports?wait=60", json=wanted)
    assert api_post.status_code == 200, made.text
    body = made.json()
    assert body["operation"]["state"] == "failed"
    states = {(p["host"], p["actual"]["tap"]): (p["state"], p["error"]) for p in body["ports"]}
    failed = {k: v for k, v in states.items() if v[0] != "plugged"}
    assert list(failed) == [("h2", "vnet1")], states
    assert failed["h2", "vnet1"][0] == "failed" and failed["h2", "vnet1"][1]
    assert "vnet1" in body["operation"]["error"]
    codes = {(p["host"], p["actual"]["tap"]): p["error_code"] for p in body["ports"]}
    assert codes.pop(("h2", "vnet1")) == "device_conflict"  # app.messages.HostErrorCode
    assert set(codes.values()) == {None}
    assert set(on_bridge(net["h1"])) == {"vnet0", "vnet1", "vnet2"}
    assert set(on_bridge(net["h2"])) == {"vnet0", "vnet2"}
