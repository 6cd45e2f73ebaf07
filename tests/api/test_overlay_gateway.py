"""Addresses on an overlay network: one gateway host carries them, the others L2 only.

The API's side: refusals, the gateway in the network's status (also when its host is missing
or down), and the desired state each host is sent (read from the database as the host would
get it: app.services.realisation.host_spec, app.services.overlay.host_states).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.config import Settings
from app.db import get_sessionmaker
from app.messages import NetworkSpec
from app.models import Host, Network, utcnow
from app.services import overlay, realisation
from app.services.context import Ctx
from app.services.outbox import Outbox
from tests.api.test_overlay_api import problems, register

IPS = [
    {
        "address": "10.70.0.1",
        "prefix": 24,
        "dhcp": {"ranges": [{"start": "10.70.0.10", "end": "10.70.0.99"}]},
    }
]
NET = {
    "name": "gw",
    "forward": {"mode": "nat"},
    "bridge": {"name": "vbrgw", "mac_table_manager": "libvirt"},
    "ips": IPS,
    "overlay": {"vni": 7000, "gateway_host": "h1"},
}


@pytest.fixture
def ctx(api_settings: Settings) -> Iterator[Ctx]:
    with get_sessionmaker(api_settings.effective_database_url)() as session:
        yield Ctx(session, Outbox(None), api_settings)


def desired(ctx: Ctx, name: str = "gw") -> tuple[dict[str, NetworkSpec], dict[str, Any]]:
    """Each host's network spec and overlay state, as the control plane would send them."""
    ctx.db.expire_all()
    network = ctx.db.scalars(select(Network).where(Network.name == name)).one()
    states = overlay.host_states(ctx, network)
    specs = {h: realisation.host_spec(network, h) for h in states}
    ctx.db.rollback()  # no transaction left open: SQLite would lock the API out
    return specs, states


