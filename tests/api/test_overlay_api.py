"""Overlay networks and migration over the API: definitions, refusals, hosts' underlay."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.config import Settings
from app.db import get_sessionmaker
from app.services import hosts
from app.services.context import Ctx
from app.services.outbox import Outbox

OVERLAY = {"name": "ov", "overlay": {"vni": 5000}}


def register(settings: Settings, name: str, underlay: str | None, mtu: int = 1500) -> None:
    caps: dict[str, Any] = {"kernel_release": "6", "tun": True, "net_admin": True}
    if underlay:
        caps.update(underlay=underlay, underlay_mtu=mtu)
    with get_sessionmaker(settings.effective_database_url)() as session:
        ctx = Ctx(session, Outbox(None), settings)
        hosts.heartbeat(ctx, name=name, worker_id=name, capabilities=caps, registering=True)


def problems(response: Any) -> dict[str, str]:
    body = response.json()
    return {p["field"]: p["message"] for p in body.get("errors", [])} or {"": body["detail"]}


def test_overlay_definition_json_and_xml(client: TestClient) -> None:
    r = client.post("/v1/networks", json=OVERLAY)
    assert r.status_code == 201, r.text
    assert r.json()["overlay"] == {"type": "vxlan", "vni": 5000, "port": 4789}
    xml = client.get("/v1/networks/ov", headers={"Accept": "application/xml"}).text
    assert "<virtnet:overlay" in xml and 'vni="5000"' in xml and 'port="4789"' in xml
    client.delete("/v1/networks/ov")
    r = client.post("/v1/networks", content=xml, headers={"Content-Type": "application/xml"})
    assert r.status_code == 201, r.text
    assert r.json()["overlay"]["vni"] == 5000


BAD = [
    ({"vni": 0}, {}, "overlay.vni"),
    ({"vni": 1 << 24}, {}, "overlay.vni"),
    ({"vni": 7, "port": 0}, {}, "overlay.port"),
    ({"vni": 7, "type": "gre"}, {}, "overlay.type"),
    ({"vni": 7, "gateway_host": "no spaces"}, {}, "overlay.gateway_host"),
    ({"vni": 7}, {"forward": {"mode": "bridge"}, "bridge": {"name": "br0"}}, "overlay"),
    ({"vni": 7}, {"ips": [{"address": "10.7.0.1", "prefix": 24}]}, "overlay.gateway_host"),
    ({"vni": 7}, {"forward": {"mode": "nat"}}, "overlay.gateway_host"),
    ({"vni": 7}, {"mtu": 65500}, "mtu"),
]


def test_bad_overlay_is_422_and_stores_nothing(client: TestClient) -> None:
    for overlay, extra, where in BAD:
        r = client.post("/v1/networks", json={"name": "bad", "overlay": overlay, **extra})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert any(loc.endswith(where) for loc in problems(r)), r.text
        assert client.get("/v1/networks/bad").status_code == 404


def test_vni_is_unique_across_the_fleet(client: TestClient) -> None:
    assert client.post("/v1/networks", json=OVERLAY).status_code == 201
    r = client.post("/v1/networks", json={"name": "ov2", "overlay": {"vni": 5000}})
    assert r.status_code == 409 and "VNI 5000" in r.json()["detail"], r.text
    assert client.get("/v1/networks/ov2").status_code == 404


def test_mtu_leaves_room_for_the_encapsulation(
    client: TestClient, reader: TestClient, api_settings: Settings
) -> None:
    register(api_settings, "h4", "192.0.2.4")
    register(api_settings, "h6", "2001:db8::6", mtu=9000)
    register(api_settings, "plain", None)
    shown = {h["name"]: h for h in reader.get("/v1/hosts").json()}
    assert (shown["h4"]["underlay"], shown["h4"]["underlay_mtu"]) == ("192.0.2.4", 1500)
    assert shown["h6"]["underlay"] == "2001:db8::6" and shown["plain"]["underlay"] is None
    r = client.post("/v1/networks", json={**OVERLAY, "mtu": 1451})
    assert r.status_code == 422 and "at most 1450" in r.text, r.text
    assert client.post("/v1/networks", json={**OVERLAY, "mtu": 1450}).status_code == 201
    r = client.post("/v1/networks", json={"name": "big", "overlay": {"vni": 9}, "mtu": 8931})
    assert r.status_code == 422 and "h6" in r.text and "at most 8930" in r.text, r.text


def test_overlay_network_is_realised_only_where_there_is_an_underlay(
    client: TestClient, api_settings: Settings
) -> None:
    register(api_settings, "h1", "192.0.2.1")
    register(api_settings, "plain", None)
    assert client.post("/v1/networks?start=true", json=OVERLAY).status_code == 201
    shown = client.get("/v1/networks/ov").json()["status"]["hosts"]
    assert [h["host"] for h in shown] == ["h1"]
    assert shown[0]["overlay"]["underlay"] == "192.0.2.1"
    assert shown[0]["overlay"]["in_sync"] is False  # the host has not answered yet
    r = client.put("/v1/networks/ov", json={**OVERLAY, "overlay": {"vni": 5001}})
    assert r.status_code == 409 and "stopped" in r.json()["detail"], r.text


def test_migrate_refusals(client: TestClient, api_settings: Settings) -> None:
    register(api_settings, "h1", "192.0.2.1")
    register(api_settings, "h2", "192.0.2.2")
    assert client.post("/v1/domains/nope/migrate", json={"host": "h2"}).status_code == 404
    r = client.post("/v1/domains", json={"name": "vm", "host": "h1", "interfaces": []})
    assert r.status_code == 201, r.text
    assert client.post("/v1/domains/vm/migrate", json={}).status_code == 422
    assert client.post("/v1/domains/vm/migrate", json={"host": "a b"}).status_code == 422
    r = client.post("/v1/domains/vm/migrate", json={"host": "h2"})
    assert r.status_code == 409 and "shut_off" in r.json()["detail"], r.text
    assert client.post("/v1/domains/vm/start").status_code in (200, 202)
    r = client.post("/v1/domains/vm/migrate", json={"host": "h1"})
    assert r.status_code == 422 and "already runs" in r.json()["detail"], r.text
    r = client.post("/v1/domains/vm/migrate", json={"host": "h9"})
    assert r.status_code == 404 and "never registered" in r.json()["detail"], r.text
    r = client.post("/v1/domains/vm/migrate?wait=5", json={"host": "h2"})
    assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
    assert r.json()["result"]["target"] == "h2"
    assert client.get("/v1/domains/vm").json()["host"] == "h2"
