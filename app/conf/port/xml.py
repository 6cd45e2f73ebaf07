"""libvirt <networkport> XML <-> NetworkPortDocument, and a port's XML view.

``read_networkport`` and ``format_networkport`` are the pure pair (libvirt 9.0's
virNetworkPortDefParseXML / virNetworkPortDefFormatBuf): every plug type libvirt has
parses and prints back, including those virtnet does not realise. ``port_request`` is
where the API decides what of a document it can honour: virtnet plugs a tap on the
network's bridge, so a ``<plug>`` of type direct or hostdev-pci, and the parts of a
port it does not realise, are refused as invalid, naming them.

The host to plug on is not part of libvirt's format: it comes from ``?host=``.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from pydantic import ValidationError

from app.conf.network.model import NetworkDefinition
from app.conf.parts import (
    PCI_LIMITS,
    print_bandwidth,
    print_virtualport,
    print_vlan,
    read_bandwidth,
    read_virtualport,
    read_vlan,
    rule_breaks,
)
from app.conf.port.actual import StoredPort, actual
from app.conf.port.model import NetworkPortDocument, PlugBridge, PlugDirect, PortRequest
from app.conf.xml.body import error, located, parse_body, refuse
from app.conf.xml.reader import (
    Findings,
    Node,
    Where,
    child_text,
    one_of,
    put,
    single,
    uint,
    yes_no,
)
from app.conf.xml.writer import Out, as_yes_no

Doc = dict[str, Any]
PLUG_TYPES = ("none", "network", "bridge", "direct", "hostdev-pci")
#: plug types virtnet realises: a tap on the network's bridge
PLUGGED = ("network", "bridge")


def _bandwidth_class(root: Node, doc: Doc) -> None:
    node = root.child("bandwidth", ("bandwidth",))
    if node is not None:
        put(doc, "class_id", node.attr("classID", uint, loc=("class_id",)))
        node.element.attrib.pop("classID", None)  # read here; the shared reader takes the rest
    read_bandwidth(root, doc)


def _address(node: Node) -> Doc:
    address = {"domain": "0", "bus": "0", "slot": "0", "function": "0"}  # libvirt's zeros
    for name in address:
        put(address, name, node.attr(name, loc=("plug", "address", name)))
    node.finish()
    return address


def _plug(root: Node, doc: Doc) -> None:
    node = root.child("plug", ("plug",))
    if node is None:
        return
    kind = node.attr("type", one_of(*PLUG_TYPES), loc=("plug", "type"), required=True)
    plug: Doc = {"type": kind}
    if kind in PLUGGED:
        plug["bridge"] = node.attr("bridge", loc=("plug", "bridge"), required=True)
        manager = node.attr("macTableManager", loc=("plug", "mac_table_manager"))
        put(plug, "mac_table_manager", manager)
    elif kind == "direct":
        plug["dev"] = node.attr("dev", loc=("plug", "dev"), required=True)
        put(plug, "mode", node.attr("mode", loc=("plug", "mode")))
    elif kind == "hostdev-pci":
        put(plug, "managed", node.attr("managed", yes_no, loc=("plug", "managed")))
        driver = node.child("driver", ("plug", "driver"))
        if driver is not None:
            put(plug, "driver", driver.attr("name", loc=("plug", "driver"), required=True))
            driver.finish()
        address = node.child("address", ("plug", "address"))
        if address is None:
            node.fail("a hostdev-pci plug needs an <address>")
        else:
            plug["address"] = _address(address)
    node.finish()
    if kind not in (None, "none"):  # type='none' is libvirt's name for no plug
        doc["plug"] = plug


def read_networkport(element: etree._Element) -> tuple[Doc, Findings]:
    """The document ``element`` describes, and where each part came from (with errors)."""
    found = Findings()
    root = Node(element, "/networkport", (), found)
    if element.tag != "networkport":
        root.fail(f"the root element must be <networkport>, not <{etree.QName(element).localname}>")
        return {}, found
    doc: Doc = {}
    put(doc, "uuid", child_text(root, "uuid", ("uuid",)))
    if "uuid" in doc:
        doc["uuid"] = doc["uuid"].strip()
    owner = root.child("owner", ("owner",))
    if owner is None:
        root.fail("a network port needs an <owner> (name and uuid)")
    else:
        doc["owner"] = {}
        for tag in ("name", "uuid"):
            put(doc["owner"], tag, child_text(owner, tag, ("owner", tag)))
        owner.finish()
    put(doc, "group", child_text(root, "group", ("group",)))
    single(root, doc, "mac", "address", "mac")
    read_virtualport(root, doc)
    _bandwidth_class(root, doc)
    read_vlan(root, doc)
    single(root, doc, "port", "isolated", "port_isolated", yes_no)
    single(root, doc, "rxfilters", "trustGuest", "trust_guest_rx_filters", yes_no)
    _plug(root, doc)
    root.finish()
    return doc, found


def format_networkport(port: NetworkPortDocument) -> str:
    out = Out()
    out.open("networkport")
    out.text("uuid", None if port.uuid is None else str(port.uuid))
    out.open("owner")
    out.text("name", port.owner.name)
    out.text("uuid", str(port.owner.uuid))
    out.close("owner")
    out.text("group", port.group)
    if port.mac is not None:
        out.empty("mac", [("address", port.mac)])
    print_virtualport(out, port.virtualport)
    start = len(out.lines)
    print_bandwidth(out, port.bandwidth)
    if port.class_id is not None and len(out.lines) > start:  # the shared printer has no classID
        opened = out.lines[start].replace("<bandwidth>", f"<bandwidth classID='{port.class_id}'>")
        out.lines[start] = opened
    print_vlan(out, port.vlan)
    if port.port_isolated is not None:
        out.empty("port", [("isolated", as_yes_no(port.port_isolated))])
    if port.trust_guest_rx_filters is not None:
        out.empty("rxfilters", [("trustGuest", as_yes_no(port.trust_guest_rx_filters))])
    _format_plug(out, port)
    out.close("networkport")
    return "".join(out.lines)


def _format_plug(out: Out, port: NetworkPortDocument) -> None:
    plug = port.plug
    if plug is None:
        return
    if isinstance(plug, PlugBridge):
        attrs = [("bridge", plug.bridge), ("macTableManager", plug.mac_table_manager)]
        out.empty("plug", [("type", plug.type), *attrs])
    elif isinstance(plug, PlugDirect):
        out.empty("plug", [("type", plug.type), ("dev", plug.dev), ("mode", plug.mode)])
    else:
        out.open("plug", [("type", plug.type), ("managed", as_yes_no(plug.managed))])
        if plug.driver is not None:
            out.empty("driver", [("name", plug.driver)])
        a = plug.address
        pci = [("domain", a.domain), ("bus", a.bus), ("slot", a.slot), ("function", a.function)]
        out.empty("address", pci)
        out.close("plug")


def _pci_breaks(port: NetworkPortDocument) -> list[tuple[tuple[str | int, ...], str]]:
    if port.plug is None or port.plug.type != "hostdev-pci":
        return []
    numbers = port.plug.address.numbers()
    return [
        (("plug", "address", field), f"must be a number from 0 to {limit:#x}")
        for (field, limit), number in zip(PCI_LIMITS, numbers, strict=True)
        if number is None or number > limit
    ]


def parse_networkport(raw: bytes) -> tuple[NetworkPortDocument, Findings]:
    """A <networkport> body as the model, or InvalidDocument (invalid ones with line numbers)."""
    doc, found = read_networkport(parse_body(raw))
    if found.errors:
        raise refuse(found.errors)
    try:
        port = NetworkPortDocument.model_validate(doc)
    except ValidationError as exc:
        raise located(found, exc, skip=PLUG_TYPES) from None
    breaks = _pci_breaks(port) + list(rule_breaks(port.vlan, port.bandwidth, port.virtualport))
    if breaks:
        raise refuse([error(found, loc, message) for loc, message in breaks])
    return port, found


#: what a port request cannot carry in virtnet (yet): model field, why
UNREALISED = (
    ("virtualport", "virtnet does not realise virtual port profiles yet"),
    ("class_id", "a QoS class id is assigned by the network, not requested"),
    ("trust_guest_rx_filters", "virtnet does not realise trusting guest rx filters yet"),
)


def _plug_mismatch(
    found: Findings, plug: PlugBridge, network: NetworkDefinition
) -> list[dict[str, Any]]:
    """A plug in a request must be the one virtnet would make: the network's bridge."""
    bridge, manager = network.bridge.name, network.bridge.mac_table_manager or "kernel"
    errors = []
    if plug.bridge != bridge:
        why = f"network {network.name!r} uses bridge {bridge!r}, not {plug.bridge!r}"
        errors.append(error(found, ("plug", "bridge"), why))
    if plug.mac_table_manager not in (None, manager):
        why = f"network {network.name!r} has macTableManager {manager!r}"
        errors.append(error(found, ("plug", "mac_table_manager"), why))
    return errors


