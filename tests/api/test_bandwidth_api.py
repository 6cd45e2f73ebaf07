"""Isolation and bandwidth through the API: libvirt's merge of portgroup defaults, its
checks of bad rates and floors (with its messages), and VLANs refused naming the host."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.api.conftest import assert_problem
from tests.api.test_ports_api import OWNER, add_host


def network(name: str = "q", **extra: Any) -> dict[str, Any]:
    return {"name": name, "bridge": {"name": "virbr9"}, **extra}


def port(mac: str, **extra: Any) -> dict[str, Any]:
    return {"owner": OWNER, "host": "hostA", "mac": mac, **extra}


@pytest.fixture
def qos_net(client: TestClient, api_settings: Settings) -> str:
    add_host(api_settings, "hostA")
    body = network(
        bandwidth={"inbound": {"average": 1000}},
        port_isolated=True,
        portgroups=[
            {"name": "gold", "bandwidth": {"inbound": {"average": 800, "floor": 600}}},
            {"name": "open", "port_isolated": False, "default": True},
        ],
    )
    assert client.post("/v1/networks", json=body).status_code == 201
    r = client.post("/v1/networks/q/start")
    assert r.status_code == 200, r.text  # bandwidth and isolation no longer refuse a start
    return "q"


@pytest.mark.parametrize(
    ("rate", "field", "says"),
    [
        ({"inbound": {"average": -5}}, "average", "could not convert bandwidth average value '-5'"),
        ({"inbound": {"average": 10, "peak": 0}}, "peak", "must be at least 1"),
        ({"outbound": {"average": 0}}, "average", "must be at least 1"),
        ({"inbound": {"floor": 5, "peak": 10}}, "inbound", "'peak' and 'burst' require 'average'"),
        ({"inbound": {}}, "inbound", "Missing mandatory average or floor attributes"),
        (
            {"outbound": {"average": 5, "floor": 2}},
            "floor",
            "'floor' attribute allowed only in <inbound> element",
        ),
    ],
)
def test_bad_rates_are_refused_with_libvirts_words(
    client: TestClient, rate: dict[str, Any], field: str, says: str
) -> None:
    r = client.post("/v1/networks", json=network(bandwidth=rate))
    assert_problem(r, 422, says=says)
    assert field in r.text
    assert client.get("/v1/networks/q").status_code == 404  # nothing stored


def test_portgroups_supply_defaults_and_the_port_shows_them(
    client: TestClient, qos_net: str
) -> None:
    gold = client.post("/v1/networks/q/ports", json=port("52:54:00:00:00:01", portgroup="gold"))
    assert gold.status_code == 202, gold.text
    actual = gold.json()["actual"]
    # the portgroup's bandwidth, the network's isolation, the first free floor class
    assert actual["bandwidth"] == {"inbound": {"average": 800, "floor": 600}}
    assert actual["port_isolated"] is True and actual["class_id"] == 3
    xml = client.get(
        f"/v1/networks/q/ports/{gold.json()['id']}", headers={"Accept": "application/xml"}
    ).text
    assert "<bandwidth classID='3'>" in xml and "<port isolated='yes'/>" in xml, xml
    # the default portgroup opens isolation; the interface's own bandwidth wins
    own = {"outbound": {"average": 100}}
    mine = client.post("/v1/networks/q/ports", json=port("52:54:00:00:00:02", bandwidth=own))
    assert mine.json()["actual"]["bandwidth"] == own
    assert mine.json()["actual"]["port_isolated"] is False
    closed = port("52:54:00:00:00:03", port_isolated=True, portgroup="open")
    assert client.post("/v1/networks/q/ports", json=closed).json()["actual"]["port_isolated"]
    # the network's own limit is the bridge's, never copied to a port
    plain = client.post("/v1/networks/q/ports", json=port("52:54:00:00:00:04")).json()
    assert plain["actual"]["bandwidth"] is None


def test_floors_are_checked_as_libvirt_checks_them(
    client: TestClient, qos_net: str, api_settings: Settings
) -> None:
    first = client.post("/v1/networks/q/ports", json=port("52:54:00:00:00:01", portgroup="gold"))
    assert first.status_code == 202
    over = port("52:54:00:00:00:02", bandwidth={"inbound": {"average": 10, "floor": 401}})
    r = client.post("/v1/networks/q/ports", json=over)
    assert_problem(
        r,
        409,
        says="Cannot plug '52:54:00:00:00:02' interface into 'virbr9' because new combined "
        "inbound floor=1001 would overcommit average=1000 on network 'q'",
    )
    fits = port("52:54:00:00:00:02", bandwidth={"inbound": {"average": 10, "floor": 400}})
    second = client.post("/v1/networks/q/ports", json=fits)
    assert second.status_code == 202 and second.json()["actual"]["class_id"] == 4
    # a network without an inbound limit takes no floor
    body = network("plain", bridge={"name": "virbr8"})
    client.post("/v1/networks", json=body)
    client.post("/v1/networks/plain/start")
    r = client.post("/v1/networks/plain/ports", json=fits)
    assert_problem(
        r,
        409,
        says="Invalid use of 'floor' on interface with MAC address 52:54:00:00:00:02 - network "
        "'plain' has no inbound QoS set",
    )


def test_peak_is_the_floor_limit_when_set(client: TestClient, api_settings: Settings) -> None:
    add_host(api_settings, "hostA")
    client.post("/v1/networks", json=network(bandwidth={"inbound": {"average": 100, "peak": 300}}))
    client.post("/v1/networks/q/start")
    ok = port("52:54:00:00:00:01", bandwidth={"inbound": {"average": 10, "floor": 250}})
    assert client.post("/v1/networks/q/ports", json=ok).status_code == 202
    over = port("52:54:00:00:00:02", bandwidth={"inbound": {"average": 10, "floor": 51}})
    assert_problem(
        client.post("/v1/networks/q/ports", json=over), 409, says="would overcommit peak=300"
    )


def test_vlans_stay_refused_and_the_409_names_the_host(
    client: TestClient, api_settings: Settings
) -> None:
    add_host(api_settings, "hostA")
    add_host(api_settings, "hostB", vlan_8021q=True)
    body = network(
        vlan={"tags": [{"id": 42}]},
        bandwidth={"inbound": {"average": 10}},
        port_isolated=True,
    )
    client.post("/v1/networks", json=body)
    r = client.post("/v1/networks/q/start")
    assert_problem(
        r,
        409,
        says="VLAN tagging (vlan) cannot be realised: host 'hostA' has neither 802.1Q "
        "nor bridge VLAN filtering in its kernel (capability probe: vlan_8021q=false, "
        "vlan_filtering=false); host 'hostB' has 802.1Q but no bridge VLAN filtering in its "
        "kernel (capability probe: vlan_filtering=false)",
    )
    detail = r.json()["detail"]
    assert "bandwidth" not in detail and "isolation" not in detail
