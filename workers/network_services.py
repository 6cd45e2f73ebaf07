"""What a network with addresses needs on a host besides its bridge: the addresses, its
forwarding rules, IP forwarding and its dnsmasq. Called by HostAgent under its lock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.messages import NetworkSpec
from workers.kernel.dnsmasq import DnsmasqSpec, Lease
from workers.kernel.interface import HostNetwork


def realise(net: HostNetwork, network: NetworkSpec) -> None:
    """libvirt's order: the bridge is up with its addresses, then the rules, then dnsmasq."""
    if not network.owns_bridge:
        return
    net.ensure_addresses(network.bridge, network.ips)
    firewall = network.firewall
    if firewall:
        net.ensure_firewall(firewall)
    else:
        net.remove_firewall([t for t in net.firewall_tables() if t.endswith(_hex(network))])
    if network.ip_forwarding:
        net.enable_ip_forwarding(set(network.ip_forwarding))
    if net.dnsmasq is None:
        return
    config = network.dnsmasq
    if config:
        net.dnsmasq.ensure(DnsmasqSpec(key=network.uuid, **config))
    else:
        net.dnsmasq.stop(network.uuid)


def remove(net: HostNetwork, network: NetworkSpec) -> None:
    """Before the bridge goes: dnsmasq stopped and its files removed, the rules deleted."""
    if not network.owns_bridge:
        return
    if net.dnsmasq is not None:
        net.dnsmasq.stop(network.uuid)
    net.remove_firewall([t for t in net.firewall_tables() if t.endswith(_hex(network))])


def reconcile(net: HostNetwork, networks: list[NetworkSpec]) -> None:
    """Drop the dnsmasq processes and rule tables of networks no longer active here."""
    wanted = {n.uuid for n in networks if n.owns_bridge}
    if net.dnsmasq is not None:
        for key in net.dnsmasq.keys() - wanted:
            net.dnsmasq.stop(key)
    hexes = {u.replace("-", "") for u in wanted}
    net.remove_firewall([t for t in net.firewall_tables() if t.split("_", 1)[1] not in hexes])


def _hex(network: NetworkSpec) -> str:
    return network.uuid.replace("-", "")


def lease_view(lease: Lease) -> dict[str, Any]:
    """A lease as reported to the control plane (libvirt's virNetworkDHCPLease, in JSON)."""
    expiry = (
        datetime.fromtimestamp(lease.expiry, UTC).isoformat().replace("+00:00", "Z")
        if lease.expiry
        else None
    )
    return {
        "type": "ipv6" if ":" in lease.ip else "ipv4",
        "mac": lease.mac,
        "ip": lease.ip,
        "hostname": lease.hostname,
        "client_id": lease.client_id,
        "expiry": expiry,
    }
