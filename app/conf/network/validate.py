"""Pure checks of a network definition: within the document and against other networks."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from app.conf.errors import Problem
from app.conf.network.model import BRIDGE_MODES, IpConfig, NetworkDefinition
from app.conf.network.rules import network_rule_breaks

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ip_problems(i: int, ip: IpConfig) -> list[Problem]:
    loc = ("ips", i)
    if _address(ip.address) is None:
        return [Problem((*loc, "address"), f"{ip.address!r} is not an IPv4 or IPv6 address")]
    if ip.prefix is not None and ip.netmask is not None:
        return [Problem(loc, "give either prefix or netmask, not both")]
    try:
        iface = ip.interface()
    except ValueError as exc:
        return [Problem((*loc, "netmask" if ip.netmask else "prefix"), str(exc))]
    problems: list[Problem] = []
    family = "ipv4" if iface.version == 4 else "ipv6"
    if ip.family is not None and ip.family != family:
        problems.append(Problem((*loc, "family"), f"family {ip.family} but address is {family}"))
    if ip.netmask is not None and iface.version == 6:
        problems.append(Problem((*loc, "netmask"), "IPv6 addresses take a prefix, not a netmask"))
    if ip.prefix is None and ip.netmask is None and iface.version == 6:
        problems.append(Problem((*loc, "prefix"), "an IPv6 address needs a prefix"))
    if iface.network.prefixlen < iface.max_prefixlen and iface.ip == iface.network.network_address:
        problems.append(
            Problem((*loc, "address"), f"{iface.ip} is the subnet's own address, not a host")
        )
    return problems


def ip_problems(definition: NetworkDefinition) -> list[Problem]:
    problems: list[Problem] = []
    for i, ip in enumerate(definition.ips):
        own = _ip_problems(i, ip)
        problems += own
        if own or ip.dhcp is None:
            continue
        iface = ip.interface()
        subnet = iface.network
        for j, rng in enumerate(ip.dhcp.ranges):
            rloc = ("ips", i, "dhcp", "ranges", j)
            start, end = _address(rng.start), _address(rng.end)
            if start is None or end is None:
                bad = "start" if start is None else "end"
                problems.append(Problem((*rloc, bad), "is not an IP address"))
                continue
            if start not in subnet or end not in subnet:
                problems.append(Problem(rloc, f"range {start}-{end} is not inside {subnet}"))
            elif int(start) > int(end):  # both in ``subnet``: one family
                problems.append(Problem(rloc, f"range start {start} is after its end {end}"))
            elif int(start) <= int(iface.ip) <= int(end):
                problems.append(
                    Problem(rloc, f"range {start}-{end} contains the network's address {iface.ip}")
                )
        for j, host in enumerate(ip.dhcp.hosts):
            hloc = ("ips", i, "dhcp", "hosts", j)
            if host.ip is not None:
                addr = _address(host.ip)
                if addr is None or addr not in subnet:
                    problems.append(Problem((*hloc, "ip"), f"{host.ip} is not inside {subnet}"))
            if host.mac is None and host.id is None and host.name is None:
                problems.append(Problem(hloc, "a DHCP host needs a mac, id or name"))
            if host.ip is not None and _address(host.ip) == iface.ip:
                problems.append(
                    Problem((*hloc, "ip"), f"{host.ip} is the network's own address on the bridge")
                )
        problems += _duplicate_hosts(i, ip)
    return problems + _dhcp_blocks(definition) + _ptr_problems(definition)


def _duplicate_hosts(i: int, ip: IpConfig) -> list[Problem]:
    """A MAC, client id, name or address given to two DHCP hosts: dnsmasq would pick one."""
    assert ip.dhcp is not None
    problems: list[Problem] = []
    for field in ("mac", "id", "name", "ip"):
        seen: dict[str, int] = {}
        for j, host in enumerate(ip.dhcp.hosts):
            value = getattr(host, field)
            if value is None:
                continue
            key = value.lower() if field == "mac" else value
            if key in seen:
                problems.append(
                    Problem(
                        ("ips", i, "dhcp", "hosts", j, field),
                        f"{field} {value} is already given to DHCP host {seen[key]}",
                    )
                )
            seen.setdefault(key, j)
    return problems


def _dhcp_blocks(definition: NetworkDefinition) -> list[Problem]:
    """libvirt: "For IPv4 (IPv6), multiple DHCP definitions cannot be specified"."""
    problems: list[Problem] = []
    first: dict[int, int] = {}
    for i, ip in enumerate(definition.ips):
        if ip.dhcp is None or not (ip.dhcp.ranges or ip.dhcp.hosts) or _ip_problems(i, ip):
            continue
        version = ip.interface().version
        if version in first:
            problems.append(
                Problem(
                    ("ips", i, "dhcp"),
                    f"only one IPv{version} address of a network can have DHCP; "
                    f"ips.{first[version]} already has it",
                )
            )
        first.setdefault(version, i)
    return problems


def _ptr_problems(definition: NetworkDefinition) -> list[Problem]:
    problems: list[Problem] = []
    for i, ip in enumerate(definition.ips):
        if not ip.local_ptr or _ip_problems(i, ip):
            continue
        net = ip.interface().network
        step = 8 if net.version == 4 else 4
        if net.prefixlen % step:
            problems.append(
                Problem(
                    ("ips", i, "local_ptr"),
                    f"no reverse (PTR) zone exists for a /{net.prefixlen} IPv{net.version} "
                    f"subnet: localPtr needs a prefix that is a multiple of {step}",
                )
            )
    return problems


def subnets(definition: NetworkDefinition) -> list[Subnet]:
    """The subnets a (valid) definition occupies."""
    return [ip.interface().network for ip in definition.ips]


def structure_problems(definition: NetworkDefinition) -> list[Problem]:
    problems: list[Problem] = []
    mode = definition.forward.mode
    if mode not in BRIDGE_MODES and definition.ips:
        problems.append(Problem(("ips",), f"forward mode {mode!r} networks cannot have addresses"))
    if mode == "bridge" and definition.ips:
        problems.append(Problem(("ips",), "a 'bridge' mode network cannot have addresses"))
    problems += overlay_problems(definition)
    defaults = [i for i, pg in enumerate(definition.portgroups) if pg.default]
    if len(defaults) > 1:
        problems.append(
            Problem(("portgroups", defaults[1], "default"), "only one portgroup can be the default")
        )
    seen: set[str] = set()
    for i, pg in enumerate(definition.portgroups):
        if pg.name in seen:
            problems.append(
                Problem(("portgroups", i, "name"), f"portgroup {pg.name!r} appears twice")
            )
        seen.add(pg.name)
    return problems


#: the largest VXLAN header overhead (IPv6 underlay); room the MTU must leave at most
MAX_OVERLAY_OVERHEAD = 70
OVERLAY_BRIDGE_MODES = frozenset({"none", "nat", "route", "open"})


def gateway_parts(definition: NetworkDefinition) -> list[str]:
    """What of a definition only one host of an overlay can carry (its gateway host)."""
    parts = ["addresses (ips)"] if definition.ips else []
    if definition.forward.mode in ("nat", "route"):
        parts.append(f"forward mode {definition.forward.mode!r}")
    return parts


def overlay_problems(definition: NetworkDefinition) -> list[Problem]:
    overlay = definition.overlay
    if overlay is None:
        return []
    problems: list[Problem] = []
    mode = definition.forward.mode
    if mode not in OVERLAY_BRIDGE_MODES:
        problems.append(
            Problem(
                ("overlay",),
                f"an overlay needs a bridge virtnet creates on each host (forward mode none, "
                f"nat, route or open), not forward mode {mode!r}",
            )
        )
    layer3 = gateway_parts(definition)
    if layer3 and overlay.gateway_host is None:
        problems.append(
            Problem(
                ("overlay", "gateway_host"),
                f"an overlay network with {' and '.join(layer3)} needs overlay.gateway_host: "
                "the one host that carries its addresses, DHCP and NAT (the others carry L2 "
                "only); without it no host would answer for the network's addresses",
            )
        )
    if definition.mtu is not None and definition.mtu > 65535 - MAX_OVERLAY_OVERHEAD:
        problems.append(
            Problem(
                ("mtu",),
                f"MTU {definition.mtu} leaves no room for VXLAN's encapsulation (up to "
                f"{MAX_OVERLAY_OVERHEAD} bytes); at most {65535 - MAX_OVERLAY_OVERHEAD}",
            )
        )
    return problems


def overlay_mtu_problems(
    definition: NetworkDefinition, underlays: Iterable[tuple[str, str, int | None]]
) -> list[Problem]:
    """The MTU asked for against each host's underlay (name, address, MTU): VXLAN adds 50
    bytes on an IPv4 underlay and 70 on an IPv6 one."""
    if definition.overlay is None or definition.mtu is None:
        return []
    problems = []
    for host, address, mtu in underlays:
        overhead = 70 if ":" in address else 50
        room = (mtu or 1500) - overhead
        if definition.mtu > room:
            problems.append(
                Problem(
                    ("mtu",),
                    f"MTU {definition.mtu} does not fit host {host}'s underlay (MTU "
                    f"{mtu or 1500}, {address}) with VXLAN's {overhead} bytes: at most {room}",
                )
            )
    return problems


def definition_problems(definition: NetworkDefinition) -> list[Problem]:
    """Everything wrong with one definition on its own; empty when it is valid."""
    return (
        structure_problems(definition)
        + ip_problems(definition)
        + [Problem(loc, msg) for loc, msg in network_rule_breaks(definition)]
    )


def overlap_problems(
    definition: NetworkDefinition, others: Iterable[tuple[str, list[Subnet]]]
) -> list[Problem]:
    """Subnets of ``definition`` that overlap a subnet of another network."""
    problems: list[Problem] = []
    for i, mine in enumerate(subnets(definition)):
        for other_name, theirs in others:
            for subnet in theirs:
                if mine.version == subnet.version and mine.overlaps(subnet):
                    problems.append(
                        Problem(("ips", i), f"{mine} overlaps {subnet} of network {other_name!r}")
                    )
    return problems


def vlans(definition: NetworkDefinition) -> list[str]:
    """Where a definition asks for VLAN tags (refused: see app.services.networks)."""
    where = ["vlan"] if definition.vlan is not None else []
    where += [f"portgroups.{pg.name}.vlan" for pg in definition.portgroups if pg.vlan]
    return where


def unrealised_features(definition: NetworkDefinition) -> list[str]:
    """Parts of a definition that virtnet stores but cannot yet make real on a host
    (VLANs apart: their refusal names the hosts, see ``vlans``)."""
    d = definition
    features: list[str] = []
    if d.forward.mode not in BRIDGE_MODES:
        features.append(f"forward mode '{d.forward.mode}' (macvtap/SR-IOV)")
    if d.forward.mode == "bridge" and d.bridge.name is None:
        # libvirt too defines this and fails only at start
        features.append("forward mode 'bridge' without an existing host bridge (bridge.name)")
    checks = [
        (bool(d.routes), "static routes (routes)"),
        (
            d.bandwidth is not None and d.forward.mode == "bridge",
            "bandwidth limits on an existing host bridge (bandwidth with forward mode 'bridge')",
        ),
        (d.virtualport is not None, "virtual port profiles (virtualport)"),
        (d.bridge.zone is not None, "firewalld zone (bridge.zone)"),
        (
            d.forward.mode not in ("nat", "route") and d.forward.dev is not None,
            f"a forward device (forward.dev) in forward mode '{d.forward.mode}'",
        ),
    ]
    features += [name for present, name in checks if present]
    return features
