"""libvirt <networkport> XML: the pure reader and printer, and the ports API that speaks it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.conf.errors import InvalidDocument
from app.conf.port.model import PlugBridge
from app.conf.port.xml import format_networkport, parse_networkport
from app.config import Settings
from app.db import get_sessionmaker
from app.models import Port
from tests.api.conftest import assert_problem
from tests.api.test_ports_api import add_host
from tests.xml.test_hostile_xml import LAUGHS

XML = {"Content-Type": "application/xml"}
ACCEPT = {"Accept": "application/xml"}
OWNER = "<owner><name>vm1</name><uuid>6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d</uuid></owner>"


def port_xml(*parts: str, owner: str = OWNER) -> bytes:
    return ("<networkport>\n" + owner + "\n" + "\n".join(parts) + "\n</networkport>").encode()


def refusal(raw: bytes) -> InvalidDocument:
    with pytest.raises(InvalidDocument) as caught:
        parse_networkport(raw)
    return caught.value


def test_a_port_without_uuid_mac_or_plug_is_a_request_to_allocate() -> None:
    port, _ = parse_networkport(port_xml("<group>eng</group>"))
    assert port.uuid is None and port.mac is None and port.plug is None
    assert port.owner.name == "vm1" and port.group == "eng"
    assert format_networkport(port) == (
        "<networkport>\n  <owner>\n    <name>vm1</name>\n"
        "    <uuid>6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d</uuid>\n  </owner>\n"
        "  <group>eng</group>\n</networkport>\n"
    )


def test_plug_type_none_is_libvirts_name_for_no_plug() -> None:
    port, _ = parse_networkport(port_xml("<plug type='none'/>"))
    assert port.plug is None


def test_plug_values_are_read_and_printed() -> None:
    raw = port_xml(
        "<mac address='52:54:00:AA:BB:CC'/>",
        "<plug type='network' bridge='virbr3' macTableManager='libvirt'/>",
    )
    port, _ = parse_networkport(raw)
    assert port.mac == "52:54:00:aa:bb:cc"
    assert port.plug == PlugBridge(type="network", bridge="virbr3", mac_table_manager="libvirt")
    again, _ = parse_networkport(format_networkport(port).encode())
    assert again == port


N = "/networkport"
VLAN_NATIVES = "<vlan><tag id='1' nativeMode='tagged'/><tag id='2' nativeMode='untagged'/></vlan>"
PCI_SLOT = ("<plug type='hostdev-pci'>", "<address bus='1' slot='0x40'/>", "</plug>")
BAD = [
    ("wrong-root", b"<network><name>n</name></network>", N, 1, "<networkport>"),
    ("no-owner", b"<networkport/>", N, 1, "<owner>"),
    (
        "owner-uuid",
        port_xml(owner="<owner><name>a</name><uuid>x</uuid></owner>"),
        f"{N}/owner/uuid",
        2,
        "uuid",
    ),
    (
        "multicast-mac",
        port_xml("<mac address='01:00:5e:00:00:01'/>"),
        f"{N}/mac/@address",
        3,
        "unicast",
    ),
    ("plug-type", port_xml("<plug type='vhost'/>"), f"{N}/plug/@type", 3, "hostdev-pci"),
    ("plug-no-bridge", port_xml("<plug type='bridge'/>"), f"{N}/plug", 3, "bridge"),
    (
        "direct-mode",
        port_xml("<plug type='direct' dev='eth0' mode='loud'/>"),
        f"{N}/plug/@mode",
        3,
        "vepa",
    ),
    ("pci-no-address", port_xml("<plug type='hostdev-pci'/>"), f"{N}/plug", 3, "<address>"),
    ("pci-slot", port_xml(*PCI_SLOT), f"{N}/plug/address/@slot", 4, "0x1f"),
    (
        "class-id",
        port_xml("<bandwidth classID='x'/>"),
        f"{N}/bandwidth/@classID",
        3,
        "whole number",
    ),
    (
        "no-average",
        port_xml("<bandwidth><outbound peak='5'/></bandwidth>"),
        f"{N}/bandwidth/outbound",
        3,
        "average",
    ),
    ("two-vlan-natives", port_xml(VLAN_NATIVES), f"{N}/vlan", 3, "native"),
    ("unknown-element", port_xml("<colour/>"), f"{N}/colour", 3, "unknown element"),
    (
        "rxfilters",
        port_xml("<rxfilters trustGuest='maybe'/>"),
        f"{N}/rxfilters/@trustGuest",
        3,
        "'yes' or 'no'",
    ),
]


@pytest.mark.parametrize(
    ("raw", "field", "line", "says"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_invalid_documents_name_the_element_and_line(
    raw: bytes, field: str, line: int | None, says: str
) -> None:
    error = refusal(raw)
    assert error.kind == "invalid"
    assert {"field": field, "line": line} in [
        {"field": e["field"], "line": e["line"]} for e in error.errors
    ], error.errors
    assert says in error.detail, error.detail


# ----- through the API ---------------------------------------------------------------------


@pytest.fixture
def net(client: TestClient, api_settings: Settings) -> str:
    add_host(api_settings, "hostA")
    r = client.post(
        "/v1/networks",
        json={
            "name": "n",
            "bridge": {"name": "virbr7", "mac_table_manager": "libvirt"},
            "portgroups": [{"name": "eng", "default": True}, {"name": "ops"}],
        },
    )
    assert r.status_code == 201, r.text
    assert client.post("/v1/networks/n/start").status_code == 200
    return "n"


def stored_ports(settings: Settings) -> list[Port]:
    with get_sessionmaker(settings.effective_database_url)() as session:
        return list(session.query(Port))


def post(client: TestClient, raw: bytes, query: str = "?host=hostA", **headers: str) -> Any:
    return client.post(f"/v1/networks/n/ports{query}", content=raw, headers={**XML, **headers})


def test_a_posted_networkport_is_allocated_and_read_back_as_xml(
    client: TestClient, net: str
) -> None:
    raw = port_xml("<group>ops</group>", "<mac address='52:54:00:00:00:01'/>")
    created = post(client, raw)
    assert created.status_code == 202, created.text
    body = created.json()  # JSON unless asked otherwise
    assert body["host"] == "hostA" and body["portgroup"] == "ops"
    assert body["owner"]["name"] == "vm1" and body["mac"] == "52:54:00:00:00:01"
    shown = client.get(created.headers["location"], headers=ACCEPT)
    assert shown.status_code == 200 and shown.headers["content-type"] == "application/xml"
    assert shown.text == (
        "<networkport>\n"
        f"  <uuid>{body['id']}</uuid>\n"
        "  <owner>\n    <name>vm1</name>\n"
        "    <uuid>6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d</uuid>\n  </owner>\n"
        "  <group>ops</group>\n"
        "  <mac address='52:54:00:00:00:01'/>\n"
        "  <plug type='network' bridge='virbr7' macTableManager='libvirt'/>\n"
        "</networkport>\n"
    )
    port, _ = parse_networkport(shown.content)  # what virtnet prints, it reads
    assert str(port.uuid) == body["id"]
    assert client.get(created.headers["location"]).json()["id"] == body["id"]


def test_xml_in_and_out_with_the_plug_virtnet_would_make(client: TestClient, net: str) -> None:
    plug = "<plug type='network' bridge='virbr7' macTableManager='libvirt'/>"
    created = post(client, port_xml(plug), **ACCEPT)
    assert created.status_code == 202, created.text
    assert created.headers["content-type"] == "application/xml"
    port, _ = parse_networkport(created.content)
    assert port.group == "eng" and port.plug is not None  # the default portgroup
    assert created.headers["location"].endswith(str(port.uuid))


HOSTDEV = "<plug type='hostdev-pci'><address bus='1' slot='2' function='0'/></plug>"
REFUSED = [
    ("direct", "<plug type='direct' dev='eth0' mode='vepa'/>", 422, f"{N}/plug/@type", "'direct'"),
    ("hostdev", HOSTDEV, 422, f"{N}/plug/@type", "'hostdev-pci'"),
    ("other-bridge", "<plug type='network' bridge='virbr0'/>", 422, f"{N}/plug/@bridge", "virbr7"),
    (
        "other-manager",
        "<plug type='bridge' bridge='virbr7' macTableManager='kernel'/>",
        422,
        f"{N}/plug/@macTableManager",
        "'libvirt'",
    ),
    ("virtualport", "<virtualport type='openvswitch'/>", 422, f"{N}/virtualport", "virtual port"),
    ("trust", "<rxfilters trustGuest='yes'/>", 422, f"{N}/rxfilters/@trustGuest", "rx filters"),
    (
        "class",
        "<bandwidth classID='3'><inbound average='10'/></bandwidth>",
        422,
        f"{N}/bandwidth/@classID",
        "class",
    ),
    ("no-group", "<group>nope</group>", 422, None, "no portgroup 'nope'"),
]


def test_what_virtnet_cannot_honour_is_refused_by_name(
    client: TestClient, net: str, api_settings: Settings
) -> None:
    for case, part, status, field, says in REFUSED:
        r = post(client, port_xml(part))
        assert r.status_code == status, (case, r.text)
        assert_problem(r, status, field, says)
    assert stored_ports(api_settings) == []


def test_vlans_are_refused_naming_the_host_and_bandwidth_is_allocated(
    client: TestClient, net: str
) -> None:
    r = post(client, port_xml("<vlan><tag id='42'/></vlan>"))
    assert_problem(r, 409, says="neither 802.1Q nor bridge VLAN filtering")
    assert "'hostA'" in r.json()["detail"]
    r = post(
        client, port_xml("<bandwidth><inbound average='100'/></bandwidth><port isolated='yes'/>")
    )
    assert r.status_code == 202, r.text
    assert r.json()["actual"]["bandwidth"] == {"inbound": {"average": 100}}
    assert r.json()["actual"]["port_isolated"] is True


def test_the_host_comes_from_the_query(client: TestClient, net: str) -> None:
    assert_problem(post(client, port_xml(), query=""), 422, "?host", "?host=")
    assert_problem(post(client, port_xml(), query="?host=bad%20name"), 422, "?host", "characters")
    assert_problem(post(client, port_xml(), query="?host=nowhere"), 404, says="nowhere")


def test_invalid_xml_gets_422_with_its_line(client: TestClient, net: str) -> None:
    raw = port_xml("<mac address='52:54:00:00:00:01'/>", "<plug type='wire'/>")
    body = assert_problem(post(client, raw), 422, "/networkport/plug/@type", "line 4")
    assert body["errors"][0]["line"] == 4


def test_billion_laughs_port_gets_400_and_stores_nothing(
    client: TestClient, net: str, api_settings: Settings
) -> None:
    hostile = LAUGHS.replace(b"network", b"networkport")
    assert_problem(post(client, hostile), 400, says="DOCTYPE")
    assert stored_ports(api_settings) == []


def test_json_ports_are_unchanged_and_lists_stay_json(client: TestClient, net: str) -> None:
    owner = {"name": "vm1", "uuid": "6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d"}
    r = client.post("/v1/networks/n/ports", json={"owner": owner, "host": "hostA"})
    assert r.status_code == 202 and r.json()["actual"]["bridge"] == "virbr7"
    listed = client.get("/v1/networks/n/ports", headers=ACCEPT)
    assert listed.headers["content-type"] == "application/json"


def test_a_requested_uuid_becomes_the_port_id_once(client: TestClient, net: str) -> None:
    wanted = "5d744f21-ba4a-4d6e-bdb2-30a35ff3207d"
    r = post(client, port_xml(f"<uuid>{wanted}</uuid>"))
    assert r.status_code == 202, r.text
    assert r.json()["id"] == wanted and r.headers["location"].endswith(wanted)
    again = post(client, port_xml(f"<uuid>{wanted}</uuid>", "<mac address='52:54:00:00:00:77'/>"))
    assert_problem(again, 409, says="already exists")