def port_request(
    parsed: tuple[NetworkPortDocument, Findings], *, host: str | None, network: NetworkDefinition
) -> PortRequest:
    """The allocation a parsed <networkport> asks for, or InvalidDocument naming what
    virtnet cannot honour. ``network`` is the live definition of the port's network."""
    port, found = parsed
    errors = []
    for field, why in UNREALISED:
        if getattr(port, field) not in (None, False):
            errors.append(error(found, (field,), why))
    plug = port.plug
    if plug is not None and not isinstance(plug, PlugBridge):
        why = f"virtnet cannot plug a port of type {plug.type!r} (it plugs taps on bridges)"
        errors.append(error(found, ("plug", "type"), why))
    elif plug is not None:
        errors += _plug_mismatch(found, plug, network)
    if host is None:
        errors.append({"field": "?host", "line": None, "message": "say which host: ?host=NAME"})
    if errors:
        raise refuse(errors)
    found.where[("host",)] = Where("?host", None)
    if ("group",) in found.where:  # the document's <group> is the request's portgroup
        found.where[("portgroup",)] = found.where[("group",)]
    try:
        return PortRequest.model_validate(
            {
                "id": port.uuid,
                "owner": port.owner,
                "host": host,
                "mac": port.mac,
                "portgroup": port.group,
                "vlan": port.vlan,
                "bandwidth": port.bandwidth,
                "port_isolated": port.port_isolated,
            }
        )
    except ValidationError as exc:
        raise located(found, exc) from None


def port_document(port: StoredPort) -> NetworkPortDocument:
    """A port as libvirt's <networkport>: its plug is the actual device."""
    device = actual(port)
    manager = "libvirt" if device["mac_table_manager"] == "libvirt" else None
    return NetworkPortDocument.model_validate(
        {
            "uuid": port.id,
            "owner": {"name": port.owner_name, "uuid": port.owner_uuid},
            "group": port.portgroup,
            "mac": port.mac,
            "vlan": device["vlan"],
            "bandwidth": device["bandwidth"],
            "class_id": device["class_id"],
            "port_isolated": device["port_isolated"] or None,
            "plug": {
                "type": device["type"],
                "bridge": device["bridge"],
                "mac_table_manager": manager,
            },
        }
    )


def port_to_xml(port: StoredPort) -> str:
    return format_networkport(port_document(port))
