"""net-update and PUT ?live=true over the API: what changes where, and clear refusals."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem

NET: dict[str, Any] = {
    "name": "lab",
    "forward": {"mode": "nat"},
    "ips": [
        {
            "address": "192.168.50.1",
            "prefix": 24,
            "dhcp": {"ranges": [{"start": "192.168.50.100", "end": "192.168.50.200"}]},
        }
    ],
}


def update(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/networks/lab/update", json=body)


def hosts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["ips"][0]["dhcp"].get("hosts", [])


def test_net_update_live_and_config(client: TestClient) -> None:
    client.post("/v1/networks", json=NET)
    assert client.post("/v1/networks/lab/start").status_code == 200
    xml = "<host mac='52:54:00:00:00:31' name='vm1' ip='192.168.50.31'/>"
    r = update(client, command="add-last", section="ip-dhcp-host", xml=xml)
    assert r.status_code == 200, r.text
    # by default the running network only, as virsh's --current on an active network
    assert hosts(r.json()) == [{"mac": "52:54:00:00:00:31", "name": "vm1", "ip": "192.168.50.31"}]
    stored = client.get("/v1/networks/lab?inactive=true").json()
    assert hosts(stored) == []
    entry = {"mac": "52:54:00:00:00:32", "ip": "192.168.50.32"}
    r = update(
        client, command="add-first", section="ip-dhcp-host", entry=entry, live=True, config=True
    )
    assert [h["ip"] for h in hosts(r.json())] == ["192.168.50.32", "192.168.50.31"]
    assert hosts(client.get("/v1/networks/lab?inactive=true").json()) == [entry]
    r = update(
        client,
        command="modify",
        section="ip-dhcp-host",
        xml="<host mac='52:54:00:00:00:31' ip='192.168.50.41'/>",
    )
    assert [h["ip"] for h in hosts(r.json())] == ["192.168.50.32", "192.168.50.41"]
    r = update(client, command="delete", section="ip-dhcp-host", entry=entry)
    assert [h["ip"] for h in hosts(r.json())] == ["192.168.50.41"]
    for section, element in (
        ("dns-host", "<host ip='192.168.50.9'><hostname>db</hostname></host>"),
        ("dns-txt", "<txt name='info' value='hello'/>"),
        ("dns-srv", "<srv service='ldap' protocol='tcp' target='db' port='389'/>"),
    ):
        r = update(client, command="add-last", section=section, xml=element)
        assert r.status_code == 200, r.text
    dns = r.json()["dns"]
    assert dns["hosts"] == [{"ip": "192.168.50.9", "hostnames": ["db"]}]
    assert dns["txts"] == [{"name": "info", "value": "hello"}]
    assert dns["srvs"][0]["port"] == 389
    r = update(client, command="delete", section="dns-txt", xml="<txt name='info' value='x'/>")
    assert "txts" not in r.json()["dns"]


def test_net_update_refusals_are_clear(client: TestClient) -> None:
    client.post("/v1/networks", json=NET)
    entry = {"mac": "52:54:00:00:00:31", "ip": "192.168.50.31"}
    # inactive: the stored definition by default; --live has nothing to change
    assert update(client, command="add-last", section="ip-dhcp-host", entry=entry).is_success
    assert_problem(
        update(client, command="add-last", section="ip-dhcp-host", entry=entry, live=True),
        409,
        says="not active",
    )
    assert_problem(
        update(client, command="add-last", section="ip-dhcp-host", entry=entry),
        409,
        says="already",
    )
    assert_problem(
        update(client, command="delete", section="dns-host", xml="<host ip='1.2.3.4'/>"),
        422,
        says="dns-host",
    )
    assert_problem(
        update(
            client, command="modify", section="ip-dhcp-host", entry={"mac": "52:54:00:00:00:09"}
        ),
        409,
        says="no ip-dhcp-host",
    )
    outside = {"mac": "52:54:00:00:00:33", "ip": "10.0.0.5"}
    assert_problem(
        update(client, command="add-last", section="ip-dhcp-host", entry=outside, parent_index=0),
        422,
        says="not inside",
    )
    assert_problem(
        update(client, command="add-last", section="ip-dhcp-host", xml="<host mac='zz'/>"),
        422,
        says="ip-dhcp-host",
    )
    assert_problem(update(client, command="rename", section="dns-host", xml="<x/>"), 422)
    assert_problem(update(client, command="add-last", section="dns-txt", xml="<a/>", entry={}), 422)


def test_put_live_changes_only_what_applies_live(client: TestClient) -> None:
    client.post("/v1/networks", json=NET)
    client.post("/v1/networks/lab/start")
    running = client.get("/v1/networks/lab").json()
    running.pop("status")
    changed = {**running, "dns": {"hosts": [{"ip": "192.168.50.7", "hostnames": ["web"]}]}}
    r = client.put("/v1/networks/lab?live=true", json=changed)
    assert r.status_code == 200, r.text
    assert r.json()["dns"]["hosts"][0]["hostnames"] == ["web"]
    assert "dns" not in client.get("/v1/networks/lab?inactive=true").json()
    other = {**running, "forward": {"mode": "route"}}
    assert_problem(client.put("/v1/networks/lab?live=true", json=other), 409, says="stop and")
    client.post("/v1/networks/lab/stop")
    assert_problem(client.put("/v1/networks/lab?live=true", json=changed), 409, says="not active")
