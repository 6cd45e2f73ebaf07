"""Only the fleet may inject frames: VXLAN packets for a network's VNI are accepted only from
the underlay addresses of the network's hosts.

The rules live in virtnet's own table ``inet virtnet_overlay`` (the ``virtnet`` table belongs
to addresses/NAT), one base chain per VNI on the input hook, so a network's rules are
replaced in one transaction and removed with its chain. nftables is driven through
libnftables (the library ``nft`` itself uses), not a subprocess; each call runs in the
host's network namespace (see NamespaceRunner).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

from . import nftables
from .errors import KernelError

TABLE = "virtnet_overlay"
FAMILY = "inet"
_CHAIN = re.compile(r"^vni_(\d+)$")


@dataclass(frozen=True)
class FirewallSpec:
    vni: int
    port: int
    allowed: tuple[str, ...]
    """Underlay addresses of the network's hosts; every other sender is dropped."""

    @property
    def chain(self) -> str:
        return f"vni_{self.vni}"


def run(commands: str, *, json_output: bool = False) -> str:
    """Run nft commands as one transaction; returns the output. Call in the namespace."""
    return nftables.execute(commands, json_output=json_output, what="overlay rules")


def _addresses(allowed: tuple[str, ...], version: int) -> list[str]:
    out = sorted({str(a) for a in map(ipaddress.ip_address, allowed) if a.version == version})
    return out


def ruleset(spec: FirewallSpec) -> str:
    """The commands that make the VNI's chain exactly ``spec`` (idempotent)."""
    match = f"udp dport {spec.port} @th,96,24 {spec.vni}"
    lines = [
        f"add table {FAMILY} {TABLE}",
        f"add chain {FAMILY} {TABLE} {spec.chain} "
        "{ type filter hook input priority 0; policy accept; }",
        f"flush chain {FAMILY} {TABLE} {spec.chain}",
    ]
    for version, keyword in ((4, "ip"), (6, "ip6")):
        addresses = _addresses(spec.allowed, version)
        if addresses:
            lines.append(
                f"add rule {FAMILY} {TABLE} {spec.chain} {match} "
                f"{keyword} saddr {{ {', '.join(addresses)} }} accept"
            )
    lines.append(f"add rule {FAMILY} {TABLE} {spec.chain} {match} counter drop")
    return "\n".join(lines) + "\n"


def ensure(spec: FirewallSpec) -> None:
    if not 1 <= spec.vni <= 0xFFFFFF or not 1 <= spec.port <= 65535:
        raise KernelError(f"overlay firewall: VNI {spec.vni} or port {spec.port} out of range")
    run(ruleset(spec))


def chains() -> list[int]:
    """The VNIs that have a chain in virtnet's overlay table."""
    try:
        out = run(f"list table {FAMILY} {TABLE}", json_output=True)
    except KernelError:
        return []  # no table yet
    vnis = []
    for item in json.loads(out or "{}").get("nftables", []):
        chain = item.get("chain")
        if chain and (m := _CHAIN.match(chain.get("name", ""))):
            vnis.append(int(m.group(1)))
    return sorted(vnis)


def remove(vni: int) -> bool:
    """Delete the VNI's chain (its rules go with it), and the table once it is empty."""
    present = chains()
    if vni not in present:
        return False
    commands = f"delete chain {FAMILY} {TABLE} vni_{vni}\n"
    if present == [vni]:
        commands += f"delete table {FAMILY} {TABLE}\n"
    run(commands)
    return True
