"""libvirt <domain> XML: what virtnet reads, what it keeps verbatim, and its three views."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from app.conf.domain.format import domain_to_xml
from app.conf.domain.parse import domain_from_xml
from app.conf.errors import InvalidDocument
from app.config import Settings
from app.db import get_sessionmaker
from app.models import Domain
from tests.api.conftest import assert_problem
from tests.api.test_ports_api import add_host
from tests.cluster import Cluster
from tests.kernel import readback
from tests.xml.test_hostile_xml import LAUGHS

XML = {"Content-Type": "application/xml"}
ACCEPT = {"Accept": "application/xml"}
D = "/domain"


def domain(*interfaces: str, memory: str = "<memory unit='KiB'>524288</memory>") -> bytes:
    devices = "".join(f"\n    {i}" for i in interfaces)
    return (
        "<domain type='kvm'>\n  <name>vm1</name>\n"
        f"  {memory}\n  <vcpu placement='static'>2</vcpu>\n"
        f"  <devices>{devices}\n  </devices>\n</domain>\n"
    ).encode()


NET = (
    "<interface type='network'><mac address='52:54:00:00:00:01'/><source network='n'/></interface>"
)


def refusal(raw: bytes, host: str | None = "h") -> InvalidDocument:
    with pytest.raises(InvalidDocument) as caught:
        domain_from_xml(raw, host)
    return caught.value


MEMORY = [
    ("1", "GiB", 1048576),
    ("1", "G", 1048576),
    ("512", "m", 524288),
    ("1000", "KB", 977),  # libvirt rounds a byte count up to whole KiB
    ("1", "b", 1),
    ("2048", "bytes", 2),
    ("1", "TiB", 1024**3),
    ("3", "", 3),
    ("1", "MB", 977),
]


@pytest.mark.parametrize(("value", "unit", "kib"), MEMORY)
def test_memory_is_converted_to_kib_like_libvirt(value: str, unit: str, kib: int) -> None:
    attr = f" unit='{unit}'" if unit else ""
    d = domain_from_xml(domain(memory=f"<memory{attr}>{value}</memory>"), "h")
    assert d.memory == kib


def test_the_model_fields_and_the_kept_document() -> None:
    raw = domain(
        "<interface type='bridge'><source bridge='br0'/><model type='virtio'/>"
        "<target dev='tap0'/><mtu size='9000'/><vlan><tag id='5'/></vlan>"
        "<bandwidth><outbound average='100'/></bandwidth>"
        "<virtualport type='openvswitch'/><driver name='vhost' queues='4'/></interface>",
    )
    d = domain_from_xml(raw, "h")
    assert (d.name, d.type, d.vcpus, d.host) == ("vm1", "kvm", 2, "h")
    i = d.interfaces[0]
    read = (i.type, i.source.bridge, i.model, i.target, i.mtu)
    assert read == ("bridge", "br0", "virtio", "tap0", 9000)
    assert i.vlan and i.vlan.tags[0].id == 5 and i.bandwidth and i.bandwidth.outbound
    assert i.virtualport and i.virtualport.type == "openvswitch"
    assert i.mac and i.mac.startswith("52:54:00:")  # generated, as libvirt does
    assert f"<mac address='{i.mac}'/>" in (d.xml or "")  # and kept in the document
    assert "<driver name='vhost' queues='4'/>" in (d.xml or "")


def test_live_state_in_a_definition_is_dropped_as_libvirt_does() -> None:
    raw = domain(
        "<interface type='network'><mac address='52:54:00:00:00:01'/>"
        "<source network='n' portid='1d5b6bd8-3a4c-4a43-a6c4-b1a7f1f6f4a0' bridge='virbr0' "
        "macTableManager='libvirt'/><actual type='network'><source bridge='virbr0'/></actual>"
        "<target dev='vnet3'/></interface>"
    ).replace(b"<domain type='kvm'>", b"<domain type='kvm' id='4'>")
    d = domain_from_xml(raw, "h")
    assert d.interfaces[0].target is None
    kept = d.xml or ""
    for live in ("portid", "bridge=", "<actual", "vnet3", "id='4'"):
        assert live not in kept, live
    assert "<source network='n'/>" in kept


I1 = f"{D}/devices/interface[1]"
MAC1, MAC2 = "<mac address='52:54:00:00:00:01'/>", "<mac address='52:54:00:00:00:02'/>"
BRIDGED = NET.replace("network'", "bridge'").replace("network=", "bridge=")


def user(body: str) -> bytes:
    """A domain with one user interface holding ``body`` (on line 6)."""
    return domain(f"<interface type='user'>{body}</interface>")


BAD = [
    ("no-name", b"<domain type='kvm'><memory>1</memory></domain>", D, 1, "<name>"),
    ("no-memory", b"<domain type='kvm'><name>a</name></domain>", D, 1, "<memory>"),
    ("no-type", b"<domain><name>a</name><memory>1</memory></domain>", D, 1, "type attribute"),
    (
        "type",
        b"<domain type='hyperv'><name>a</name><memory>1</memory></domain>",
        f"{D}/@type",
        1,
        "'kvm'",
    ),
    (
        "name",
        b"<domain type='kvm'>\n<name>-a</name><memory>1</memory></domain>",
        f"{D}/name",
        2,
        "must be",
    ),
    ("unit", domain(memory="<memory unit='KQ'>5</memory>"), f"{D}/memory/@unit", 3, "unit like"),
    ("zero-memory", domain(memory="<memory>0</memory>"), f"{D}/memory", 3, "greater than"),
    ("vcpu", domain().replace(b">2</vcpu>", b">two</vcpu>"), f"{D}/vcpu", 4, "whole number"),
    ("wrong-root", b"<network><name>n</name></network>", D, 1, "<domain>"),
    ("iface-type", domain("<interface type='wire'/>"), f"{I1}/@type", 6, "'network'"),
    ("no-source", domain("<interface type='network'/>"), I1, 6, "source.network"),
    ("mac", user("<mac address='01:00:5e:00:00:01'/>"), f"{I1}/mac/@address", 6, "unicast"),
    ("two-macs", user(MAC1 + MAC2), f"{I1}/mac", 6, "only once"),
    ("shared-mac", domain(NET, BRIDGED), f"{D}/devices/interface[2]/mac/@address", 7, "a MAC"),
    ("mtu", user("<mtu size='big'/>"), f"{I1}/mtu/@size", 6, "whole number"),
    ("vlan-tag", user("<vlan><tag id='5000'/></vlan>"), f"{I1}/vlan/tag[1]/@id", 6, "4095"),
    (
        "vlan-stray",
        user("<vlan><tag id='5' colour='red'/></vlan>"),
        f"{I1}/vlan/tag[1]/@colour",
        6,
        "colour",
    ),
    (
        "floor",
        user("<bandwidth><inbound floor='5'/></bandwidth>"),
        f"{I1}/bandwidth/inbound/@floor",
        6,
        "'network'",
    ),
    ("target", user("<target dev='a/b'/>"), f"{I1}/target/@dev", 6, "'/'"),
    ("no-host", domain(), "?host", None, "?host="),
]


@pytest.mark.parametrize(
    ("raw", "field", "line", "says"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_invalid_documents_name_the_element_and_line(
    raw: bytes, field: str, line: int | None, says: str
) -> None:
    error = refusal(raw, None if field == "?host" else "h")
    assert error.kind == "invalid"
    places = [{"field": e["field"], "line": e["line"]} for e in error.errors]
    assert {"field": field, "line": line} in places, error.errors
    assert says in error.detail, error.detail


def test_what_json_changes_is_written_into_the_kept_document() -> None:
    user = "<interface type='user'><mac address='52:54:00:00:00:09'/><!-- keep me --></interface>"
    d = domain_from_xml(domain(NET, user), "h").model_dump(mode="json")
    d["interfaces"][0]["source"]["portgroup"] = "eng"
    d["interfaces"][0]["model"] = "e1000"
    added = {"type": "bridge", "source": {"bridge": "br1"}, "mac": "52:54:00:00:00:02"}
    d["interfaces"].append(added)
    d.update(memory=1024, vcpus=1, description="web & db")
    shown = etree.fromstring(domain_to_xml(d, []).encode())
    assert shown.findtext("memory") == "1024" and shown.findtext("vcpu") == "1"
    assert shown.findtext("description") == "web & db"
    first, second, third = shown.findall("devices/interface")
    assert first.find("source").attrib == {"network": "n", "portgroup": "eng"}
    assert first.find("model").get("type") == "e1000"
    assert second.get("type") == "user" and "keep me" in etree.tostring(second).decode()
    assert third.get("type") == "bridge" and third.find("source").get("bridge") == "br1"
    d["interfaces"] = d["interfaces"][1:]  # a detach takes the element out
    remaining = etree.fromstring(domain_to_xml(d, []).encode()).findall("devices/interface")
    assert [i.get("type") for i in remaining] == ["user", "bridge"]


# ----- through the API ---------------------------------------------------------------------


@pytest.fixture
def net(client: TestClient, api_settings: Settings) -> str:
    add_host(api_settings, "hostA")
    bridge = {"name": "virbr7", "mac_table_manager": "libvirt"}
    r = client.post("/v1/networks", json={"name": "n", "bridge": bridge})
    assert r.status_code == 201, r.text
    assert client.post("/v1/networks/n/start").status_code == 200
    return "n"


def domains_stored(settings: Settings) -> list[str]:
    with get_sessionmaker(settings.effective_database_url)() as session:
        return [d.name for d in session.query(Domain)]


def define(client: TestClient, raw: bytes, query: str = "?host=hostA", **headers: str) -> Any:
    return client.post(f"/v1/domains{query}", content=raw, headers={**XML, **headers})


def xml_of(client: TestClient, query: str = "") -> str:
    r = client.get(f"/v1/domains/vm1{query}", headers=ACCEPT)
    assert r.status_code == 200 and r.headers["content-type"] == "application/xml", r.text
    return r.text


def test_a_domain_comes_back_as_defined_then_live_then_in_status_form(
    client: TestClient, net: str
) -> None:
    bridged = f"<interface type='bridge'>{MAC2}<source bridge='br9'/></interface>"
    uuid = "<uuid>3e3fce45-4f53-4fa7-bb32-11f34a3ee3f4</uuid>"
    raw = domain(NET, bridged).replace(b"</name>", f"</name>\n  {uuid}".encode())
    created = define(client, raw, **ACCEPT)
    assert created.status_code == 201 and created.text == raw.decode()
    assert xml_of(client) == raw.decode()
    assert client.post("/v1/domains/vm1/start").status_code == 202
    ports = {i["mac"]: i["actual"] for i in client.get("/v1/domains/vm1").json()["interfaces"]}
    net_port, bridge_port = ports["52:54:00:00:00:01"], ports["52:54:00:00:00:02"]
    live = etree.fromstring(xml_of(client).encode())
    network_if, bridge_if = live.findall("devices/interface")
    assert network_if.find("source").attrib == {
        "network": "n",
        "portid": net_port["port_id"],
        "bridge": "virbr7",
        "macTableManager": "libvirt",
    }
    assert network_if.find("target").get("dev") == net_port["tap"]
    assert bridge_if.find("source").attrib == {"bridge": "br9"}
    assert bridge_if.find("target").get("dev") == bridge_port["tap"]
    status = etree.fromstring(xml_of(client, "?status=true").encode())
    network_if = status.find("devices/interface")
    assert network_if.find("source").attrib == {"network": "n", "portid": net_port["port_id"]}
    assert network_if.find("actual").get("type") == "network"
    actual = network_if.find("actual/source").attrib
    assert actual == {"bridge": "virbr7", "macTableManager": "libvirt"}
    assert xml_of(client, "?inactive=true") == raw.decode()
    assert define(client, xml_of(client).encode(), **ACCEPT).status_code == 409  # same name
    copy = xml_of(client).replace("vm1", "vm2").replace("3e3fce45", "4e3fce45")
    again = define(client, copy.replace(":01'", ":11'").replace(":02'", ":12'").encode(), **ACCEPT)
    assert again.status_code == 201, again.text  # a live document defines a copy
    assert "portid" not in again.text and "vnet" not in again.text


def test_status_actual_shows_the_bandwidth_and_isolation_in_force(
    client: TestClient, api_settings: Settings
) -> None:
    add_host(api_settings, "hostA")
    gold = {"inbound": {"average": 800, "peak": 900, "burst": 64, "floor": 100}}
    body = {
        "name": "q",
        "bridge": {"name": "virbr8"},
        "bandwidth": {"inbound": {"average": 1000}},
        "port_isolated": True,
        "portgroups": [{"name": "gold", "bandwidth": gold, "default": True}],
    }
    assert client.post("/v1/networks", json=body).status_code == 201
    assert client.post("/v1/networks/q/start").status_code == 200
    own = "<bandwidth><outbound average='50'/></bandwidth></interface>"
    first = NET.replace("network='n'", "network='q'")
    second = first.replace(":01'", ":02'").replace("</interface>", own)
    raw = domain(first, second)
    assert define(client, raw).status_code == 201
    assert client.post("/v1/domains/vm1/start").status_code == 202
    status = etree.fromstring(xml_of(client, "?status=true").encode())
    from_group, from_own = (i.find("actual") for i in status.findall("devices/interface"))
    assert from_group.find("bandwidth/inbound").attrib == {
        "average": "800",
        "peak": "900",
        "floor": "100",
        "burst": "64",
    }
    assert from_group.find("port").attrib == {"isolated": "yes"}
    assert from_own.find("bandwidth/inbound") is None  # the interface's own replaces the group's
    assert from_own.find("bandwidth/outbound").attrib == {"average": "50"}
    live = xml_of(client)
    assert live.count("<bandwidth>") == 1  # outside status, only what the interface itself says


def test_interfaces_virtnet_cannot_plug_are_stored_and_refused_at_start(
    client: TestClient, net: str
) -> None:
    cases = [
        ("<interface type='ethernet'><target dev='nic0'/></interface>", "'ethernet'"),
        ("<interface type='direct'><source dev='eth0' mode='vepa'/></interface>", "'direct'"),
        ("<virtualport type='openvswitch'/>", "openvswitch"),
        ("<vlan><tag id='7'/></vlan>", "VLAN"),
        ("<bandwidth><inbound average='9' floor='5'/></bandwidth>", "has no inbound QoS set"),
    ]
    for part, says in cases:
        interface = part if part.startswith("<interface") else NET.replace("</i", part + "</i")
        assert define(client, domain(interface)).status_code == 201
        assert_problem(client.post("/v1/domains/vm1/start"), 409, says=says)
        assert client.get("/v1/domains/vm1").json()["status"]["state"] == "shut_off"
        assert client.delete("/v1/domains/vm1").status_code == 204
    assert define(client, domain()).status_code == 201
    attach = {"type": "vhostuser", "mac": "52:54:00:00:00:05"}
    assert client.post("/v1/domains/vm1/interfaces", json=attach).status_code == 200
    assert client.post("/v1/domains/vm1/start").status_code == 409


def test_put_xml_keeps_the_host_unless_asked(
    client: TestClient, net: str, api_settings: Settings
) -> None:
    add_host(api_settings, "hostB")
    assert define(client, domain(NET)).status_code == 201
    updated = domain(NET).replace(b">2</vcpu>", b">4</vcpu>")
    r = client.put("/v1/domains/vm1", content=updated, headers=XML)
    assert r.status_code == 200, r.text
    assert r.json()["host"] == "hostA" and r.json()["vcpus"] == 4
    r = client.put("/v1/domains/vm1?host=hostB", content=updated, headers={**XML, **ACCEPT})
    uuid = client.get("/v1/domains/vm1").json()["uuid"]  # generated at define, kept
    with_uuid = updated.replace(b"</name>", f"</name>\n  <uuid>{uuid}</uuid>".encode())
    assert r.status_code == 200 and r.text == with_uuid.decode()
    assert client.get("/v1/domains/vm1").json()["host"] == "hostB"


def test_json_defined_domains_have_an_xml_view(client: TestClient, net: str) -> None:
    interface = {"type": "network", "source": {"network": "n"}}
    body = {"name": "vm1", "host": "hostA", "interfaces": [interface]}
    assert client.post("/v1/domains", json=body).status_code == 201
    shown = etree.fromstring(xml_of(client).encode())
    assert shown.get("type") == "kvm" and shown.findtext("memory") == "524288"
    mac = client.get("/v1/domains/vm1").json()["interfaces"][0]["mac"]
    assert shown.find("devices/interface/mac").get("address") == mac
    uuid = client.get("/v1/domains/vm1").json()["uuid"]
    copy = xml_of(client).replace("vm1", "vm2").replace(mac, "52:54:00:00:00:aa")
    again = define(client, copy.replace(uuid[:8], "00000000").encode())
    assert again.status_code == 201, again.text


def test_the_host_comes_from_the_query(client: TestClient, net: str) -> None:
    assert_problem(define(client, domain(), query=""), 422, "?host", "?host=")
    assert_problem(define(client, domain(), query="?host=a%20b"), 422, "?host", "characters")


def test_invalid_xml_gets_422_with_its_line(client: TestClient, net: str) -> None:
    body = assert_problem(define(client, domain("<interface type='wire'/>")), 422, says="line 6")
    assert body["errors"][0] == {
        "field": "/domain/devices/interface[1]/@type",
        "line": 6,
        "message": body["errors"][0]["message"],
    }


def test_billion_laughs_domain_gets_400_and_stores_nothing(
    client: TestClient, net: str, api_settings: Settings
) -> None:
    hostile = LAUGHS.replace(b"network", b"domain")
    assert_problem(define(client, hostile), 400, says="DOCTYPE")
    assert domains_stored(api_settings) == []


def test_billion_laughs_domain_update_gets_400_and_changes_nothing(
    client: TestClient, net: str
) -> None:
    assert define(client, domain()).status_code == 201
    hostile = LAUGHS.replace(b"network", b"domain")
    assert_problem(client.put("/v1/domains/vm1", content=hostile, headers=XML), 400, says="DOCTYPE")
    assert client.get("/v1/domains/vm1").json()["status"]["revision"] == 1


@pytest.mark.integration
def test_a_started_xml_domain_shows_the_tap_its_host_made(
    cluster: Cluster,
    two_hosts: dict[str, str],
) -> None:
    api = cluster.api
    bridge = {"name": "vnxml0", "stp": False, "mac_table_manager": "libvirt"}
    assert api.post("/v1/networks", json={"name": "n", "bridge": bridge}).status_code == 201
    assert api.post("/v1/networks/n/start").status_code == 200
    cluster.wait_network("n")
    assert api.post("/v1/domains?host=h2", content=domain(NET), headers=XML).status_code == 201
    started = api.post("/v1/domains/vm1/start?wait=20")
    assert started.status_code == 200 and started.json()["state"] == "succeeded", started.text
    live = etree.fromstring(api.get("/v1/domains/vm1", headers=ACCEPT).content)
    source, tap = live.find("devices/interface/source"), live.find("devices/interface/target")
    assert source.get("bridge") == "vnxml0" and source.get("macTableManager") == "libvirt"
    link = readback.links(two_hosts["h2"])[tap.get("dev")]
    assert link["master"] == "vnxml0" and link["address"] == "fe:54:00:00:00:01"
    stopped = api.post("/v1/domains/vm1/stop?wait=20")
    assert stopped.status_code == 200 and stopped.json()["state"] == "succeeded", stopped.text
    shown = api.get("/v1/domains/vm1", headers=ACCEPT).text
    assert shown == domain(NET).decode().replace("</name>", f"</name>\n  <uuid>{uuid(api)}</uuid>")


def uuid(api: TestClient) -> str:
    return str(api.get("/v1/domains/vm1").json()["uuid"])


def test_a_hostile_document_in_the_json_xml_field_is_refused(
    client: TestClient, net: str, api_settings: Settings
) -> None:
    body = {"name": "vm1", "host": "hostA", "xml": LAUGHS.replace(b"network", b"domain").decode()}
    assert_problem(client.post("/v1/domains", json=body), 422, "xml", "DOCTYPE")
    body["xml"] = "<network/>"
    assert_problem(client.post("/v1/domains", json=body), 422, "xml", "<domain>")
    assert domains_stored(api_settings) == []


LXC = b"""<domain type='lxc' xmlns:lxc='http://libvirt.org/schemas/domain/lxc/1.0'>
  <name>web</name>
  <memory unit='MiB'>64</memory>
  <os>
    <type>exe</type>
    <init>/bin/sh</init>
  </os>
  <devices>
    <interface type='network'>
      <mac address='52:54:00:00:00:01'/>
      <source network='n'/>
      <guest dev='lan0'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:00:00:02'/>
      <source network='n'/>
    </interface>
  </devices>
  <lxc:namespace>
    <lxc:sharenet type='netns' value='red'/>
  </lxc:namespace>
