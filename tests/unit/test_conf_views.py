"""The definitions layer shows stored ports from plain values: no database row needed."""

from __future__ import annotations

from typing import Any

from lxml import etree

from app.conf.domain.format import domain_to_xml
from app.conf.port.actual import StoredPort, actual
from app.conf.port.xml import port_to_xml

PORT = StoredPort(
    id="0b5d2f9e-3c0a-4a53-9a4b-2f3a7d7c1e11",
    network_id=7,
    owner_name="vm1",
    owner_uuid="6a1f7b36-8c0e-4c3c-9d7e-1e2f3a4b5c6d",
    mac="52:54:00:00:00:01",
    portgroup=None,
    tap="vnet3",
    bridge="virbr7",
    mac_table_manager="libvirt",
    spec={"mtu": 9000},
)


def test_the_actual_device_of_a_network_port_and_of_a_bridge_port() -> None:
    assert actual(PORT) == {
        "type": "network",
        "bridge": "virbr7",
        "mac_table_manager": "libvirt",
        "tap": "vnet3",
        "mtu": 9000,
        "vlan": None,
        "bandwidth": None,
        "port_isolated": False,
        "class_id": None,
        "outbound_limit": None,
    }
    on_host_bridge = StoredPort(**{**PORT.__dict__, "network_id": None, "spec": {}})
    assert actual(on_host_bridge)["type"] == "bridge"
    assert actual(on_host_bridge)["mtu"] is None


def test_stored_port_takes_the_values_of_anything_shaped_like_a_row() -> None:
    class Row:
        def __init__(self, **values: Any) -> None:
            self.__dict__.update(values, state="plugged", generation=3)

    assert StoredPort.of(Row(**PORT.__dict__)) == PORT


def test_a_port_is_libvirt_networkport_with_its_plug() -> None:
    assert port_to_xml(PORT) == (
        "<networkport>\n"
        f"  <uuid>{PORT.id}</uuid>\n"
        f"  <owner>\n    <name>vm1</name>\n    <uuid>{PORT.owner_uuid}</uuid>\n  </owner>\n"
        "  <mac address='52:54:00:00:00:01'/>\n"
        "  <plug type='network' bridge='virbr7' macTableManager='libvirt'/>\n"
        "</networkport>\n"
    )


def test_a_running_domain_shows_its_ports_live_and_in_status_form() -> None:
    definition = {
        "name": "vm1",
        "host": "h1",
        "interfaces": [
            {"type": "network", "mac": PORT.mac, "source": {"network": "n"}},
            {"type": "user", "mac": "52:54:00:00:00:09"},
        ],
    }
    live = etree.fromstring(domain_to_xml(definition, [PORT]).encode())
    source, target = live.find("devices/interface/source"), live.find("devices/interface/target")
    assert source is not None and target is not None
    assert dict(source.attrib) == {
        "network": "n",
        "portid": PORT.id,
        "bridge": "virbr7",
        "macTableManager": "libvirt",
    }
    assert target.get("dev") == "vnet3"
    status = etree.fromstring(domain_to_xml(definition, [PORT], status=True).encode())
    plugged = status.find("devices/interface/actual/source")
    assert plugged is not None and plugged.get("bridge") == "virbr7"
    inactive = etree.fromstring(domain_to_xml(definition, [PORT], live=False).encode())
    assert inactive.find("devices/interface/target") is None
