"""NetworkDefinition -> libvirt <network> XML, as virNetworkDefFormatBuf prints it.

Element order, attribute order, quoting and indentation follow libvirt 9.0 so that the
output matches `virsh net-dumpxml` byte for byte. Unlike libvirt, every value is
escaped, and newlines/tabs in attributes are written as character references, so the
output always parses back to the same definition.
"""

from __future__ import annotations

import json
from typing import Any

from lxml import etree

from app.conf.network.model import (
    LEASE_UNIT_SECONDS,
    Dhcp,
    DhcpHost,
    DhcpRange,
    IpConfig,
    NetworkDefinition,
    PortGroup,
)
from app.conf.network.parse import DNSMASQ_NS
from app.conf.network.rules import BRIDGE_CREATING
from app.conf.parts import print_bandwidth, print_virtualport, print_vlan
from app.conf.xml.metadata import (
    OVERLAY_TAG,
    VIRTNET_NS,
    VIRTNET_PREFIX,
    VIRTNET_TAG,
    format_metadata,
)
from app.conf.xml.writer import Attrs, Out, as_yes_no


def _metadata(out: Out, d: NetworkDefinition) -> None:
    elements = list(d.metadata_xml or [])
    if d.autostart or d.metadata is not None:
        own = etree.Element(VIRTNET_TAG, nsmap={VIRTNET_PREFIX: VIRTNET_NS})
        if d.autostart:
            own.set("autostart", "yes")
        if d.metadata is not None:
            own.text = json.dumps(d.metadata, ensure_ascii=False)
        elements.insert(0, etree.tostring(own, encoding="unicode"))
    if d.overlay is not None:
        overlay = etree.Element(OVERLAY_TAG, nsmap={VIRTNET_PREFIX: VIRTNET_NS})
        overlay.set("type", d.overlay.type)
        overlay.set("vni", str(d.overlay.vni))
        overlay.set("port", str(d.overlay.port))
        if d.overlay.gateway_host is not None:
            overlay.set("gatewayHost", d.overlay.gateway_host)
        own_count = 1 if d.autostart or d.metadata is not None else 0
        elements.insert(own_count, etree.tostring(overlay, encoding="unicode"))
    if elements:
        out.raw(format_metadata(elements, out.level))


def _forward(out: Out, d: NetworkDefinition) -> None:
    f = d.forward
    if f.mode == "none":
        return
    managed = as_yes_no(bool(f.managed)) if f.mode == "hostdev" else None
    attrs = [("dev", None if f.pfs else f.dev), ("mode", f.mode), ("managed", managed)]
    nat = f.nat.model_dump() if f.mode == "nat" and f.nat is not None else None
    if not (f.interfaces or f.pfs or f.addresses or f.driver or nat):
        out.empty("forward", attrs)
        return
    out.open("forward", attrs)
    if f.driver is not None:
        out.empty("driver", [("name", f.driver)])
    if nat is not None:
        _nat(out, nat)
    for pf in f.pfs:
        out.empty("pf", [("dev", pf.dev)])
    for iface in f.interfaces:
        out.empty("interface", [("dev", iface.dev)])
    for a in f.addresses:
        pci = [("domain", a.domain), ("bus", a.bus), ("slot", a.slot), ("function", a.function)]
        out.empty("address", [("type", "pci"), *pci])
    out.close("forward")


def _nat(out: Out, nat: dict[str, Any]) -> None:
    attrs = [("ipv6", as_yes_no(nat["ipv6"]))]
    ranges = [(tag, nat[f"{tag}_start"], nat[f"{tag}_end"]) for tag in ("address", "port")]
    ranges = [r for r in ranges if r[1] is not None or r[2] is not None]
    if not ranges:
        out.empty("nat", attrs)
        return
    out.open("nat", attrs)
    for tag, start, end in ranges:
        out.empty(tag, [("start", start), ("end", end)])
    out.close("nat")


def _bridge(out: Out, d: NetworkDefinition) -> None:
    b, owns = d.bridge, d.forward.mode in BRIDGE_CREATING
    manager = b.mac_table_manager  # an explicit 'kernel' is printed back, as libvirt 9.0 does
    if not (owns or b.name or manager):
        return
    attrs: list[tuple[str, Any]] = [("name", b.name), ("zone", b.zone)]
    if owns:
        attrs += [("stp", "on" if b.stp else "off"), ("delay", b.delay)]
    out.empty("bridge", [*attrs, ("macTableManager", manager)])


