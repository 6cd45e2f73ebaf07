"""The forwarding rules of a network, with the meaning of libvirt's firewall (pure).

libvirt 9.0 (networkAddFirewallRules, iptables) and libvirt 10 (nftables) both give a
network with addresses three kinds of rules: traffic between guests of the bridge is
accepted; traffic leaving or entering the bridge is rejected unless the forward mode
allows it; NAT masquerades what leaves the subnet. Here they are plain rule dicts that
workers/kernel/nftables turns into one nftables table per network:

    {"nfproto": "ipv4"|"ipv6", "iif": dev, "oif": dev, "saddr": net, "daddr": net,
     "not_daddr": net,
     "l4proto": "tcp"|"udp", "ct": ["established", "related"],
     "verdict": "accept"|"reject"|"return"|"masquerade"|"snat", "to": addr range,
     "ports": "low-high"}
"""

from __future__ import annotations

from typing import Any

from app.conf.network.model import NetworkDefinition

Rule = dict[str, Any]
#: NAT'd connections keep their source port in this range, as libvirt does
NAT_PORTS = "1024-65535"


def table_name(uuid: str) -> str:
    """Each network has its own table: replacing or deleting it never touches another's."""
    return "virtnet_" + uuid.replace("-", "")


def wants_firewall(d: NetworkDefinition) -> bool:
    return bool(d.ips) and d.forward.mode in ("none", "nat", "route")


def forward_rules(d: NetworkDefinition, bridge: str) -> list[Rule]:
    """The filter/forward chain: cross, then inbound (FWI), then outbound (FWO), like libvirt."""
    if not wants_firewall(d):
        return []
    mode = d.forward.mode
    dev = d.forward.dev
    nat_v6 = bool(d.forward.nat and d.forward.nat.ipv6)
    # like libvirt, a family gets rules only if the network has an address of that family
    families = sorted({f"ipv{ip.interface().version}" for ip in d.ips})
    rules: list[Rule] = [
        {"nfproto": f, "iif": bridge, "oif": bridge, "verdict": "accept"} for f in families
    ]
    inbound: list[Rule] = []
    outbound: list[Rule] = []
    for ip in d.ips:
        net = str(ip.interface().network)
        if mode == "none":
            continue
        natted = mode == "nat" and (ip.interface().version == 4 or nat_v6)
        rule_in: Rule = {"oif": bridge, "daddr": net, "verdict": "accept"}
        if natted:
            rule_in["ct"] = ["established", "related"]
        rule_out: Rule = {"iif": bridge, "saddr": net, "verdict": "accept"}
        if dev:
            rule_in["iif"] = dev
            rule_out["oif"] = dev
        inbound.append(rule_in)
        outbound.append(rule_out)
    rules += inbound + [{"nfproto": f, "oif": bridge, "verdict": "reject"} for f in families]
    rules += outbound + [{"nfproto": f, "iif": bridge, "verdict": "reject"} for f in families]
    return rules


def postrouting_rules(d: NetworkDefinition) -> list[Rule]:
    """The nat/postrouting chain of a 'nat' network (networkAddMasqueradingFirewallRules)."""
    if d.forward.mode != "nat" or not d.ips:
        return []
    nat = d.forward.nat
    dev = d.forward.dev
    rules: list[Rule] = []
    for ip in d.ips:
        iface = ip.interface()
        if iface.version == 6 and not (nat and nat.ipv6):
            continue
        net = str(iface.network)
        base: Rule = {"saddr": net}
        if dev:
            base["oif"] = dev
        if iface.version == 4:
            rules.append({**base, "daddr": "224.0.0.0/24", "verdict": "return"})
            rules.append({**base, "daddr": "255.255.255.255/32", "verdict": "return"})
        else:
            rules.append({**base, "daddr": "ff02::/16", "verdict": "return"})
        to, ports = _nat_target(d, iface.version)
        for proto in ("tcp", "udp"):
            rule = {**base, "l4proto": proto, "not_daddr": net, **to}
            rule["ports"] = ports or NAT_PORTS
            rules.append(rule)
        rules.append({**base, "not_daddr": net, **to})  # ports only go with tcp/udp
    return rules


def _nat_target(d: NetworkDefinition, version: int) -> tuple[Rule, str | None]:
    nat = d.forward.nat
    ports = None
    if nat is not None and (nat.port_start or nat.port_end):
        ports = f"{nat.port_start or nat.port_end}-{nat.port_end or nat.port_start}"
    if nat is not None and nat.address_start and version == 4:
        end = nat.address_end or nat.address_start
        to = nat.address_start if end == nat.address_start else f"{nat.address_start}-{end}"
        return {"verdict": "snat", "to": to}, ports
    return {"verdict": "masquerade"}, ports


def needs_ip_forwarding(d: NetworkDefinition) -> set[int]:
    """IP versions whose forwarding the host must turn on (libvirt's networkEnableIPForwarding)."""
    if d.forward.mode not in ("nat", "route", "open") or not d.ips:
        return set()
    return {ip.interface().version for ip in d.ips}


def firewall_spec(d: NetworkDefinition, uuid: str, bridge: str) -> dict[str, Any] | None:
    if not wants_firewall(d):
        return None
    return {
        "table": table_name(uuid),
        "forward": forward_rules(d, bridge),
        "postrouting": postrouting_rules(d),
    }
