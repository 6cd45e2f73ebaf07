"""One rule for error field paths: the path in the format the client sent. A port
(<networkport>) and a domain (<domain>) refused as XML name XPaths; the same mistakes sent
as JSON name JSON paths (the network's rule: test_libvirt_compat)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.config import Settings
from tests.api.test_ports_api import add_host

XML = {"Content-Type": "application/xml"}
OWNER = {"name": "vm1", "uuid": "6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d"}
OWNER_XML = f"<owner><name>vm1</name><uuid>{OWNER['uuid']}</uuid></owner>"
DOMAIN_XML = "<domain type='kvm'><name>d</name><memory>1024</memory><devices>{}</devices></domain>"
NIC_XML = "<interface type='network'><mac address='{}'/><source network='n'/>{}</interface>"
MAC = "52:54:00:00:00:01"


def fields(r: Any) -> list[str]:
    assert r.status_code == 422, r.text
    return [e["field"] for e in r.json()["errors"]]


def nic(mac: str = MAC, **extra: Any) -> dict[str, Any]:
    return {"type": "network", "source": {"network": "n"}, "mac": mac, **extra}


def test_port_errors_name_json_or_xml_paths(client: TestClient, api_settings: Settings) -> None:
    add_host(api_settings, "hostA")
    assert client.post("/v1/networks", json={"name": "n"}).status_code == 201
    assert client.post("/v1/networks/n/start").status_code == 200

    def as_json(**body: Any) -> list[str]:
        return fields(client.post("/v1/networks/n/ports", json={"owner": OWNER, **body}))

    def as_xml(inner: str) -> list[str]:
        raw = f"<networkport>{OWNER_XML}{inner}</networkport>"
        return fields(client.post("/v1/networks/n/ports?host=hostA", content=raw, headers=XML))

    assert as_json(host="hostA", mac="zz") == ["mac"]
    assert as_xml("<mac address='zz'/>") == ["/networkport/mac/@address"]
    assert as_json(host="hostA", bandwidth={"inbound": {"average": -1}}) == [
        "bandwidth.inbound.average"
    ]
    assert as_xml("<bandwidth><inbound average='-1'/></bandwidth>") == [
        "/networkport/bandwidth/inbound/@average"
    ]
    # a rule checked against the network, after parsing, names its field the same way
    assert as_json(host="hostA", portgroup="nope") == ["portgroup"]
    assert as_xml("<group>nope</group>") == ["/networkport/group"]


def test_domain_errors_name_json_or_xml_paths(client: TestClient, api_settings: Settings) -> None:
    add_host(api_settings, "hostA")

    def as_json(*interfaces: dict[str, Any]) -> list[str]:
        body = {"name": "d", "host": "hostA", "interfaces": list(interfaces)}
        return fields(client.post("/v1/domains", json=body))

    def as_xml(*interfaces: str) -> list[str]:
        raw = DOMAIN_XML.format("\n".join(interfaces))
        return fields(client.post("/v1/domains?host=hostA", content=raw, headers=XML))

    # a field's own rule
    assert as_json(nic("zz")) == ["interfaces.0.mac"]
    assert as_xml(NIC_XML.format("zz", "")) == ["/domain/devices/interface[1]/mac/@address"]
    # libvirt's rules for an interface's parts, checked once the interface is read
    zero = {"inbound": {"average": 0}}
    assert as_json(nic(bandwidth=zero)) == ["interfaces.0.bandwidth.inbound.average"]
    bandwidth = "<bandwidth><inbound average='0'/></bandwidth>"
    assert as_xml(NIC_XML.format(MAC, bandwidth)) == [
        "/domain/devices/interface[1]/bandwidth/inbound/@average"
    ]
    # rules across interfaces name the one that repeats
    assert as_json(nic(), nic()) == ["interfaces.1.mac"]
    same = NIC_XML.format(MAC, "")
    assert as_xml(same, same) == ["/domain/devices/interface[2]/mac/@address"]
    assert as_json(nic(target="tap1"), nic("52:54:00:00:00:02", target="tap1")) == [
        "interfaces.1.target"
    ]
