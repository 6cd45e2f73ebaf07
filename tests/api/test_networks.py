"""Network definitions over the REST API: every rule, and that refused input stores nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem


def net(name: str = "net1", **extra: Any) -> dict[str, Any]:
    return {"name": name, **extra}


def names(client: TestClient) -> list[str]:
    return [n["name"] for n in client.get("/v1/networks").json()["items"]]


def test_define_fills_in_what_libvirt_fills_in(client: TestClient) -> None:
    r = client.post("/v1/networks", json=net(description="lab"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == "/v1/networks/net1"
    # as libvirt: macTableManager stays unset (meaning 'kernel') unless given
    assert body["bridge"] == {"name": "virbr0", "stp": True, "delay": 0}
    assert body["mac"].startswith("52:54:00:") and len(body["mac"]) == 17
    assert len(body["uuid"]) == 36 and body["forward"]["mode"] == "none"
    assert body["status"]["state"] == "inactive" and body["status"]["persistent"] is True
    assert r.headers["etag"] == f'"{body["status"]["revision"]}"'
    second = client.post("/v1/networks", json=net("net2")).json()
    assert second["bridge"]["name"] == "virbr1"
    # the lowest free index is reused once its network is gone
    assert client.delete("/v1/networks/net1").status_code == 204
    assert client.post("/v1/networks", json=net("net3")).json()["bridge"]["name"] == "virbr0"


def test_full_definition_round_trips(client: TestClient) -> None:
    doc = {
        "name": "lab.net+1",
        "uuid": "0f3e4b58-1c1b-4c8e-9a47-3a0d7b1b7a01",
        "title": "Lab",
        "description": "d",
        "metadata": {"team": {"owner": "x"}},
        "bridge": {"name": "br-lab", "stp": False, "delay": 3, "mac_table_manager": "libvirt"},
        "mac": "52:54:00:AA:BB:CC",
        "mtu": 9000,
        "forward": {"mode": "nat", "nat": {"port_start": 1024, "port_end": 65535}},
        "ips": [
            {
                "address": "192.168.50.1",
                "prefix": 24,
                "dhcp": {
                    "ranges": [{"start": "192.168.50.10", "end": "192.168.50.99"}],
                    "hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.50.5"}],
                },
            },
            {"address": "fd00:50::1", "prefix": 64},
        ],
        "portgroups": [{"name": "eng", "default": True, "vlan": {"tags": [{"id": 42}]}}],
        "vlan": {"trunk": True, "tags": [{"id": 1, "native_mode": "untagged"}, {"id": 7}]},
        "bandwidth": {"inbound": {"average": 1000, "peak": 2000, "burst": 512, "floor": 10}},
        "autostart": True,
    }
    created = client.post("/v1/networks", json=doc).json()
    got = client.get("/v1/networks/lab.net+1").json()
    assert got == created
    for key, value in doc.items():
        if key == "mac":
            assert got["mac"] == "52:54:00:aa:bb:cc"
        elif key not in {"forward", "ips"}:
            assert got[key] == value, key
    assert got["forward"]["nat"] == {"port_start": 1024, "port_end": 65535}
    assert got["ips"][0]["dhcp"]["ranges"] == doc["ips"][0]["dhcp"]["ranges"]


BAD_FIELDS = [
    ({"name": ""}, "name"),
    ({"name": "-lead"}, "name"),
    ({"name": ".lead"}, "name"),
    ({"name": "a" * 65}, "name"),
    ({"name": "sp ace"}, "name"),
    ({"uuid": "not-a-uuid"}, "uuid"),
    ({"bridge": {"name": "x" * 16}}, "bridge.name"),
    ({"bridge": {"name": "é" * 8}}, "bridge.name"),
    ({"bridge": {"name": "br/0"}}, "bridge.name"),
    ({"bridge": {"name": "br 0"}}, "bridge.name"),
    ({"bridge": {"name": "br:0"}}, "bridge.name"),
    ({"bridge": {"mac_table_manager": "openvswitch"}}, "bridge.mac_table_manager"),
    ({"bridge": {"stp": "yes"}}, "bridge.stp"),
    ({"bridge": {"delay": -1}}, "bridge.delay"),
    ({"mac": "01:00:5e:00:00:01"}, "mac"),
    ({"mac": "00:00:00:00:00:00"}, "mac"),
    ({"mac": "52:54:00:zz:00:01"}, "mac"),
    ({"mtu": 67}, "mtu"),
    ({"mtu": 65536}, "mtu"),
    ({"mtu": "1500"}, "mtu"),
    ({"forward": {"mode": "tunnel"}}, "forward.mode"),
    ({"vlan": {"tags": [{"id": 4096}]}}, "vlan.tags.0.id"),
    ({"bandwidth": {"inbound": {"average": -5}}}, "bandwidth.inbound.average"),
    ({"colour": "blue"}, "colour"),
    ({"bridge": {"name": "br0", "learning": False}}, "bridge.learning"),
    ({"autostart": "true"}, "autostart"),
    ({"metadata": ["not", "an", "object"]}, "metadata"),
    ({"ips": [{"address": "192.168.1.300", "prefix": 24}]}, "ips.0.address"),
    ({"ips": [{"address": "192.168.1.0", "prefix": 24}]}, "ips.0.address"),
    ({"ips": [{"address": "192.168.1.1", "prefix": 24, "netmask": "255.255.255.0"}]}, "ips.0"),
    ({"ips": [{"address": "192.168.1.1", "netmask": "255.0.255.0"}]}, "ips.0.netmask"),
    (
        {
            "ips": [
                {
                    "address": "192.168.1.1",
                    "prefix": 24,
                    "dhcp": {"ranges": [{"start": "192.168.2.2", "end": "192.168.2.9"}]},
                }
            ]
        },
        "ips.0.dhcp.ranges.0",
    ),
    (
        {
            "ips": [
                {
                    "address": "192.168.1.1",
                    "prefix": 24,
                    "dhcp": {"ranges": [{"start": "192.168.1.1", "end": "192.168.1.9"}]},
                }
            ]
        },
        "ips.0.dhcp.ranges.0",
    ),
    (
        {
            "ips": [
                {
                    "address": "192.168.1.1",
                    "prefix": 24,
                    "dhcp": {"ranges": [{"start": "192.168.1.9", "end": "192.168.1.2"}]},
                }
            ]
        },
        "ips.0.dhcp.ranges.0",
    ),
    (
        {
            "ips": [
                {
                    "address": "192.168.1.1",
                    "prefix": 24,
                    "dhcp": {"hosts": [{"mac": "52:54:00:00:00:01", "ip": "10.0.0.1"}]},
                }
            ]
        },
        "ips.0.dhcp.hosts.0.ip",
    ),
    (
        {"portgroups": [{"name": "a", "default": True}, {"name": "b", "default": True}]},
        "portgroups.1.default",
    ),
    ({"portgroups": [{"name": "a"}, {"name": "a"}]}, "portgroups.1.name"),
]


@pytest.mark.parametrize(("extra", "field"), BAD_FIELDS, ids=[f for _, f in BAD_FIELDS])
def test_bad_field_is_422_with_its_path_and_stores_nothing(
    client: TestClient, extra: dict[str, Any], field: str
) -> None:
    r = client.post("/v1/networks", json={"name": "ok", **extra})
    assert_problem(r, 422, field)
    assert names(client) == []


def test_malformed_bodies(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    assert_problem(
        client.post("/v1/networks", content=b"{nope", headers=headers), 400, says="not valid JSON"
    )
    assert_problem(
        client.post("/v1/networks", content=b"[1, 2]", headers=headers), 422, says="JSON object"
    )
    big = b'{"name": "big", "description": "' + b"x" * (1024 * 1024) + b'"}'
    assert_problem(
        client.post("/v1/networks", content=big, headers=headers), 413, says="larger than"
    )

    def chunks():  # no Content-Length: the cap must hold while reading
        yield b'{"name": "big", "description": "'
        for _ in range(17):
            yield b"y" * 65536
        yield b'"}'

    assert_problem(client.post("/v1/networks", content=chunks(), headers=headers), 413)
    assert names(client) == []


def test_duplicates_and_overlaps_conflict_and_store_nothing(client: TestClient) -> None:
    first = client.post(
        "/v1/networks",
        json=net("a", bridge={"name": "br-a"}, ips=[{"address": "10.1.0.1", "prefix": 16}]),
    ).json()
    cases = [
        (net("a"), "already exists"),
        (net("b", uuid=first["uuid"]), first["uuid"]),
        (net("b", bridge={"name": "br-a"}), "br-a"),
        (net("b", ips=[{"address": "10.1.200.1", "prefix": 24}]), "overlaps 10.1.0.0/16"),
        (net("b", ips=[{"address": "10.0.0.1", "netmask": "255.0.0.0"}]), "overlaps"),
    ]
    for doc, says in cases:
        assert_problem(client.post("/v1/networks", json=doc), 409, says=says)
    assert names(client) == ["a"]
    # a different family never overlaps
    ok = client.post("/v1/networks", json=net("b", ips=[{"address": "fd00::1", "prefix": 64}]))
    assert ok.status_code == 201


def test_listing_filters_and_pages(client: TestClient) -> None:
    for i in range(5):
        client.post("/v1/networks", json=net(f"n{i}", autostart=i % 2 == 0))
    client.post("/v1/networks/n1/start")
    client.post("/v1/networks?start=true", json=net("t"))
    page = client.get("/v1/networks", params={"limit": 2, "offset": 1}).json()
    assert [n["name"] for n in page["items"]] == ["n1", "n2"]
    assert page["total"] == 6 and page["limit"] == 2 and page["offset"] == 1
    listed = lambda **q: [n["name"] for n in client.get("/v1/networks", params=q).json()["items"]]  # noqa: E731
    assert listed(state="active") == ["n1", "t"]
    assert listed(state="inactive") == ["n0", "n2", "n3", "n4"]
    assert listed(autostart="true") == ["n0", "n2", "n4"]
    assert listed(persistent="false") == ["t"]
    assert_problem(client.get("/v1/networks", params={"limit": 0}), 422, "query.limit")
    assert_problem(client.get("/v1/networks", params={"state": "sleeping"}), 422, "query.state")
