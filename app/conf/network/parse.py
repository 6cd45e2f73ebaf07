"""libvirt <network> element tree -> the JSON document of a NetworkDefinition.

Mirrors virNetworkDefParseXML (libvirt 9.0) element by element. Values are converted
only as far as XML needs (yes/no, numbers); everything else is checked by the model
and app.conf.network.validate, whose errors Findings.locate maps back to the XML.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from app.conf import jsondoc
from app.conf.network.model import LEASE_UNIT_SECONDS
from app.conf.parts import read_bandwidth, read_virtualport, read_vlan
from app.conf.xml.metadata import OVERLAY_TAG, VIRTNET_TAG, canonical
from app.conf.xml.reader import (
    Findings,
    Node,
    Where,
    any_base,
    child_text,
    label,
    on_off,
    one_of,
    put,
    read_attrs,
    single,
    uint,
    yes_no,
)

DNSMASQ_NS = "http://libvirt.org/schemas/network/dnsmasq/1.0"
Doc = dict[str, Any]


def _lease(parent: Node, doc: Doc) -> None:
    node = parent.child("lease")
    if node is None:
        return
    lease_loc = (*parent.loc, "lease")
    expiry = node.attr("expiry", any_base, loc=lease_loc, required=True)
    unit = node.attr("unit", one_of(*LEASE_UNIT_SECONDS), loc=(*parent.loc, "lease_unit"))
    node.finish()
    if expiry is not None:
        unit = unit or "minutes"  # libvirt's default unit
        doc["lease"], doc["lease_unit"] = expiry * LEASE_UNIT_SECONDS[unit], unit


def _dhcp(parent: Node) -> Doc | None:
    node = parent.child("dhcp", (*parent.loc, "dhcp"))
    if node is None:
        return None
    dhcp: Doc = {"ranges": [], "hosts": []}
    for item in node.children("range", (*node.loc, "ranges")):
        dhcp["ranges"].append(read_attrs(item, {}, {"start": ("start", str), "end": ("end", str)}))
        _lease(item, dhcp["ranges"][-1])
        item.finish()
    for item in node.children("host", (*node.loc, "hosts")):
        spec = {"mac": ("mac", str), "id": ("id", str), "name": ("name", str), "ip": ("ip", str)}
        dhcp["hosts"].append(read_attrs(item, {}, spec))
        _lease(item, dhcp["hosts"][-1])
        item.finish()
    bootp = node.child("bootp", (*node.loc, "bootp"))
    if bootp is not None:
        spec = {"file": ("file", str), "server": ("server", str)}
        dhcp["bootp"] = read_attrs(bootp, {}, spec, required=("file",))
        bootp.finish()
    node.finish()
    return dhcp


def _ip(node: Node) -> Doc:
    spec = {
        "address": ("address", str),
        "netmask": ("netmask", str),
        "prefix": ("prefix", uint),
        "family": ("family", str),
        "localPtr": ("local_ptr", yes_no),
    }
    ip = read_attrs(node, {}, spec, required=("address",))
    tftp = node.child("tftp")
    if tftp is not None:
        put(ip, "tftp_root", tftp.attr("root", loc=(*node.loc, "tftp_root"), required=True))
        tftp.finish()
    put(ip, "dhcp", _dhcp(node))
    node.finish()
    return ip


def _nat(parent: Node) -> Doc | None:
    node = parent.child("nat", (*parent.loc, "nat"))
    if node is None:
        return None
    nat = read_attrs(node, {}, {"ipv6": ("ipv6", yes_no)})
    for tag, convert in (("address", str), ("port", uint)):
        part = node.child(tag)
        if part is not None:
            spec = {"start": (f"{tag}_start", convert), "end": (f"{tag}_end", convert)}
            read_attrs(part, nat, spec)
            part.finish()
    node.finish()
    return nat


def _forward(root: Node, doc: Doc) -> None:
    node = root.child("forward", ("forward",))
    if node is None:
        return
    spec = {"dev": ("dev", str), "managed": ("managed", yes_no)}
    forward = read_attrs(node, {"mode": "nat"}, spec)  # <forward/> without mode is NAT
    put(forward, "mode", node.attr("mode", loc=("forward", "mode")))
    driver = node.child("driver")
    if driver is not None:
        put(forward, "driver", driver.attr("name", loc=("forward", "driver"), required=True))
        driver.finish()
    put(forward, "nat", _nat(node))
    for key, tag in (("interfaces", "interface"), ("pfs", "pf")):
        forward[key] = []
        for item in node.children(tag, ("forward", key)):
            forward[key].append(read_attrs(item, {}, {"dev": ("dev", str)}, required=("dev",)))
            if tag == "interface":
                item.attr("connections", uint)  # live state only: read and ignored
            item.finish()
    forward["addresses"] = []
    for item in node.children("address", ("forward", "addresses")):
        spec = {name: (name, str) for name in ("type", "domain", "bus", "slot", "function")}
        address = {"domain": "0", "bus": "0", "slot": "0", "function": "0"}  # libvirt's zeros
        forward["addresses"].append(read_attrs(item, address, spec, required=("type",)))
        item.attr("connections", uint)
        item.finish()
    node.finish()
    doc["forward"] = forward


def _bridge(root: Node, doc: Doc) -> None:
    node = root.child("bridge", ("bridge",))
    if node is None:
        return
    spec = {
        "name": ("name", str),
        "zone": ("zone", str),
        "stp": ("stp", on_off),
        "delay": ("delay", uint),
        "macTableManager": ("mac_table_manager", str),
    }
    doc["bridge"] = read_attrs(node, {}, spec)
    node.finish()


def _domain(root: Node, doc: Doc) -> None:
    node = root.child("domain", ("domain",))
    if node is not None:
        spec = {
            "name": ("name", str),
            "localOnly": ("local_only", yes_no),
            "register": ("register_names", yes_no),
        }
        doc["domain"] = read_attrs(node, {}, spec)
        node.finish()


def _dns(root: Node, doc: Doc) -> None:
    node = root.child("dns", ("dns",))
    if node is None:
        return
    spec = {"enable": ("enable", yes_no), "forwardPlainNames": ("forward_plain_names", yes_no)}
    dns = read_attrs(node, {}, spec)
    lists: dict[str, tuple[str, dict[str, tuple[str, Any]]]] = {
        "forwarders": ("forwarder", {"addr": ("addr", str), "domain": ("domain", str)}),
        "txts": ("txt", {"name": ("name", str), "value": ("value", str)}),
        "srvs": (
            "srv",
            {
                "service": ("service", str),
                "protocol": ("protocol", str),
                "domain": ("domain", str),
                "target": ("target", str),
                "port": ("port", uint),
                "priority": ("priority", uint),
                "weight": ("weight", uint),
            },
        ),
        "hosts": ("host", {"ip": ("ip", str)}),
    }
    for key, (tag, item_spec) in lists.items():
        dns[key] = []
        for item in node.children(tag, ("dns", key)):
            dns[key].append(read_attrs(item, {}, item_spec))
            if tag == "host":
                names = item.children("hostname", (*item.loc, "hostnames"))
                dns[key][-1]["hostnames"] = [_named_text(name) for name in names]
            item.finish()
    node.finish()
    doc["dns"] = dns


def _named_text(node: Node) -> str:
    text = node.text()
    node.finish(text=True)
    return text


def _route(node: Node) -> Doc:
    spec = {
        "family": ("family", str),
        "address": ("address", str),
        "netmask": ("netmask", str),
        "prefix": ("prefix", uint),
        "gateway": ("gateway", str),
        "metric": ("metric", uint),
    }
    route = read_attrs(node, {}, spec, required=("address", "gateway"))
    node.finish()
    return route


def _portgroup(node: Node) -> Doc:
    spec = {
        "name": ("name", str),
        "default": ("default", yes_no),
        "trustGuestRxFilters": ("trust_guest_rx_filters", yes_no),
    }
    group = read_attrs(node, {}, spec, required=("name",))
    read_vlan(node, group)
    read_virtualport(node, group)
    read_bandwidth(node, group)
    single(node, group, "port", "isolated", "port_isolated", yes_no)  # virtnet's extension
    node.finish()
    return group


def _virtnet(node: Node, doc: Doc) -> None:
    node.found.where[("metadata",)] = Where(node.path, node.line)
    put(doc, "autostart", node.attr("autostart", yes_no, loc=("autostart",)))
    text = node.text().strip()
    node.finish(text=True)
    if not text:
        return
    try:
        metadata = jsondoc.loads(text)
    except jsondoc.TooDeep as exc:
        node.fail(f"the metadata is too deep: {exc}")
        return
    except ValueError as exc:
        node.fail(f"the metadata is not valid JSON: {exc}")
        return
    if not isinstance(metadata, dict):
        node.fail("the metadata must be a JSON object")
        return
    doc["metadata"] = metadata


def _metadata(root: Node, doc: Doc) -> None:
    node = root.child("metadata", ("metadata_xml",))
    if node is None:
        return
    virtnet = node.child(VIRTNET_TAG, ("autostart",))
    if virtnet is not None:
        _virtnet(virtnet, doc)
    overlay = node.child(OVERLAY_TAG, ("overlay",))
    if overlay is not None:
        spec = {
            "type": ("type", str),
            "vni": ("vni", uint),
            "port": ("port", uint),
            "gatewayHost": ("gateway_host", str),
        }
        doc["overlay"] = read_attrs(overlay, {}, spec, required=("vni",))
        overlay.finish()
    for i, element in enumerate(node.rest()):
        where = Where(f"{node.path}/{label(element)}", element.sourceline)
        node.found.where[("metadata_xml", i)] = where
        try:
            doc.setdefault("metadata_xml", []).append(canonical(element))
        except ValueError as exc:
            node.found.add(where.path, where.line, str(exc))
    node.finish()


def _dnsmasq(root: Node, doc: Doc) -> None:
    node = root.child(f"{{{DNSMASQ_NS}}}options", ("dnsmasq_options",))
    if node is None:
        return
    options = node.children(f"{{{DNSMASQ_NS}}}option", ("dnsmasq_options",))
    doc["dnsmasq_options"] = [o.attr("value", required=True) for o in options]
    for option in options:
        option.finish()
    node.finish()


def read_network(element: etree._Element) -> tuple[Doc, Findings]:
    """The document ``element`` describes, and where each part came from (with errors)."""
    found = Findings()
    root = Node(element, "/network", (), found)
    if element.tag != "network":
        root.fail(f"the root element must be <network>, not <{etree.QName(element).localname}>")
        return {}, found
    doc: Doc = {}
    spec = {"ipv6": ("ipv6", yes_no), "trustGuestRxFilters": ("trust_guest_rx_filters", yes_no)}
    read_attrs(root, doc, spec)
    root.attr("connections", uint)  # live state only: read and ignored
    for tag in ("name", "uuid", "title", "description"):
        put(doc, tag, child_text(root, tag, (tag,)))
    if "uuid" in doc:
        doc["uuid"] = doc["uuid"].strip()  # as libvirt's virUUIDParse allows
    if "name" not in doc:
        root.fail("a network needs a <name>")
    _metadata(root, doc)
    _forward(root, doc)
    _bridge(root, doc)
    single(root, doc, "mtu", "size", "mtu", uint)
    single(root, doc, "mac", "address", "mac")
    _domain(root, doc)
    _dns(root, doc)
    read_vlan(root, doc)
    read_bandwidth(root, doc)
    single(root, doc, "port", "isolated", "port_isolated", yes_no)
    doc["ips"] = [_ip(node) for node in root.children("ip", ("ips",))]
    doc["routes"] = [_route(node) for node in root.children("route", ("routes",))]
    read_virtualport(root, doc)
    doc["portgroups"] = [_portgroup(node) for node in root.children("portgroup", ("portgroups",))]
    _dnsmasq(root, doc)
    root.finish()
    return doc, found