def _dns(out: Out, d: NetworkDefinition) -> None:
    dns = d.dns
    if dns is None:
        return
    plain = as_yes_no(dns.forward_plain_names)
    attrs = [("enable", as_yes_no(dns.enable)), ("forwardPlainNames", plain)]
    if not (dns.forwarders or dns.txts or dns.srvs or dns.hosts):
        out.empty("dns", attrs)
        return
    out.open("dns", attrs)
    for fwd in dns.forwarders:
        out.empty("forwarder", [("domain", fwd.domain), ("addr", fwd.addr)])
    for txt in dns.txts:
        out.empty("txt", [("name", txt.name), ("value", txt.value)])
    for srv in dns.srvs:
        fields = ("service", "protocol", "domain", "target", "port", "priority", "weight")
        out.empty("srv", [(name, getattr(srv, name)) for name in fields])
    for host in dns.hosts:
        out.open("host", [("ip", host.ip)])
        for name in host.hostnames:
            out.text("hostname", name)
        out.close("host")
    out.close("dns")


def _lease_holder(out: Out, tag: str, attrs: Attrs, item: DhcpRange | DhcpHost) -> None:
    if item.lease is None:
        out.empty(tag, attrs)
        return
    out.open(tag, attrs)
    if item.lease == 0:
        out.empty("lease", [("expiry", 0)])
    else:
        unit = item.lease_unit or "seconds"
        out.empty("lease", [("expiry", item.lease // LEASE_UNIT_SECONDS[unit]), ("unit", unit)])
    out.close(tag)


def _dhcp(out: Out, dhcp: Dhcp) -> None:
    out.open("dhcp")
    for r in dhcp.ranges:
        _lease_holder(out, "range", [("start", r.start), ("end", r.end)], r)
    for h in dhcp.hosts:
        attrs = [("mac", h.mac), ("id", h.id), ("name", h.name), ("ip", h.ip)]
        _lease_holder(out, "host", attrs, h)
    if dhcp.bootp is not None:
        out.empty("bootp", [("file", dhcp.bootp.file), ("server", dhcp.bootp.server)])
    out.close("dhcp")


def _ip(out: Out, ip: IpConfig) -> None:
    out.open(
        "ip",
        [
            ("family", ip.family),
            ("address", ip.address),
            ("netmask", ip.netmask),
            ("prefix", ip.prefix),
            ("localPtr", as_yes_no(ip.local_ptr)),
        ],
    )
    if ip.tftp_root is not None:
        out.empty("tftp", [("root", ip.tftp_root)])
    if ip.dhcp is not None:
        _dhcp(out, ip.dhcp)
    out.close("ip")


def _portgroup(out: Out, group: PortGroup) -> None:
    trust = as_yes_no(group.trust_guest_rx_filters)
    out.open(
        "portgroup",
        [
            ("name", group.name),
            ("default", "yes" if group.default else None),
            ("trustGuestRxFilters", trust),
        ],
    )
    print_vlan(out, group.vlan)
    print_virtualport(out, group.virtualport)
    print_bandwidth(out, group.bandwidth)
    if group.port_isolated is not None:
        out.empty("port", [("isolated", as_yes_no(group.port_isolated))])
    out.close("portgroup")


def format_network(d: NetworkDefinition) -> str:
    out = Out()
    out.open(
        "network",
        [
            ("xmlns:dnsmasq", DNSMASQ_NS if d.dnsmasq_options else None),
            ("ipv6", "yes" if d.ipv6 else None),
            ("trustGuestRxFilters", as_yes_no(d.trust_guest_rx_filters)),
        ],
    )
    out.text("name", d.name)
    out.text("uuid", None if d.uuid is None else str(d.uuid))
    out.text("title", d.title)
    out.text("description", d.description)
    _metadata(out, d)
    _forward(out, d)
    _bridge(out, d)
    if d.mtu is not None:
        out.empty("mtu", [("size", d.mtu)])
    if d.mac is not None:
        out.empty("mac", [("address", d.mac)])
    if d.domain is not None:
        local, register = as_yes_no(d.domain.local_only), as_yes_no(d.domain.register_names)
        out.empty("domain", [("name", d.domain.name), ("localOnly", local), ("register", register)])
    _dns(out, d)
    print_vlan(out, d.vlan)
    print_bandwidth(out, d.bandwidth)
    if d.port_isolated is not None:
        out.empty("port", [("isolated", as_yes_no(d.port_isolated))])
    for ip in d.ips:
        _ip(out, ip)
    for route in d.routes:
        out.empty(
            "route",
            [
                ("family", route.family),
                ("address", route.address),
                ("netmask", route.netmask),
                ("prefix", route.prefix),
                ("gateway", route.gateway),
                ("metric", route.metric),
            ],
        )
    print_virtualport(out, d.virtualport)
    for group in d.portgroups:
        _portgroup(out, group)
    if d.dnsmasq_options:
        out.open("dnsmasq:options")
        for option in d.dnsmasq_options:
            out.empty("dnsmasq:option", [("value", option)])
        out.close("dnsmasq:options")
    out.close("network")
    return "".join(out.lines)
