"""Elements networks, portgroups, ports and domain interfaces share: <bandwidth>, <vlan>
and <virtualport>, each read from XML, printed back and checked against libvirt's rules here.

The models are in app.conf.network.model (a network defines them first).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from app.conf.network.model import Bandwidth, VirtualPort, Vlan
from app.conf.xml.reader import Doc, Loc, Node, any_base, read_attrs, uint, yes_no
from app.conf.xml.writer import Out

Break = tuple[Loc, str]

PCI_LIMITS = (("domain", 0xFFFF), ("bus", 0xFF), ("slot", 0x1F), ("function", 7))
VPORT_PARAMS: dict[str | None, frozenset[str]] = {
    "802.1Qbg": frozenset({"manager_id", "type_id", "type_id_version", "instance_id"}),
    "802.1Qbh": frozenset({"profile_id"}),
    "openvswitch": frozenset({"profile_id", "interface_id"}),
    "midonet": frozenset({"interface_id"}),
}
VPORT_LIMITS = {"manager_id": 0xFF, "type_id": 0xFFFFFF, "type_id_version": 0xFF}


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# -- XML in


def read_bandwidth(parent: Node, doc: Doc) -> None:
    node = parent.child("bandwidth", (*parent.loc, "bandwidth"))
    if node is None:
        return
    bandwidth: Doc = {}
    for direction in ("inbound", "outbound"):
        rate = node.child(direction, (*node.loc, direction))
        if rate is not None:
            names = ("average", "peak", "burst", "floor")
            bandwidth[direction] = read_attrs(rate, {}, {n: (n, uint) for n in names})
            rate.finish()
    node.finish()
    doc["bandwidth"] = bandwidth


def read_vlan(parent: Node, doc: Doc) -> None:
    node = parent.child("vlan", (*parent.loc, "vlan"))
    if node is None:
        return
    vlan = read_attrs(node, {}, {"trunk": ("trunk", yes_no)})
    vlan["tags"] = []
    for tag in node.children("tag", (*node.loc, "tags")):
        spec = {"id": ("id", uint), "nativeMode": ("native_mode", str)}
        vlan["tags"].append(read_attrs(tag, {}, spec, required=("id",)))
        tag.finish()
    node.finish()
    doc["vlan"] = vlan


def read_virtualport(parent: Node, doc: Doc) -> None:
    node = parent.child("virtualport", (*parent.loc, "virtualport"))
    if node is None:
        return
    vport = read_attrs(node, {}, {"type": ("type", str)})
    if vport.get("type") == "none":  # libvirt's name for no type
        del vport["type"]
    params = node.child("parameters", (*node.loc, "parameters"))
    if params is not None:
        spec = {
            "managerid": ("manager_id", any_base),
            "typeid": ("type_id", any_base),
            "typeidversion": ("type_id_version", any_base),
            "instanceid": ("instance_id", str),
            "profileid": ("profile_id", str),
            "interfaceid": ("interface_id", str),
        }
        vport["parameters"] = read_attrs(params, {}, spec)
        params.finish()
    node.finish()
    doc["virtualport"] = vport


# -- XML out


def print_vlan(out: Out, vlan: Vlan | None) -> None:
    if vlan is None:
        return
    out.open("vlan", [("trunk", "yes" if vlan.trunk else None)])
    for tag in vlan.tags:
        out.empty("tag", [("id", tag.id), ("nativeMode", tag.native_mode)])
    out.close("vlan")


def print_bandwidth(out: Out, bw: Bandwidth | None) -> None:
    if bw is None:
        return
    out.open("bandwidth")
    for direction in ("inbound", "outbound"):
        rate = getattr(bw, direction)
        if rate is not None:
            fields = ("average", "peak", "floor", "burst")
            out.empty(direction, [(name, getattr(rate, name)) for name in fields])
    out.close("bandwidth")


def print_virtualport(out: Out, vport: VirtualPort | None) -> None:
    if vport is None:
        return
    attrs = [("type", vport.type)]
    if vport.parameters is None:
        out.empty("virtualport", attrs)
        return
    p = vport.parameters
    out.open("virtualport", attrs)
    out.empty(
        "parameters",
        [
            ("managerid", p.manager_id),
            ("typeid", p.type_id),
            ("typeidversion", p.type_id_version),
            ("instanceid", p.instance_id),
            ("interfaceid", p.interface_id),
            ("profileid", p.profile_id),
        ],
    )
    out.close("virtualport")


# -- libvirt's rules


def bandwidth_breaks(bw: Bandwidth | None, loc: Loc) -> Iterator[Break]:
    for direction in ("inbound", "outbound"):
        rate = getattr(bw, direction, None)
        if rate is None:
            continue
        rloc = (*loc, direction)
        if rate.average is None and rate.floor is None:
            yield rloc, "Missing mandatory average or floor attributes"
        elif rate.average is None and (rate.peak is not None or rate.burst is not None):
            yield rloc, "'peak' and 'burst' require 'average' attribute"
        if direction == "outbound" and rate.floor is not None:
            yield (*rloc, "floor"), "'floor' attribute allowed only in <inbound> element"
        for field in ("average", "peak", "burst", "floor"):
            if getattr(rate, field) == 0:
                unit = "kibibytes" if field == "burst" else "kilobytes per second"
                yield (
                    (*rloc, field),
                    (
                        f"bandwidth {field} must be at least 1 ({unit}); libvirt would read 0 as "
                        "no limit at all"
                    ),
                )


def vlan_breaks(vlan: Vlan | None, loc: Loc) -> Iterator[Break]:
    ids = [tag.id for tag in vlan.tags] if vlan else []
    for j, tag_id in enumerate(ids):
        if tag_id in ids[:j]:
            yield (*loc, "tags", j, "id"), f"vlan tag {tag_id} is listed twice"


def virtualport_breaks(vport: VirtualPort | None, loc: Loc, *, typed: bool) -> Iterator[Break]:
    if vport is None:
        return
    if typed and vport.type is None:
        yield (*loc, "type"), "the network's virtualport needs a type"
    given = vport.parameters.model_dump(exclude_none=True) if vport.parameters else {}
    allowed = VPORT_PARAMS.get(vport.type, frozenset().union(*VPORT_PARAMS.values()))
    for field, value in given.items():
        ploc = (*loc, "parameters", field)
        if field not in allowed:
            yield ploc, f"does not apply to virtualport type {vport.type!r}"
        elif field in VPORT_LIMITS and not 0 <= value <= VPORT_LIMITS[field]:
            yield ploc, f"must be from 0 to {VPORT_LIMITS[field]}"
        elif field in ("instance_id", "interface_id") and not _is_uuid(value):
            yield ploc, "must be a UUID"
        elif field == "profile_id" and not 1 <= len(value) <= 39:
            yield ploc, "a profile id is 1 to 39 characters"


def rule_breaks(vlan: Vlan | None, bw: Bandwidth | None, vport: VirtualPort | None) -> list[Break]:
    """What libvirt refuses in a port's or an interface's <vlan>, <bandwidth>, <virtualport>."""
    breaks = [*vlan_breaks(vlan, ("vlan",)), *bandwidth_breaks(bw, ("bandwidth",))]
    return breaks + list(virtualport_breaks(vport, ("virtualport",), typed=False))
