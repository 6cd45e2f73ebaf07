"""The shared parts (<bandwidth>, <vlan>, <virtualport>): read, printed and checked once."""

from __future__ import annotations

from lxml import etree

from app.conf.network.model import Bandwidth, VirtualPort, Vlan
from app.conf.parts import (
    print_bandwidth,
    print_virtualport,
    print_vlan,
    read_bandwidth,
    read_virtualport,
    read_vlan,
    rule_breaks,
)
from app.conf.xml.reader import Findings, Node
from app.conf.xml.writer import Out

PARTS = """<interface>
  <vlan trunk='yes'><tag id='42'/><tag id='47' nativeMode='untagged'/></vlan>
  <bandwidth><inbound average='1000' peak='5000' burst='1024'/><outbound average='128'/></bandwidth>
  <virtualport type='openvswitch'>
    <parameters interfaceid='09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f'/>
  </virtualport>
</interface>"""


def read_parts(xml: str) -> tuple[dict[str, object], Findings]:
    found = Findings()
    root = Node(etree.fromstring(xml), "/interface", (), found)
    doc: dict[str, object] = {}
    read_vlan(root, doc)
    read_bandwidth(root, doc)
    read_virtualport(root, doc)
    root.finish()
    return doc, found


def test_parts_read_from_xml_print_back_as_libvirt_does() -> None:
    doc, found = read_parts(PARTS)
    assert not found.errors
    vlan = Vlan.model_validate(doc["vlan"])
    bandwidth = Bandwidth.model_validate(doc["bandwidth"])
    vport = VirtualPort.model_validate(doc["virtualport"])
    assert [t.id for t in vlan.tags] == [42, 47] and vlan.trunk
    assert bandwidth.inbound is not None and bandwidth.inbound.peak == 5000
    out = Out()
    print_vlan(out, vlan)
    print_bandwidth(out, bandwidth)
    print_virtualport(out, vport)
    assert "".join(out.lines) == (
        "<vlan trunk='yes'>\n  <tag id='42'/>\n  <tag id='47' nativeMode='untagged'/>\n</vlan>\n"
        "<bandwidth>\n  <inbound average='1000' peak='5000' burst='1024'/>\n"
        "  <outbound average='128'/>\n</bandwidth>\n"
        "<virtualport type='openvswitch'>\n"
        "  <parameters interfaceid='09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f'/>\n</virtualport>\n"
    )


def test_an_unknown_attribute_in_a_part_is_refused_with_its_path() -> None:
    _, found = read_parts("<interface><vlan><tag id='1' color='red'/></vlan></interface>")
    assert [e["field"] for e in found.errors] == ["/interface/vlan/tag[1]/@color"]


def test_libvirt_rules_of_the_parts_name_each_field() -> None:
    vlan = Vlan.model_validate({"tags": [{"id": 5}, {"id": 5}]})
    bandwidth = Bandwidth.model_validate({"inbound": {"peak": 10}, "outbound": {"floor": 3}})
    vport = VirtualPort.model_validate({"type": "802.1Qbh", "parameters": {"manager_id": 1}})
    assert rule_breaks(vlan, bandwidth, vport) == [
        (("vlan", "tags", 1, "id"), "vlan tag 5 is listed twice"),
        (("bandwidth", "inbound"), "Missing mandatory average or floor attributes"),
        (("bandwidth", "outbound", "floor"), "'floor' attribute allowed only in <inbound> element"),
        (
            ("virtualport", "parameters", "manager_id"),
            "does not apply to virtualport type '802.1Qbh'",
        ),
    ]
    assert rule_breaks(None, None, None) == []
