"""IP addresses on the bridges virtnet owns (libvirt's ``<ip>`` elements), with pyroute2.

Every global address on a bridge virtnet created belongs to its network: the wanted ones are
added, the others removed. IPv6 link-local addresses are the kernel's and are left alone.
Functions here run in the host's namespace (see NamespaceRunner).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .errors import KernelError

IFA_F_NODAD = 0x02
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _index(ipr: IPRoute, device: str) -> int:
    found = ipr.link_lookup(ifname=device)
    if not found:
        raise KernelError(f"device {device} does not exist", errno.ENODEV)
    return int(found[0])


def _current(ipr: IPRoute, index: int) -> set[Interface]:
    out: set[Interface] = set()
    for msg in ipr.get_addr(index=index):
        iface = ipaddress.ip_interface(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
        if iface.version == 6 and iface.ip.is_link_local:
            continue
        out.add(iface)
    return out


def addresses_of(device: str) -> set[Interface]:
    """The global addresses on ``device`` (IPv6 link-local ones left out)."""
    with IPRoute() as ipr:
        return _current(ipr, _index(ipr, device))


def ensure_addresses(device: str, wanted: Sequence[str]) -> tuple[list[str], list[str]]:
    """Make ``device`` carry exactly ``wanted`` (``address/prefix``); returns (added, removed).

    IPv6 addresses skip duplicate address detection: the bridge is the subnet's router and
    dnsmasq must be able to bind to it at once (libvirt instead waits for DAD to finish).
    """
    want = {ipaddress.ip_interface(w) for w in wanted}
    if any(w.version == 6 for w in want):
        _ipv6_router_sysctls(device)
    added: list[str] = []
    removed: list[str] = []
    with IPRoute() as ipr:
        index = _index(ipr, device)
        have = _current(ipr, index)
        try:
            for iface in sorted(have - want, key=str):
                ipr.addr(
                    "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
                )
                removed.append(str(iface))
            for iface in sorted(want - have, key=lambda i: (i.version, str(i))):
                family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
                extra: dict[str, Any] = {}
                if iface.version == 4:
                    extra["broadcast"] = str(iface.network.broadcast_address)
                else:
                    extra["flags"] = IFA_F_NODAD
                try:
                    ipr.addr(
                        "add",
                        index=index,
                        address=str(iface.ip),
                        prefixlen=iface.network.prefixlen,
                        family=family,
                        **extra,
                    )
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise
                added.append(str(iface))
        except NetlinkError as exc:
            raise KernelError(f"setting addresses on {device}: {exc}", exc.code) from exc
    return added, removed


def _ipv6_router_sysctls(device: str) -> None:
    """libvirt's networkSetIPv6Sysctls for a bridge with IPv6 addresses: IPv6 on, and the
    bridge (the guests' router) neither takes router advertisements nor autoconfigures."""
    for knob, value in (("disable_ipv6", "0"), ("accept_ra", "0"), ("autoconf", "0")):
        path = f"/proc/sys/net/ipv6/conf/{device}/{knob}"
        try:
            with open(path, "r+") as f:
                if f.read().strip() != value:
                    f.seek(0)
                    f.write(value)
        except FileNotFoundError:
            raise KernelError(
                f"{device}: this host has no IPv6 ({path} is missing)", errno.EAFNOSUPPORT
            ) from None
