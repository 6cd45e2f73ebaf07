"""Why VLAN tags are refused: the hosts' capability probe says their kernels cannot."""

from __future__ import annotations

from app.models import Host


def vlan_refusal(hosts: list[Host], what: str) -> str:
    """Why VLAN tags cannot be realised, naming the hosts whose probe rules them out."""
    lacking = [h.name for h in hosts if not h.vlan_filtering]
    why = (
        f"host(s) {', '.join(repr(n) for n in lacking)} have neither 802.1Q nor bridge VLAN "
        "filtering in their kernel (capability probe: vlan_filtering=false)"
        if lacking
        else "virtnet does not tag VLANs on bridge ports yet"
    )
    return f"{what} cannot be realised: {why}"
