"""VXLAN overlays: one VXLAN device on a network's bridge, its forwarding table written, not learnt.

The device (pyroute2) learns nothing, and neither does its bridge port. Its forwarding table
has three kinds of entries, all written here from the desired state:

- ``00:00:00:00:00:00 dst PEER self``: one per host that has a port on the network; the
  device replicates broadcast, multicast and unknown unicast to exactly these;
- ``MAC dst PEER self``: a guest on another host, so unicast goes only to its host;
- ``MAC master static`` on the VXLAN port: the bridge sends that MAC towards the device
  instead of flooding it (in libvirt mode unknown unicast is not flooded at all).

The per-entry messages go through the project's pipelined netlink codec (they are the per-port
hot path); a full read of the device's table happens only when the caller knows nothing.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import links, nl, nlsock
from .errors import KernelError
from .specs import CREATING_GROUP, owner_alias

ZERO_MAC = "00:00:00:00:00:00"
NDA_DST = 1
NLM_F_APPEND = 0x800
_SELF_STATE = nl.NUD_PERMANENT | nl.NUD_NOARP
_MASTER_STATE = nl.NUD_NOARP | nl.NUD_REACHABLE  # "static": forwarded, not delivered locally
_STATIC = nl.NUD_NOARP | nl.NUD_PERMANENT
#: bytes the encapsulation adds: outer Ethernet 14 + IP (20 or 40) + UDP 8 + VXLAN 8
OVERHEAD = {4: 50, 6: 70}


def device_name(vni: int) -> str:
    return f"vxn{vni}"


@dataclass(frozen=True)
class OverlaySpec:
    owner: str
    """The network's uuid: the device's alias says virtnet created it for that network."""
    bridge: str
    vni: int
    port: int
    local: str
    """This host's underlay address."""
    flood: bool = True
    """Unicast flooding on the VXLAN bridge port; off in libvirt mode."""
    mtu: int | None = None
    peers: tuple[str, ...] = ()
    remote: tuple[tuple[str, str], ...] = ()
    """(guest MAC, underlay address of its host) for every guest on another host."""

    @property
    def device(self) -> str:
        return device_name(self.vni)


@dataclass
class OverlayResult:
    device: str
    created: bool
    remote_entries: int
    requests: int
    """Kernel requests this call made (netlink messages), for the benchmark."""


@dataclass
class Applied:
    """What this process last wrote to a device's table (so a change costs only its delta)."""

    index: int
    selfs: set[tuple[str, str]] = field(default_factory=set)
    masters: set[str] = field(default_factory=set)


def _validate(spec: OverlaySpec) -> None:
    what = f"overlay of bridge {spec.bridge}"
    if not 1 <= spec.vni <= 0xFFFFFF:
        raise KernelError(f"{what}: VNI {spec.vni} is outside 1..16777215", errno.EINVAL)
    if not 1 <= spec.port <= 65535:
        raise KernelError(f"{what}: UDP port {spec.port} is outside 1..65535", errno.EINVAL)
    for address in (spec.local, *spec.peers, *(dst for _, dst in spec.remote)):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise KernelError(f"{what}: {address!r} is not an IP address", errno.EINVAL) from None
    for mac, _ in spec.remote:
        links.check_mac(mac, what)


def _vxlan_attrs(spec: OverlaySpec) -> dict[str, Any]:
    local = ipaddress.ip_address(spec.local)
    attrs: dict[str, Any] = {
        "vxlan_id": spec.vni,
        "vxlan_port": spec.port,
        "vxlan_learning": 0,
    }
    attrs["vxlan_local" if local.version == 4 else "vxlan_local6"] = str(local)
    return attrs


def _differs(link: nl.Link, spec: OverlaySpec, ipr: IPRoute) -> bool:
    msg = ipr.link("get", index=link.index)[0]
    data = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    if data is None:
        return True
    local = data.get("IFLA_VXLAN_LOCAL") or data.get("IFLA_VXLAN_LOCAL6")
    return (
        data.get("IFLA_VXLAN_ID") != spec.vni
        or data.get("IFLA_VXLAN_PORT") != spec.port
        or bool(data.get("IFLA_VXLAN_LEARNING"))
        or local is None
        or ipaddress.ip_address(local) != ipaddress.ip_address(spec.local)
    )


def ensure_device(
    sock: nlsock.NetlinkSocket, ipr: IPRoute, spec: OverlaySpec
) -> tuple[int, bool, int]:
    """Create or correct the VXLAN device on its bridge; (index, created, requests)."""
    _validate(spec)
    what = f"ensuring VXLAN device {spec.device}"
    bridge = links.get_link(sock, spec.bridge)
    if bridge is None:
        raise KernelError(f"{what}: bridge {spec.bridge} does not exist", errno.ENODEV)
    requests = 2
    link = links.get_link(sock, spec.device)
    if link is not None:
        links.require_owned(link, spec.owner, "vxlan", what)
        requests += 1
        if links.half_made(link) or _differs(link, spec, ipr):
            # VNI, port and local address are fixed at creation: a changed one means anew
            _call(ipr.link, what, "del", index=link.index)
            requests += 1
            link = None
    created = link is None
    if link is None:
        _call(
            ipr.link,
            what,
            "add",
            ifname=spec.device,
            kind="vxlan",
            group=CREATING_GROUP,
            **_vxlan_attrs(spec),
        )
        link = links.get_link(sock, spec.device)
        if link is None:
            raise KernelError(f"{what}: the device vanished right after creation", errno.ENODEV)
        requests += 2
    settings: dict[str, Any] = {"index": link.index, "master": bridge.index, "state": "up"}
    settings.update(ifalias=owner_alias(spec.owner), group=0)
    mtu = spec.mtu or bridge.mtu
    if mtu:
        settings["mtu"] = mtu
    _call(ipr.link, what, "set", **settings)
    _call(ipr.brport, what, "set", index=link.index, learning=0, unicast_flood=int(spec.flood))
    return link.index, created, requests + 2


