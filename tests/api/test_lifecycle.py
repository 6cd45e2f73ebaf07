"""libvirt's lifecycle: define, create, start, stop, undefine, update, autostart."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem


def state(client: TestClient, name: str) -> tuple[str, bool]:
    status = client.get(f"/v1/networks/{name}").json()["status"]
    return status["state"], status["persistent"]


def test_define_start_stop_keeps_a_persistent_network(client: TestClient) -> None:
    client.post("/v1/networks", json={"name": "p"})
    assert state(client, "p") == ("inactive", True)
    r = client.post("/v1/networks/p/start")
    assert r.status_code == 200 and r.json()["status"]["state"] == "active"
    assert_problem(client.post("/v1/networks/p/start"), 409, says="already active")
    r = client.post("/v1/networks/p/stop")
    assert r.status_code == 200 and r.json()["status"]["state"] == "inactive"
    assert_problem(client.post("/v1/networks/p/stop"), 409, says="not active")


def test_create_makes_a_transient_network_that_is_gone_when_stopped(client: TestClient) -> None:
    r = client.post("/v1/networks?start=true", json={"name": "t"})
    assert r.status_code == 201 and r.json()["status"] | {} == r.json()["status"]
    assert state(client, "t") == ("active", False)
    assert_problem(client.delete("/v1/networks/t"), 409, says="transient")
    assert client.post("/v1/networks/t/stop").status_code == 204
    assert_problem(client.get("/v1/networks/t"), 404, says="does not exist")
    assert_problem(
        client.post("/v1/networks?start=true", json={"name": "t2", "autostart": True}),
        422,
        says="cannot autostart",
    )


def test_undefine_active_network_leaves_it_running_transient(client: TestClient) -> None:
    client.post("/v1/networks", json={"name": "u", "autostart": True})
    client.post("/v1/networks/u/start")
    r = client.delete("/v1/networks/u")
    assert r.status_code == 200
    assert r.json()["status"]["persistent"] is False and r.json()["autostart"] is False
    assert state(client, "u") == ("active", False)
    assert client.post("/v1/networks/u/stop").status_code == 204
    assert client.get("/v1/networks/u").status_code == 404
    client.post("/v1/networks", json={"name": "gone"})
    assert client.delete("/v1/networks/gone").status_code == 204
    assert_problem(client.delete("/v1/networks/gone"), 404)


def test_update_of_active_network_waits_for_restart(client: TestClient) -> None:
    created = client.post("/v1/networks", json={"name": "w", "description": "old"}).json()
    client.post("/v1/networks/w/start")
    new = {**{k: v for k, v in created.items() if k != "status"}, "description": "new"}
    r = client.put("/v1/networks/w", json=new)
    assert r.status_code == 200 and r.json()["description"] == "new"
    assert client.get("/v1/networks/w").json()["description"] == "old"
    inactive = client.get("/v1/networks/w?inactive=true").json()
    assert inactive["description"] == "new" and inactive["status"]["inactive_view"] is True
    client.post("/v1/networks/w/stop")
    client.post("/v1/networks/w/start")
    assert client.get("/v1/networks/w").json()["description"] == "new"


def test_put_with_stale_revision_is_412_and_changes_nothing(client: TestClient) -> None:
    created = client.post("/v1/networks", json={"name": "r"}).json()
    etag = client.get("/v1/networks/r").headers["etag"]
    doc = {k: v for k, v in created.items() if k != "status"}
    first = client.put(
        "/v1/networks/r", json={**doc, "description": "mine"}, headers={"If-Match": etag}
    )
    assert first.status_code == 200
    stale = client.put(
        "/v1/networks/r", json={**doc, "description": "theirs"}, headers={"If-Match": etag}
    )
    assert_problem(stale, 412, says="GET it again")
    # a GET-modify-PUT client that sends the status back gets the same protection
    stale_body = client.put("/v1/networks/r", json={**created, "description": "theirs"})
    assert_problem(stale_body, 412)
    assert_problem(client.put("/v1/networks/r", json=doc, headers={"If-Match": "abc"}), 412)
    assert client.get("/v1/networks/r").json()["description"] == "mine"


def test_put_cannot_rename_change_uuid_or_create(client: TestClient) -> None:
    created = client.post("/v1/networks", json={"name": "x"}).json()
    doc = {k: v for k, v in created.items() if k != "status"}
    assert_problem(client.put("/v1/networks/x", json={**doc, "name": "y"}), 422, says="renamed")
    other = "1e5c2b3a-0000-4000-8000-000000000001"
    assert_problem(client.put("/v1/networks/x", json={**doc, "uuid": other}), 409, says="uuid")
    assert_problem(client.put("/v1/networks/none", json={"name": "none"}), 404)
    assert client.get("/v1/networks/x").json() == created


def test_autostart_on_and_off(client: TestClient) -> None:
    client.post("/v1/networks", json={"name": "a"})
    r = client.put("/v1/networks/a/autostart", json={"enabled": True})
    assert r.status_code == 200 and r.json()["autostart"] is True
    names = [n["name"] for n in client.get("/v1/networks?autostart=true").json()["items"]]
    assert names == ["a"]
    assert (
        client.put("/v1/networks/a/autostart", json={"enabled": False}).json()["autostart"] is False
    )
    assert_problem(client.put("/v1/networks/a/autostart", json={"enabled": "yes"}), 422, "enabled")
    client.post("/v1/networks?start=true", json={"name": "t"})
    assert_problem(
        client.put("/v1/networks/t/autostart", json={"enabled": True}), 409, says="transient"
    )


def test_start_refuses_features_not_realised_yet_and_names_them(client: TestClient) -> None:
    client.post(
        "/v1/networks",
        json={
            "name": "nat",
            "forward": {"mode": "nat"},
            "ips": [{"address": "192.168.9.1", "prefix": 24}],
            "dns": {"enable": True},
            "routes": [{"address": "10.9.0.0", "prefix": 16, "gateway": "192.168.9.2"}],
            "bridge": {"zone": "trusted"},
        },
    )
    body = assert_problem(client.post("/v1/networks/nat/start"), 409, says="routes")
    assert "zone" in body["detail"]
    # addresses, DHCP, DNS and NAT are realised now: only what is not is named
    assert "ips" not in body["detail"] and "DNS" not in body["detail"]
    assert state(client, "nat") == ("inactive", True)
    got = client.get("/v1/networks/nat").json()
    assert got["dns"] == {"enable": True} and got["ips"][0]["address"] == "192.168.9.1"
    assert_problem(
        client.post("/v1/networks?start=true", json={"name": "v", "vlan": {"tags": [{"id": 5}]}}),
        409,
        says="VLAN",
    )
    assert client.get("/v1/networks/v").status_code == 404


def test_bridge_mode_without_a_bridge_is_defined_but_does_not_start(client: TestClient) -> None:
    # as in libvirt: the definition is kept (e.g. an Open vSwitch network), start says why not
    r = client.post("/v1/networks", json={"name": "nobr", "forward": {"mode": "bridge"}})
    assert r.status_code == 201 and "name" not in r.json()["bridge"] and "mac" not in r.json()
    assert_problem(client.post("/v1/networks/nobr/start"), 409, says="bridge.name")
    assert client.get("/v1/networks/nobr").json()["status"]["state"] == "inactive"
