"""Why VLAN tags are refused: the hosts' capability probe says their kernels cannot."""

from __future__ import annotations

from app.models import Host


def _lacks(host: Host) -> str | None:
    """What this host's kernel misses for VLAN tags, as its capability probe reported it."""
    if not host.vlan_8021q and not host.vlan_filtering:
        return (
            f"host {host.name!r} has neither 802.1Q nor bridge VLAN filtering in its kernel "
            "(capability probe: vlan_8021q=false, vlan_filtering=false)"
        )
    if not host.vlan_filtering:
        return (
            f"host {host.name!r} has 802.1Q but no bridge VLAN filtering in its kernel "
            "(capability probe: vlan_filtering=false)"
        )
    if not host.vlan_8021q:
        return (
            f"host {host.name!r} has bridge VLAN filtering but no 802.1Q in its kernel "
            "(capability probe: vlan_8021q=false)"
        )
    return None


def vlan_refusal(hosts: list[Host], what: str) -> str:
    """Why VLAN tags cannot be realised, naming each host whose probe rules them out."""
    lacking = [reason for reason in map(_lacks, hosts) if reason]
    why = "; ".join(lacking) if lacking else "virtnet does not tag VLANs on bridge ports yet"
    return f"{what} cannot be realised: {why}"
