"""What libvirt's network parser (9.0) refuses, for definitions given as JSON or as XML.

app.conf.network.validate applies these to every definition. Where libvirt's parser would
accept a value but lose it when printing (a zero port, `managed` outside hostdev mode),
the value is refused here too, so that what is stored is exactly what is shown.
Deliberately not enforced, because virtnet's own API accepts it: an IPv6 <ip> or
<route> without family='ipv6', a bandwidth floor on the network itself, and a bridge
name in a macvtap/hostdev network (virtnet's define assigns one to every network).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from lxml import etree

from app.conf.common import NOT_XML_MESSAGE, not_xml
from app.conf.network.model import (
    LEASE_UNIT_SECONDS,
    IpConfig,
    NetworkDefinition,
)
from app.conf.parts import PCI_LIMITS, bandwidth_breaks, virtualport_breaks, vlan_breaks

Loc = tuple[str | int, ...]
Break = tuple[Loc, str]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Modes in which libvirt creates the bridge and so prints stp/delay.
BRIDGE_CREATING = frozenset({"none", "nat", "route", "open"})
SERVICE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/*")
PROTOCOL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+/")
DNS_RECORD_LENGTH_SRV = 512 - 30


def _ip(text: str | None) -> Address | None:
    try:
        return ipaddress.ip_address(text) if text is not None else None
    except ValueError:
        return None


def libvirt_network(ip: IpConfig) -> Subnet | None:
    """The subnet libvirt gives an <ip>: classful for IPv4 without a prefix, /64 for IPv6."""
    try:
        if ip.prefix is not None or ip.netmask is not None:
            return ip.interface().network
        address = ipaddress.ip_address(ip.address)
    except ValueError:
        return None
    if address.version == 6:
        return ipaddress.ip_interface(f"{address}/64").network
    first = int(address) >> 24
    prefix = 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else None
    return ipaddress.ip_interface(f"{address}/{prefix}").network if prefix else None


def _forward(d: NetworkDefinition) -> Iterator[Break]:
    f, loc = d.forward, ("forward",)
    if f.mode == "none" and (f.dev or f.interfaces or f.pfs or f.addresses or f.driver):
        yield loc, "forward mode 'none' takes no devices: libvirt does not even print <forward>"
    if f.managed is not None and f.mode != "hostdev":
        yield (*loc, "managed"), "managed only applies to forward mode 'hostdev'"
    if f.dev is not None and (f.pfs or f.addresses):
        yield (*loc, "dev"), "a forward dev cannot be combined with <pf> or <address> devices"
    elif f.interfaces and f.dev != f.interfaces[0].dev:
        yield (*loc, "dev"), f"forward dev {f.dev!r} must be the first interface"
    if sum(map(bool, (f.interfaces, f.pfs, f.addresses))) > 1:
        yield loc, "give forward interfaces, PCI addresses or one pf, not a mix"
    seen: set[object] = set()
    for j, iface in enumerate(f.interfaces):
        if iface.dev in seen:
            yield (*loc, "interfaces", j, "dev"), f"interface {iface.dev!r} is listed twice"
        seen.add(iface.dev)
    for j, address in enumerate(f.addresses):
        numbers = address.numbers()
        for (field, limit), number in zip(PCI_LIMITS, numbers, strict=True):
            if number is None or number > limit:
                yield (*loc, "addresses", j, field), f"must be a number from 0 to {limit:#x}"
        if numbers in seen:
            yield (*loc, "addresses", j), "this PCI device is listed twice"
        seen.add(numbers)
    if f.mode in {"nat", "route", "open"}:
        if not d.ips:
            yield (*loc, "mode"), f"{f.mode} forwarding needs an IP address on the network"
        if len(f.interfaces) > 1:
            yield (*loc, "interfaces"), f"forward mode {f.mode!r} takes one interface at most"
        if f.mode == "open" and f.dev is not None:
            yield (*loc, "dev"), "an open network cannot have a forward dev"
    if f.nat is not None:
        yield from _nat(f.nat.model_dump(), (*loc, "nat"))


def _nat(nat: dict[str, Any], loc: Loc) -> Iterator[Break]:
    start, end = nat["address_start"], nat["address_end"]
    if (start is None) != (end is None):
        yield loc, "a NAT address range needs both address_start and address_end"
    elif start is not None:
        first, last = _ip(start), _ip(end)
        if first is None or first.version != 4:
            yield (*loc, "address_start"), "must be an IPv4 address"
        elif last is None or last.version != 4:
            yield (*loc, "address_end"), "must be an IPv4 address"
        elif first > last:
            yield loc, f"NAT address range {first}-{last} ends before it starts"
    start, end = nat["port_start"], nat["port_end"]
    if (start is None) != (end is None):
        yield loc, "a NAT port range needs both port_start and port_end"
    elif start is not None and not 1 <= start <= end:
        yield loc, "the NAT port range must satisfy 1 <= port_start <= port_end"


def _bridge(d: NetworkDefinition) -> Iterator[Break]:
    mode, b = d.forward.mode, d.bridge
    if mode in BRIDGE_CREATING:
        return
    if not b.stp or b.delay:
        yield ("bridge", "stp"), f"stp and delay do not apply to forward mode {mode!r}"
    if b.zone is not None:
        yield ("bridge", "zone"), f"a firewalld zone does not apply to forward mode {mode!r}"
    if mode != "bridge" and b.mac_table_manager == "libvirt":
        yield ("bridge", "mac_table_manager"), f"macTableManager does not apply to {mode!r}"
    if d.mtu is not None:
        yield ("mtu",), f"mtu only applies to networks that own their bridge, not {mode!r}"


def _dhcp(i: int, ip: IpConfig, subnet: Subnet | None) -> Iterator[Break]:
    if ip.dhcp is None:
        return
    v6 = subnet is not None and subnet.version == 6
    loc = ("ips", i, "dhcp")
    leases = [((*loc, "ranges", j), r.lease, r.lease_unit) for j, r in enumerate(ip.dhcp.ranges)]
    for j, host in enumerate(ip.dhcp.hosts):
        hloc = (*loc, "hosts", j)
        leases.append((hloc, host.lease, host.lease_unit))
        if host.ip is None:
            yield (*hloc, "ip"), "a static DHCP host needs an ip"
        if host.mac is not None and v6:
            yield (*hloc, "mac"), "an IPv6 static host is matched by id or name, not mac"
        elif not (host.mac or host.id or host.name):
            pass  # reported by app.conf.network.validate
        elif v6 and not (host.id or host.name):
            yield hloc, "an IPv6 static host needs an id or a name"
        elif not v6 and not (host.mac or host.name):
            yield hloc, "an IPv4 static host needs a mac or a name"
        if host.id is not None and set(host.id) - set("0123456789abcdefABCDEF:"):
            yield (*hloc, "id"), "a DUID is hexadecimal digits and ':'"
        if host.name is not None and not (host.name[:1].isascii() and host.name[:1].isalnum()):
            yield (*hloc, "name"), "a host name must start with a letter or a digit"
    for lloc, lease, unit in leases:
        if lease is None and unit is not None:
            yield (*lloc, "lease_unit"), "lease_unit needs a lease"
        elif lease is not None and 0 < lease < 120:
            yield (*lloc, "lease"), "the shortest lease is 120 seconds (0 means infinite)"
        elif lease and unit and lease % LEASE_UNIT_SECONDS[unit]:
            yield (*lloc, "lease"), f"{lease} seconds is not a whole number of {unit}"
    if ip.dhcp.bootp is not None:
        bootp = (*loc, "bootp")
        if v6:
            yield bootp, "bootp only applies to IPv4"
        elif not (ip.dhcp.ranges or ip.dhcp.hosts):
            yield bootp, "bootp needs a DHCP range or host: libvirt drops it otherwise"
        server = ip.dhcp.bootp.server
        if server is not None and _ip(server) is None:
            yield (*bootp, "server"), "the boot server must be an IP address"


def _ips(d: NetworkDefinition) -> Iterator[Break]:
    for i, ip in enumerate(d.ips):
        subnet = libvirt_network(ip)
        if ip.prefix == 0:
            yield ("ips", i, "prefix"), "libvirt reads prefix 0 as 'no prefix'; give 1 or more"
        if ip.tftp_root is not None and subnet is not None and subnet.version == 6:
            yield ("ips", i, "tftp_root"), "tftp only applies to IPv4"
        yield from _dhcp(i, ip, subnet)


def _routes(d: NetworkDefinition) -> Iterator[Break]:
    subnets = [s for s in map(libvirt_network, d.ips) if s is not None]
    for i, route in enumerate(d.routes):
        loc: Loc = ("routes", i)
        address, gateway = _ip(route.address), _ip(route.gateway)
        if address is None or gateway is None:
            yield (*loc, "address" if address is None else "gateway"), "is not an IP address"
            continue
        family = f"ipv{address.version}"
        if route.family not in (None, family) or gateway.version != address.version:
            yield loc, "address, gateway and family must all be IPv4 or all IPv6"
            continue
        if route.netmask is not None and address.version == 6:
            yield (*loc, "netmask"), "an IPv6 route takes a prefix, not a netmask"
            continue
        if route.netmask is not None and route.prefix is not None:
            yield (*loc, "netmask"), "give a netmask or a prefix, not both"
            continue
        try:
            # like libvirt: without prefix or netmask only the default route is a network
            ipaddress.ip_network(f"{address}/{route.netmask or route.prefix or 0}")
        except ValueError as exc:
            yield (*loc, "netmask" if route.netmask else "address"), f"not a network: {exc}"
            continue
        if not any(gateway in s for s in subnets):
            yield (*loc, "gateway"), f"gateway {gateway} is not reachable from the network's IPs"


def _dns(d: NetworkDefinition) -> Iterator[Break]:
    if d.dns is None:
        return
    dns, loc = d.dns, ("dns",)
    if dns.enable is False and (dns.forwarders or dns.txts or dns.srvs or dns.hosts):
        yield loc, "DNS is disabled (enable=no) but has forwarders or records"
    for j, fwd in enumerate(dns.forwarders):
        if fwd.addr is None and fwd.domain is None:
            yield (*loc, "forwarders", j), "a forwarder needs an addr or a domain"
        elif fwd.addr is not None and _ip(fwd.addr) is None:
            yield (*loc, "forwarders", j, "addr"), "is not an IP address"
    for j, txt in enumerate(dns.txts):
        if " " in txt.name or "," in txt.name:
            yield (*loc, "txts", j, "name"), "a TXT record name cannot contain ' ' or ','"
    for j, srv in enumerate(dns.srvs):
        sloc = (*loc, "srvs", j)
        if len(srv.service) > DNS_RECORD_LENGTH_SRV or set(srv.service) - SERVICE_CHARS:
            yield (*sloc, "service"), "is at most 482 of A-Z a-z 0-9 _ - + / *"
        if set(srv.protocol) - PROTOCOL_CHARS:
            yield (*sloc, "protocol"), "is made of A-Z a-z 0-9 - + /"
        if srv.port == 0:
            yield (*sloc, "port"), "must be from 1 to 65535"
        for field in ("port", "priority", "weight"):
            if getattr(srv, field) is not None and srv.target is None:
                yield (*sloc, field), f"an SRV {field} needs a target"
    for j, host in enumerate(dns.hosts):
        if _ip(host.ip) is None:
            yield (*loc, "hosts", j, "ip"), "is not an IP address"
        for k, name in enumerate(host.hostnames):
            if not name:
                yield (*loc, "hosts", j, "hostnames", k), "a hostname cannot be empty"


def _xml_chars(value: Any, loc: Loc) -> Iterator[Break]:
    for where in not_xml(value, loc):
        yield where, NOT_XML_MESSAGE


def _text(d: NetworkDefinition) -> Iterator[Break]:
    if d.title is not None and "\n" in d.title:
        yield ("title",), "a title is one line"
    namespaces = [etree.QName(etree.fromstring(x)).namespace for x in d.metadata_xml or []]
    for j, namespace in enumerate(namespaces):
        if namespace in namespaces[:j]:
            yield ("metadata_xml", j), f"a second metadata element in namespace {namespace}"
    yield from _xml_chars(d.model_dump(mode="json", exclude={"metadata_xml"}), ())


def network_rule_breaks(d: NetworkDefinition) -> list[Break]:
    """(location, message) for every libvirt parse-time rule ``d`` breaks."""
    found = [*_forward(d), *_bridge(d), *_ips(d), *_routes(d), *_dns(d), *_text(d)]
    found += [*bandwidth_breaks(d.bandwidth, ("bandwidth",)), *vlan_breaks(d.vlan, ("vlan",))]
    found += virtualport_breaks(d.virtualport, ("virtualport",), typed=True)
    for i, group in enumerate(d.portgroups):
        loc = ("portgroups", i)
        found += bandwidth_breaks(group.bandwidth, (*loc, "bandwidth"))
        found += vlan_breaks(group.vlan, (*loc, "vlan"))
        found += virtualport_breaks(group.virtualport, (*loc, "virtualport"), typed=False)
    return found
