"""What a guest's side needs, in the API: containers' veth ends, VMs' tap flags and queues;
and the refusals of what only one kind of guest has."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem
from tests.api.test_ports_api import active_net  # noqa: F401 - a fixture


def net(mac: str, **extra: Any) -> dict[str, Any]:
    return {"type": "network", "source": {"network": "n"}, "mac": mac, **extra}


def test_container_interfaces_are_veth_ends_named_in_order(
    client: TestClient,
    active_net: str,  # noqa: F811
) -> None:
    body = {
        "name": "web",
        "type": "lxc",
        "host": "hostA",
        "interfaces": [net("52:54:00:00:00:01", guest="lan0"), net("52:54:00:00:00:02")],
    }
    assert client.post("/v1/domains", json=body).status_code == 201
    assert client.post("/v1/domains/web/start").status_code == 202
    actual = [i["actual"] for i in client.get("/v1/domains/web").json()["interfaces"]]
    assert [(a["device"], a["netns"], a["guest_ifname"]) for a in actual] == [
        ("veth", "web", "lan0"),
        ("veth", "web", "eth0"),
    ]
    assert [a["tap"] for a in actual] == ["vnet0", "vnet1"]


def test_vm_interfaces_say_how_to_open_the_tap(
    client: TestClient,
    active_net: str,  # noqa: F811
) -> None:
    body = {
        "name": "vm1",
        "host": "hostA",
        "interfaces": [net("52:54:00:00:00:01", queues=4), net("52:54:00:00:00:02")],
    }
    assert client.post("/v1/domains", json=body).status_code == 201
    assert client.post("/v1/domains/vm1/start").status_code == 202
    mq, plain = [i["actual"] for i in client.get("/v1/domains/vm1").json()["interfaces"]]
    assert (mq["device"], mq["multi_queue"], mq["queues"], mq["vnet_hdr"]) == ("tap", True, 4, True)
    assert (plain["multi_queue"], plain["queues"]) == (False, 1)
    assert "netns" not in plain


def test_container_only_and_vm_only_fields_are_refused(client: TestClient) -> None:
    base = {"name": "x", "host": "h", "interfaces": []}
    r = client.post("/v1/domains", json={**base, "netns": "red"})
    assert_problem(r, 422, says="for containers (type lxc)")
    named = [net("52:54:00:00:00:01", guest="e")]
    r = client.post("/v1/domains", json={**base, "interfaces": named})
    assert_problem(r, 422, says="for containers (type lxc)")
    lxc = {**base, "type": "lxc"}
    r = client.post("/v1/domains", json={**lxc, "interfaces": [net("52:54:00:00:00:01", queues=2)]})
    assert_problem(r, 422, says="queues are for virtual machines")
    twice = [net("52:54:00:00:00:01", guest="e"), net("52:54:00:00:00:02", guest="e")]
    assert_problem(client.post("/v1/domains", json={**lxc, "interfaces": twice}), 422, says="guest")
    r = client.post("/v1/domains", json={**lxc, "netns": "../etc"})
    assert_problem(r, 422, field="netns")
    # hot-plug follows the domain's rules, and a refusal changes nothing
    assert client.post("/v1/domains", json=base).status_code == 201
    r = client.post("/v1/domains/x/interfaces", json=net("52:54:00:00:00:01", guest="e"))
    assert_problem(r, 422, says="for containers (type lxc)")
    assert client.get("/v1/domains/x").json()["interfaces"] == []
