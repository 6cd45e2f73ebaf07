"""What libvirt 9.0 prints back: an explicit macTableManager='kernel'; a bridge-type plug."""

from __future__ import annotations

from fastapi.testclient import TestClient
from lxml import etree

from app.config import Settings
from tests.api.test_ports_api import add_host

XML = {"Content-Type": "application/xml"}
ACCEPT = {"Accept": "application/xml"}


def bridge_of(client: TestClient, name: str) -> dict[str, str]:
    r = client.get(f"/v1/networks/{name}", headers=ACCEPT)
    assert r.status_code == 200, r.text
    return dict(etree.fromstring(r.content).find("bridge").attrib)


def test_an_explicit_kernel_mac_table_manager_is_printed_back(client: TestClient) -> None:
    for name, attr in (
        ("k", " macTableManager='kernel'"),
        ("u", ""),
        ("l", " macTableManager='libvirt'"),
    ):  # noqa: E501
        raw = f"<network><name>{name}</name><bridge name='vn{name}0'{attr}/></network>"
        assert client.post("/v1/networks", content=raw, headers=XML).status_code == 201
    assert bridge_of(client, "k")["macTableManager"] == "kernel"
    assert "macTableManager" not in bridge_of(client, "u")
    assert bridge_of(client, "l")["macTableManager"] == "libvirt"
    assert client.get("/v1/networks/k").json()["bridge"]["mac_table_manager"] == "kernel"


def test_a_port_on_a_forward_bridge_network_plugs_type_bridge(
    client: TestClient, api_settings: Settings
) -> None:
    add_host(api_settings, "hostA")
    raw = "<network><name>fb</name><forward mode='bridge'/><bridge name='brext0'/></network>"
    assert client.post("/v1/networks", content=raw, headers=XML).status_code == 201
    assert client.post("/v1/networks/fb/start").status_code == 200
    port = client.post(
        "/v1/networks/fb/ports",
        json={"owner": {"name": "vm1", "uuid": "6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d"},
              "host": "hostA"},
    )  # fmt: skip
    assert port.status_code in (201, 202), port.text
    assert port.json()["actual"]["type"] == "bridge"
    shown = client.get(f"/v1/networks/fb/ports/{port.json()['id']}", headers=ACCEPT)
    plug = etree.fromstring(shown.content).find("plug")
    assert plug.get("type") == "bridge" and plug.get("bridge") == "brext0"

    iface = {"type": "network", "source": {"network": "fb"}, "mac": "52:54:00:00:00:41"}
    domain = {"name": "vmb", "host": "hostA", "interfaces": [iface]}
    assert client.post("/v1/domains", json=domain).status_code == 201
    assert client.post("/v1/domains/vmb/start").status_code == 202
    status = client.get("/v1/domains/vmb?status=true", headers=ACCEPT)
    actual = etree.fromstring(status.content).find("devices/interface/actual")
    assert actual.get("type") == "bridge" and actual.find("source").get("bridge") == "brext0"


def test_errors_name_fields_in_the_format_the_client_sent(client: TestClient) -> None:
    first = {"name": "a", "ips": [{"address": "192.168.50.1", "prefix": 24}]}
    assert client.post("/v1/networks", json=first).status_code == 201
    second = {"name": "b", "ips": [{"address": "192.168.50.2", "prefix": 24}]}
    as_json = client.post("/v1/networks", json=second)
    assert as_json.status_code == 409 and as_json.json()["errors"][0]["field"] == "ips.0"
    raw = "<network><name>b</name>\n<ip address='192.168.50.2' prefix='24'/></network>"
    as_xml = client.post("/v1/networks", content=raw, headers=XML)
    assert as_xml.status_code == 409, as_xml.text
    error = as_xml.json()["errors"][0]
    assert error["field"] == "/network/ip[1]" and error["line"] == 2
    # the same rule for problems found while reading the XML itself
    bad = "<network><name>c</name><ip address='10.9.0.1' prefix='24'><dhcp>" \
        "<range start='10.8.0.2' end='10.8.0.9'/></dhcp></ip></network>"  # fmt: skip
    r = client.post("/v1/networks", content=bad, headers=XML)
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("/network/ip[1]")