def _call(fn: Any, what: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except NetlinkError as exc:
        reason = exc.args[1] if len(exc.args) > 1 else exc
        raise KernelError(f"{what}: {reason}", exc.code) from None


def read_table(ipr: IPRoute, index: int) -> Applied:
    """The device's entries as the kernel has them (a dump of one device; not a hot path)."""
    applied = Applied(index)
    for entry in ipr.fdb("dump", ifindex=index):
        if entry.get("ifindex") != index:
            continue
        mac = (entry.get_attr("NDA_LLADDR") or "").lower()
        dst = entry.get_attr("NDA_DST")
        if entry["flags"] & nl.NTF_SELF and dst:
            applied.selfs.add((mac, str(ipaddress.ip_address(dst))))
        # static entries only: the device's own address shows as permanent
        elif entry.get_attr("NDA_MASTER") and entry["state"] & _STATIC == nl.NUD_NOARP:
            applied.masters.add(mac)
    return applied


def _dst(address: str) -> bytes:
    return nl.nla(NDA_DST, ipaddress.ip_address(address).packed)


def _self_request(index: int, mac: str, dst: str, present: bool) -> nlsock.Request:
    body = nl.ndmsg(index, _SELF_STATE if present else 0, nl.NTF_SELF)
    body += nl.nla_mac(nl.NDA_LLADDR, mac) + _dst(dst)
    if not present:
        return nlsock.Request(nl.RTM_DELNEIGH, body)
    # the all-zero MAC holds one entry per peer (append); a guest MAC has exactly one
    flags = nl.NLM_F_CREATE | (NLM_F_APPEND if mac == ZERO_MAC else nl.NLM_F_REPLACE)
    return nlsock.Request(nl.RTM_NEWNEIGH, body, flags)


def _master_request(index: int, mac: str, present: bool) -> nlsock.Request:
    body = nl.ndmsg(index, _MASTER_STATE if present else 0, nl.NTF_MASTER)
    body += nl.nla_mac(nl.NDA_LLADDR, mac)
    if present:
        return nlsock.Request(nl.RTM_NEWNEIGH, body, nl.NLM_F_CREATE | nl.NLM_F_REPLACE)
    return nlsock.Request(nl.RTM_DELNEIGH, body)


def wanted_entries(spec: OverlaySpec) -> tuple[set[tuple[str, str]], set[str]]:
    remote = {(mac.lower(), str(ipaddress.ip_address(dst))) for mac, dst in spec.remote}
    peers = {(ZERO_MAC, str(ipaddress.ip_address(p))) for p in spec.peers}
    return remote | peers, {mac for mac, _ in remote}


def sync_table(
    sock: nlsock.NetlinkSocket, applied: Applied, spec: OverlaySpec
) -> tuple[Applied, int]:
    """Bring the device's table from ``applied`` to ``spec``; returns the new state and the
    number of kernel requests. Deletions go first, so a moved MAC never has two entries."""
    selfs, masters = wanted_entries(spec)
    index = applied.index
    requests = [_self_request(index, m, d, False) for m, d in sorted(applied.selfs - selfs)]
    requests += [_master_request(index, m, False) for m in sorted(applied.masters - masters)]
    requests += [_self_request(index, m, d, True) for m, d in sorted(selfs - applied.selfs)]
    requests += [_master_request(index, m, True) for m in sorted(masters - applied.masters)]
    errors = []
    for request, reply in zip(requests, sock.transact(requests), strict=True):
        # an entry already gone, or (master) already taken over by a local port: both fine
        if reply.error and not (request.type == nl.RTM_DELNEIGH and reply.error == errno.ENOENT):
            errors.append(reply)
    if errors:
        first = errors[0]
        reason = first.message or os.strerror(first.error)
        raise KernelError(
            f"writing {len(errors)} forwarding entries of VXLAN device "
            f"{device_name(spec.vni)} failed: {reason}",
            first.error,
        )
    return Applied(index, selfs, masters), len(requests)


def remove_device(sock: nlsock.NetlinkSocket, name: str, owner: str) -> bool:
    """Delete an overlay device virtnet created for ``owner``; its entries go with it."""
    link = links.get_link(sock, name)
    if link is None:
        return False
    links.require_owned(link, owner, "vxlan", f"removing VXLAN device {name}")
    return not links.delete_links(sock, [link.index])[0]
