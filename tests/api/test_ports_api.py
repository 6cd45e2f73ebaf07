"""Port and domain requests the API refuses before any host is involved, and what it stores."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import get_sessionmaker
from app.models import Host, utcnow
from tests.api.conftest import assert_problem

OWNER = {"name": "vm1", "uuid": "6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d"}


def add_host(settings: Settings, name: str, *, age: float = 0, **capabilities: bool) -> None:
    seen = utcnow() - timedelta(seconds=age)
    with get_sessionmaker(settings.effective_database_url)() as session:
        session.add(Host(name=name, kernel="test", last_seen=seen, **capabilities))
        session.commit()


@pytest.fixture
def active_net(client: TestClient, api_settings: Settings) -> str:
    add_host(api_settings, "hostA")
    add_host(api_settings, "gone", age=3600)
    client.post(
        "/v1/networks",
        json={
            "name": "n",
            "bridge": {"mac_table_manager": "libvirt"},
            "portgroups": [{"name": "eng", "default": True}, {"name": "ops"}],
        },
    )
    assert client.post("/v1/networks/n/start").status_code == 200
    return "n"


def port(**extra: Any) -> dict[str, Any]:
    return {"owner": OWNER, "host": "hostA", **extra}


def test_allocation_returns_the_actual_device(client: TestClient, active_net: str) -> None:
    r = client.post("/v1/networks/n/ports", json=port(mac="52:54:00:00:00:AA"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["state"] == "plugging" and body["mac"] == "52:54:00:00:00:aa"
    assert body["portgroup"] == "eng"  # the network's default portgroup
    assert body["actual"] == {
        "type": "network",
        "bridge": "virbr0",
        "mac_table_manager": "libvirt",
        "tap": "vnet0",
        "mtu": None,
        "vlan": None,
        "bandwidth": None,
        "port_isolated": False,
        "class_id": None,
        "outbound_limit": None,
    }
    assert r.headers["location"] == f"/v1/networks/n/ports/{body['id']}"
    second = client.post("/v1/networks/n/ports", json=port(portgroup="ops")).json()
    assert second["actual"]["tap"] == "vnet1" and second["mac"].startswith("52:54:00:")
    assert second["portgroup"] == "ops"
    listed = client.get("/v1/networks/n/ports").json()
    assert [p["id"] for p in listed] == [body["id"], second["id"]]
    op = client.get(f"/v1/operations/{body['operation_id']}").json()
    assert op["kind"] == "port.plug" and op["state"] == "running"


BAD_PORTS = [
    (port(mac="01:00:5e:00:00:01"), 422, "mac"),
    (port(mac="00:00:00:00:00:00"), 422, "mac"),
    (port(host="no such"), 422, "host"),
    (port(mtu=20), 422, "mtu"),
    (port(owner_uid=-1), 422, "owner_uid"),
    (port(vnet_hdr="yes"), 422, "vnet_hdr"),
    ({"host": "hostA"}, 422, "owner"),
    (port(owner={"name": "vm1", "uuid": "x"}), 422, "owner.uuid"),
    (port(tap="mine0"), 422, "tap"),
    (port(id="not-a-uuid"), 422, "id"),
    (port(host="unknown"), 404, None),
    (port(host="gone"), 409, None),
    (port(portgroup="nope"), 422, None),
    (port(vlan={"tags": [{"id": 10}]}), 409, None),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_PORTS)
def test_bad_port_requests_store_nothing(
    client: TestClient, active_net: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    assert_problem(client.post("/v1/networks/n/ports", json=body), status, field)
    assert client.get("/v1/networks/n/ports").json() == []


def test_port_rules_against_the_network(client: TestClient, active_net: str) -> None:
    client.post("/v1/networks/n/ports", json=port(mac="52:54:00:00:00:01"))
    assert_problem(
        client.post("/v1/networks/n/ports", json=port(mac="52:54:00:00:00:01")),
        409,
        says="already used",
    )
    assert_problem(client.post("/v1/networks/zz/ports", json=port()), 404)
    client.post("/v1/networks", json={"name": "idle"})
    assert_problem(client.post("/v1/networks/idle/ports", json=port()), 409, says="not active")
    assert_problem(client.get("/v1/networks/n/ports/nope"), 404)
    # a network with ports stops only with force
    body = assert_problem(client.post("/v1/networks/n/stop"), 409, says="vnet0@hostA")
    assert "force" in body["detail"]
    assert client.get("/v1/networks/n").json()["status"]["state"] != "inactive"


def test_domain_definitions(client: TestClient, active_net: str) -> None:
    doc = {
        "name": "vm1",
        "host": "hostA",
        "type": "kvm",
        "memory": 1048576,
        "vcpus": 2,
        "interfaces": [
            {"type": "network", "source": {"network": "n"}, "model": "virtio"},
            {"type": "bridge", "source": {"bridge": "br0"}, "mac": "52:54:00:00:00:02"},
        ],
    }
    r = client.post("/v1/domains", json=doc)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"]["state"] == "shut_off"
    assert body["interfaces"][0]["mac"].startswith("52:54:00:")
    assert [i["actual"] for i in body["interfaces"]] == [None, None]
    assert client.get("/v1/domains/vm1").json() == body
    assert_problem(client.post("/v1/domains", json=doc), 409, says="already exists")
    bad = [
        ({**doc, "name": "x", "type": "xen"}, "type"),
        ({**doc, "name": "x", "vcpus": 0}, "vcpus"),
        (
            {**doc, "name": "x", "interfaces": [{"type": "network", "source": {"bridge": "b"}}]},
            "interfaces.0",
        ),
        (
            {
                **doc,
                "name": "x",
                "interfaces": [{"type": "bridge", "source": {"bridge": "b"}, "target": "vnet7"}],
            },
            "interfaces.0.target",
        ),
        (
            {
                **doc,
                "name": "x",
                "interfaces": [
                    {"type": "bridge", "source": {"bridge": "b"}, "mac": "52:54:00:00:00:09"}
                ]
                * 2,
            },
            "interfaces.1.mac",
        ),
    ]
    for body_, field in bad:
        assert_problem(client.post("/v1/domains", json=body_), 422, field)
    assert [d["name"] for d in client.get("/v1/domains").json()] == ["vm1"]
    assert_problem(client.post("/v1/domains/vm1/stop"), 409, says="shut_off")
    assert_problem(client.post("/v1/domains/vm1/suspend"), 409)
    assert_problem(client.delete("/v1/domains/vm1/interfaces/52:54:00:00:00:99"), 404)
    assert client.delete("/v1/domains/vm1").status_code == 204
    assert_problem(client.get("/v1/domains/vm1"), 404)


def test_a_requested_port_id_is_kept(client: TestClient, active_net: str) -> None:
    wanted = "0b7a7c52-7d6e-4f3a-9c1b-2a3b4c5d6e7f"
    r = client.post("/v1/networks/n/ports", json=port(id=wanted))
    assert r.status_code == 202 and r.json()["id"] == wanted
    assert_problem(client.post("/v1/networks/n/ports", json=port(id=wanted)), 409, says=wanted)
    assert [p["id"] for p in client.get("/v1/networks/n/ports").json()] == [wanted]