</domain>
"""


def test_an_lxc_domain_maps_onto_a_container_and_comes_back_unchanged() -> None:
    d = domain_from_xml(LXC, "h")
    assert (d.type, d.netns) == ("lxc", "red")
    assert [(i.mac, i.guest) for i in d.interfaces] == [
        ("52:54:00:00:00:01", "lan0"),
        ("52:54:00:00:00:02", None),
    ]
    doc = d.model_dump(mode="json")
    assert domain_to_xml(doc, []) == LXC.decode()
    # JSON changes are written back in libvirt's form
    doc["netns"] = "blue"
    doc["interfaces"][1]["guest"] = "lan1"
    out = domain_to_xml(doc, [])
    assert "<lxc:sharenet type='netns' value='blue'/>" in out and "<guest dev='lan1'/>" in out
    doc["netns"] = None
    assert "lxc:" not in domain_to_xml(doc, []).split("<devices>")[1]


def test_vm_queues_come_from_the_driver_element() -> None:
    raw = domain(
        "<interface type='network'><mac address='52:54:00:00:00:01'/><source network='n'/>"
        "<driver name='vhost' queues='4'/></interface>"
    )
    d = domain_from_xml(raw, "h")
    assert d.interfaces[0].queues == 4
    doc = d.model_dump(mode="json")
    doc["interfaces"][0]["queues"] = None
    assert "<driver name='vhost'/>" in domain_to_xml(doc, [])


@pytest.mark.parametrize(
    ("raw", "where", "message"),
    [
        (
            LXC.replace(b"type='netns'", b"type='name'"),
            "/domain/lxc:namespace/lxc:sharenet",
            "type='netns'",
        ),
        (LXC.replace(b"type='lxc'", b"type='kvm'"), "netns", "for containers (type lxc)"),
    ],
)
def test_container_only_parts_are_refused_elsewhere(raw: bytes, where: str, message: str) -> None:
    problem = refusal(raw)
    text = str(problem.errors)
    assert where in text and message in text, text