def test_addresses_need_a_gateway_host(client: TestClient) -> None:
    for extra in ({"ips": IPS}, {"forward": {"mode": "route"}}, {"forward": {"mode": "nat"}}):
        body = {"name": "bad", "overlay": {"vni": 7001}, **extra}
        r = client.post("/v1/networks", json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        found = problems(r)
        assert "overlay.gateway_host" in found, r.text
        assert "one host that carries its addresses" in found["overlay.gateway_host"]
    xml = (
        "<network><name>bad</name><forward mode='nat'/><ip address='10.71.0.1' prefix='24'/>"
        "<metadata><virtnet:overlay xmlns:virtnet='urn:virtnet:network:1.0' vni='7002'/>"
        "</metadata></network>"
    )
    r = client.post("/v1/networks", content=xml, headers={"Content-Type": "application/xml"})
    assert r.status_code == 422 and "gateway_host" in r.text, r.text
    assert client.get("/v1/networks/bad").status_code == 404
    # a pure L2 overlay needs none
    assert (
        client.post("/v1/networks", json={"name": "l2", "overlay": {"vni": 7003}}).status_code
        == 201
    )


def test_gateway_host_round_trips_through_xml(client: TestClient) -> None:
    assert client.post("/v1/networks", json=NET).status_code == 201
    xml = client.get("/v1/networks/gw", headers={"Accept": "application/xml"}).text
    assert 'gatewayHost="h1"' in xml and "<ip " in xml, xml
    assert client.delete("/v1/networks/gw").status_code in (200, 204)
    r = client.post("/v1/networks", content=xml, headers={"Content-Type": "application/xml"})
    assert r.status_code == 201, r.text
    assert r.json()["overlay"] == {"type": "vxlan", "vni": 7000, "port": 4789, "gateway_host": "h1"}
    again = client.get("/v1/networks/gw", headers={"Accept": "application/xml"}).text
    assert again == xml


def test_only_the_gateway_gets_addresses_dhcp_and_nat(
    client: TestClient, api_settings: Settings, ctx: Ctx
) -> None:
    for i in (1, 2, 3):
        register(api_settings, f"h{i}", f"192.0.2.{i}")
    r = client.post("/v1/networks?start=true", json=NET)
    assert r.status_code == 201, r.text
    mac = r.json()["mac"]
    status = client.get("/v1/networks/gw").json()["status"]
    assert status["gateway"] == {"host": "h1", "state": "pending", "reason": None}
    assert [h["host"] for h in status["hosts"]] == ["h1", "h2", "h3"]

    specs, states = desired(ctx)
    gw = specs["h1"]
    assert gw.ips == ["10.70.0.1/24"] and gw.dnsmasq and gw.firewall and gw.mac == mac
    for h in ("h2", "h3"):  # L2 only, with a bridge MAC of their own
        assert (specs[h].ips, specs[h].dnsmasq, specs[h].firewall) == ([], None, None)
        assert specs[h].ip_forwarding == [] and specs[h].mac not in (None, mac)
        assert specs[h].vni == 7000
        # no guest anywhere: the gateway is still each host's peer, its MAC a static entry
        assert states[h]["peers"] == ["192.0.2.1"]
        assert states[h]["remote"] == [[mac, "192.0.2.1"]]
    assert states["h1"]["peers"] == [] and states["h1"]["remote"] == []
    assert specs["h2"].mac != specs["h3"].mac

    # the gateway moves live: h1 drops its part, h3 gets it
    moved = {**NET, "overlay": {"vni": 7000, "gateway_host": "h3"}}
    r = client.put("/v1/networks/gw?live=true", json=moved)
    assert r.status_code == 200, r.text
    specs, states = desired(ctx)
    assert (specs["h1"].ips, specs["h1"].dnsmasq, specs["h1"].firewall) == ([], None, None)
    assert specs["h3"].ips == ["10.70.0.1/24"] and specs["h3"].mac == mac
    assert states["h1"]["remote"] == [[mac, "192.0.2.3"]] and states["h3"]["remote"] == []
    assert client.get("/v1/networks/gw").json()["status"]["gateway"]["host"] == "h3"
    # anything else still needs a restart
    other = {**moved, "ips": [{"address": "10.72.0.1", "prefix": 24}]}
    assert client.put("/v1/networks/gw?live=true", json=other).status_code == 409


def test_a_missing_or_down_gateway_leaves_the_l2_working(
    client: TestClient, api_settings: Settings, ctx: Ctx
) -> None:
    register(api_settings, "h2", "192.0.2.2")
    register(api_settings, "h3", "192.0.2.3")
    net = {**NET, "overlay": {"vni": 7000, "gateway_host": "h1"}}
    assert client.post("/v1/networks", json=net).status_code == 201
    gateway = client.get("/v1/networks/gw").json()["status"]["gateway"]
    assert gateway == {"host": "h1", "state": "inactive", "reason": None}
    r = client.post("/v1/networks/gw/start")
    assert r.status_code == 200, r.text  # started all the same: L2 on h2 and h3
    status = client.get("/v1/networks/gw").json()["status"]
    assert [h["host"] for h in status["hosts"]] == ["h2", "h3"]
    gateway = status["gateway"]
    assert gateway["state"] == "missing" and "h1 never registered" in gateway["reason"]
    specs, states = desired(ctx)
    assert all(s.ips == [] and s.dnsmasq is None for s in specs.values())
    assert states["h2"]["remote"] == [] and states["h2"]["peers"] == []

    register(api_settings, "h1", None)  # registered, but with no underlay
    gateway = client.get("/v1/networks/gw").json()["status"]["gateway"]
    assert gateway["state"] == "missing" and "underlay" in gateway["reason"]

    register(api_settings, "h1", "192.0.2.1")  # comes with its underlay: it joins
    specs, states = desired(ctx)
    assert specs["h1"].ips == ["10.70.0.1/24"] and states["h2"]["peers"] == ["192.0.2.1"]
    assert client.get("/v1/networks/gw").json()["status"]["gateway"]["state"] == "pending"

    stale = utcnow() - timedelta(hours=1)
    ctx.db.execute(update(Host).where(Host.name == "h1").values(last_seen=stale))
    ctx.db.commit()
    gateway = client.get("/v1/networks/gw").json()["status"]["gateway"]
    assert gateway["state"] == "down" and "h1 is down" in gateway["reason"]

    assert client.post("/v1/networks/gw/stop").status_code in (200, 204)
    gateway = client.get("/v1/networks/gw").json()["status"]["gateway"]
    assert gateway == {"host": "h1", "state": "inactive", "reason": None}
