"""One port at a time: its static FDB entry (a paused guest's goes out) and its state as the
kernel has it (read back for diagnostics and tests)."""

from __future__ import annotations

import errno
from typing import Any

from . import links, nl
from .errors import BridgeMissing, DeviceConflict, KernelError
from .nlsock import NetlinkSocket
from .nsexec import ifindex
from .ports import fdb_request


def set_fdb(sock: NetlinkSocket, bridge: str, tap: str, guest_mac: str, present: bool) -> None:
    what = f"{'adding' if present else 'removing'} FDB entry {guest_mac} on {tap}"
    links.check_ifname(tap, what)
    links.check_ifname(bridge, what)
    links.check_mac(guest_mac, what)
    link = links.get_link(sock, tap)
    if link is None:
        if present:
            raise KernelError(f"{what}: tap {tap} does not exist; plug the port", errno.ENODEV)
        return
    if links.owner_of(link) is None:
        raise DeviceConflict(f"{what}: {tap} was not created by virtnet; not touching it")
    bridge_index = ifindex(sock.fileno(), bridge)
    if not bridge_index:
        raise BridgeMissing(f"{what}: bridge {bridge} does not exist", errno.ENODEV)
    if link.master != bridge_index:
        if not present:
            return
        raise KernelError(f"{what}: {tap} is not a port of bridge {bridge}; plug it again")
    reply = sock.transact([fdb_request(link.index, guest_mac, present)])[0]
    links.raise_for(reply, what, ok=(errno.ENOENT,) if not present else ())


def port_state(sock: NetlinkSocket, tap: str) -> dict[str, Any] | None:
    links.check_ifname(tap, "reading port state")
    link = links.get_link(sock, tap)
    if link is None:
        return None
    master = links.get_link_by_index(sock, link.master) if link.master else None
    slave = link.slave_info if link.slave_kind == "bridge" else {}
    info = link.info if link.kind == "tun" else {}

    def flag(attrs: dict[int, bytes], kind: int) -> bool | None:
        value = nl.attr_u8(attrs, kind)
        return None if value is None else bool(value)

    static: list[str] = []
    if master is not None:
        # the kernel filters by port (ifi_index): this does not dump the whole table
        body = nl.ifinfomsg(link.index, family=nl.AF_BRIDGE)
        for raw in sock.dump(nl.RTM_GETNEIGH, body):
            entry = nl.parse_neigh(raw)
            if (
                entry.ifindex == link.index
                and entry.master is not None  # a bridge entry, not the tap's own list
                and entry.state & nl.NUD_NOARP
                and not entry.state & nl.NUD_PERMANENT
                and entry.mac
            ):
                static.append(entry.mac)
    return {
        "exists": True,
        "name": link.name,
        "index": link.index,
        "kind": links.device_kind(link),
        "owner": links.owner_of(link),
        "alias": link.alias,
        "master": master.name if master else None,
        "up": link.up,
        "mtu": link.mtu,
        "mac": link.mac,
        "learning": flag(slave, nl.IFLA_BRPORT_LEARNING),
        "unicast_flood": flag(slave, nl.IFLA_BRPORT_UNICAST_FLOOD),
        "mcast_flood": flag(slave, nl.IFLA_BRPORT_MCAST_FLOOD),
        "bcast_flood": flag(slave, nl.IFLA_BRPORT_BCAST_FLOOD),
        "isolated": flag(slave, nl.IFLA_BRPORT_ISOLATED),
        "pi": flag(info, nl.IFLA_TUN_PI),
        "vnet_hdr": flag(info, nl.IFLA_TUN_VNET_HDR),
        "multi_queue": flag(info, nl.IFLA_TUN_MULTI_QUEUE),
        "tun_owner": nl.attr_u32(info, nl.IFLA_TUN_OWNER),
        "tun_group": nl.attr_u32(info, nl.IFLA_TUN_GROUP),
        "static_fdb": sorted(static),
    }
