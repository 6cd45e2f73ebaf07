"""The XML view in detail: where errors point, what is canonical, what travels in <metadata>."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.conf.common import compact
from app.conf.errors import InvalidDocument
from app.conf.network.xml import network_from_xml, network_to_xml
from tests.api.conftest import assert_problem

XML = {"Content-Type": "application/xml", "Accept": "application/xml"}


def document(xml: str) -> dict[str, Any]:
    return compact(network_from_xml(xml.encode()).model_dump(mode="json"))


def refusal(xml: str) -> list[dict[str, Any]]:
    with pytest.raises(InvalidDocument) as caught:
        network_from_xml(xml.encode())
    assert caught.value.kind == "invalid"
    return caught.value.errors


ERRORS = [
    # from the reader
    ("<forward mode='tunnel'/>", "/network/forward/@mode", "Input should be 'none'"),
    (
        "<forward mode='hostdev'><address type='usb'/></forward>",
        "/network/forward/address[1]/@type",
        "'pci'",
    ),
    ("<bridge macTableManager='openvswitch'/>", "/network/bridge/@macTableManager", "'kernel'"),
    (
        "<ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'>"
        "<lease/></range></dhcp></ip>",
        "/network/ip[1]/dhcp/range[1]/lease",
        "expiry",
    ),
    ("<metadata><x/></metadata>", "/network/metadata/x", "namespace"),
    # from the model
    ("<mtu size='20'/>", "/network/mtu/@size", "greater than or equal to 68"),
    (
        "<ip address='10.0.0.1' prefix='24'><dhcp><host mac='01:00:5e:00:00:01' ip='10.0.0.5'/>"
        "</dhcp></ip>",
        "/network/ip[1]/dhcp/host[1]/@mac",
        "unicast",
    ),
    ("<vlan trunk='no'><tag id='1' nativeMode='tagged'/></vlan>", "/network/vlan", "trunk"),
    # from app.conf.network.validate and libvirt's rules
    ("<forward mode='nat'/>", "/network/forward/@mode", "needs an IP address"),
    (
        "<forward mode='private' dev='eth0'><interface dev='eth0'/><interface dev='eth0'/>"
        "</forward>",
        "/network/forward/interface[2]/@dev",
        "listed twice",
    ),
    ("<forward mode='none' dev='eth0'/>", "/network/forward", "takes no devices"),
    ("<forward mode='vepa'/><bridge stp='off'/>", "/network/bridge/@stp", "do not apply"),
    ("<dns enable='no'><txt name='a' value='b'/></dns>", "/network/dns", "disabled"),
    (
        "<ip family='ipv6' address='fd00::1' prefix='64'><tftp root='/srv'/></ip>",
        "/network/ip[1]/tftp/@root",
        "IPv4",
    ),
    (
        "<ip address='10.0.0.1' prefix='24'/><route address='10.9.0.0' prefix='16' "
        "gateway='10.8.0.1'/>",
        "/network/route[1]/@gateway",
        "not reachable",
    ),
    (
        "<ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'>"
        "<lease expiry='90' unit='seconds'/></range></dhcp></ip>",
        "/network/ip[1]/dhcp/range[1]/lease/@expiry",
        "120 seconds",
    ),
    (
        "<bandwidth><outbound average='1' floor='2'/></bandwidth>",
        "/network/bandwidth/outbound/@floor",
        "inbound",
    ),
    (
        "<virtualport type='802.1Qbh'><parameters managerid='1'/></virtualport>",
        "/network/virtualport/parameters/@managerid",
        "does not apply",
    ),
]


@pytest.mark.parametrize(("inner", "field", "says"), ERRORS, ids=[e[1] for e in ERRORS])
def test_an_error_names_the_element_or_attribute_and_its_line(
    inner: str, field: str, says: str
) -> None:
    errors = refusal(f"<network>\n<name>n</name>\n{inner}\n</network>")
    assert field in [e["field"] for e in errors], errors
    error = next(e for e in errors if e["field"] == field)
    assert says in error["message"] and error["line"] == 3, error


def test_what_json_says_and_libvirt_cannot_travels_in_a_virtnet_element(
    client: TestClient,
) -> None:
    app_element = "<app:owner xmlns:app='urn:example:app'><app:team>net</app:team></app:owner>"
    doc = {
        "name": "lab",
        "autostart": True,
        "metadata": {"team": {"owner": "x"}},
        "metadata_xml": [app_element],
    }
    created = client.post("/v1/networks", json=doc).json()
    assert created["metadata_xml"] == [
        '<app:owner xmlns:app="urn:example:app"><app:team>net</app:team></app:owner>'
    ]
    xml = client.get("/v1/networks/lab", headers=XML).text
    assert (
        "  <metadata>\n"
        '    <virtnet:network xmlns:virtnet="urn:virtnet:network:1.0" autostart="yes">'
        '{"team": {"owner": "x"}}</virtnet:network>\n'
        '    <app:owner xmlns:app="urn:example:app">\n'
        "      <app:team>net</app:team>\n"
        "    </app:owner>\n"
        "  </metadata>\n"
    ) in xml
    # GET-modify-PUT in XML keeps everything, including what only JSON shows
    edited = xml.replace("<name>lab</name>", "<name>lab</name>\n  <description>d</description>")
    put = client.put("/v1/networks/lab", content=edited.encode(), headers=XML)
    assert put.status_code == 200, put.text
    got = client.get("/v1/networks/lab").json()
    assert {**got, "status": None} == {**created, "description": "d", "status": None}


def test_metadata_elements_need_their_own_namespace(client: TestClient) -> None:
    bad = [
        ({"metadata_xml": ["<plain/>"]}, "metadata_xml.0", "namespace"),
        (
            {"metadata_xml": ["<a:x xmlns:a='urn:virtnet:network:1.0'/>"]},
            "metadata_xml.0",
            "virtnet's own",
        ),
        (
            {"metadata_xml": ["<a:x xmlns:a='urn:a'/>", "<b:y xmlns:b='urn:a'/>"]},
            "metadata_xml.1",
            "second",
        ),
        ({"metadata_xml": ["<!DOCTYPE x><a:x xmlns:a='urn:a'/>"]}, "metadata_xml.0", "DOCTYPE"),
    ]
    for extra, field, says in bad:
        assert_problem(client.post("/v1/networks", json={"name": "m", **extra}), 422, field, says)
    assert client.get("/v1/networks").json()["items"] == []


def test_libvirt_forms_are_canonical_in_both_views() -> None:
    doc = document(
        """<network ipv6='no' connections='4'>
          <name>n</name>
          <forward mode='nat' dev='eth0'/>
          <ip address='10.0.0.1' prefix='24'>
            <dhcp>
              <range start='10.0.0.2' end='10.0.0.9'><lease expiry='7200'/></range>
              <host mac='52:54:00:AB:CD:EF' name='a' ip='10.0.0.20'><lease expiry='0'/></host>
            </dhcp>
          </ip>
          <portgroup name='p'><vlan trunk='no'><tag id='4'/></vlan></portgroup>
          <virtualport type='openvswitch'>
            <parameters interfaceid='81FF0D90-C91E-6742-64DA-4A736EDB9A8C'/>
          </virtualport>
        </network>"""
    )
    assert "ipv6" not in doc  # 'no' is the default libvirt never prints
    assert doc["forward"] == {"mode": "nat", "dev": "eth0", "interfaces": [{"dev": "eth0"}]}
    dhcp = doc["ips"][0]["dhcp"]
    assert dhcp["ranges"][0]["lease"] == 7200 * 60 and dhcp["ranges"][0]["lease_unit"] == "minutes"
    assert dhcp["hosts"][0] == {
        "mac": "52:54:00:ab:cd:ef",
        "name": "a",
        "ip": "10.0.0.20",
        "lease": 0,
    }
    assert doc["portgroups"][0]["vlan"] == {"tags": [{"id": 4}]}
    assert (
        doc["virtualport"]["parameters"]["interface_id"] == "81ff0d90-c91e-6742-64da-4a736edb9a8c"
    )
    # JSON given in seconds shows in the largest exact unit
    xml = network_to_xml(
        {
            **doc,
            "ips": [
                {
                    "address": "10.0.0.1",
                    "prefix": 24,
                    "dhcp": {"ranges": [{"start": "10.0.0.2", "end": "10.0.0.9", "lease": 5400}]},
                }
            ],
        }
    )
    assert "<lease expiry='90' unit='minutes'/>" in xml


def test_a_dnsmasq_namespace_under_another_prefix_is_the_same_namespace() -> None:
    doc = document(
        "<network xmlns:x='http://libvirt.org/schemas/network/dnsmasq/1.0'><name>n</name>"
        "<x:options><x:option value='log-queries'/></x:options></network>"
    )
    assert doc["dnsmasq_options"] == ["log-queries"]
    xml = network_to_xml(doc)
    assert xml.startswith(
        "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>"
    )
    assert "<dnsmasq:option value='log-queries'/>" in xml


def test_awkward_text_survives_both_ways() -> None:
    description = "a'b\"c<d>&e\r\nf\tg  "
    doc = {
        "name": "n",
        "description": description,
        "title": "x\ty\r",
        "dnsmasq_options": ["k='v'\n"],
    }
    again = document(network_to_xml(doc))
    assert (again["description"], again["title"], again["dnsmasq_options"]) == (
        description,
        "x\ty\r",
        ["k='v'\n"],
    )


def test_json_refuses_what_xml_could_not_say(client: TestClient) -> None:
    cases = [
        ({"description": "bell\x07"}, "description"),
        ({"title": "two\nlines"}, "title"),
        ({"forward": {"mode": "nat"}}, "forward.mode"),
        ({"forward": {"mode": "passthrough", "managed": True}}, "forward.managed"),
        (
            {
                "forward": {"mode": "nat", "nat": {"port_start": 10}},
                "ips": [{"address": "10.0.0.1", "prefix": 24}],
            },
            "forward.nat",
        ),
        ({"bandwidth": {"inbound": {"average": 0}}}, "bandwidth.inbound.average"),
        ({"dns": {"srvs": [{"service": "s", "protocol": "tcp", "port": 53}]}}, "dns.srvs.0.port"),
    ]
    for extra, field in cases:
        assert_problem(client.post("/v1/networks", json={"name": "j", **extra}), 422, field)
    assert client.get("/v1/networks").json()["items"] == []
