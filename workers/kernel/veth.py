"""Containers' ports: veth pairs, as libvirt's LXC driver makes them.

The host end (``vnetN``, MAC fe:…) is enslaved to the bridge and gets exactly the flags and
FDB entry of a tap (ports._configure does both); the guest end is created directly in the
container's namespace under its final name (eth0, eth1, …), with the guest's MAC and MTU.
Both ends carry virtnet's alias; the host end is created in CREATING_GROUP so that a worker
killed before the alias is set still finds it its own. Deleting the host end deletes the
pair; a namespace virtnet created goes with its last interface.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import guestns, links, nl, nlsock, ports
from .errors import BridgeMissing, DeviceConflict, KernelError, from_errno
from .specs import CREATING_GROUP, PortRef, PortSpec, owner_alias


def _validate(spec: PortSpec) -> None:
    what = f"plugging veth {spec.tap}"
    links.check_ifname(spec.tap, what)
    links.check_ifname(spec.bridge, what)
    links.check_ifname(spec.guest_ifname or "", what)
    links.check_mac(spec.guest_mac, what)
    guestns.check_name(spec.netns or "", what)
    if spec.mtu is not None and not 68 <= spec.mtu <= 65535:
        raise KernelError(f"{what}: MTU {spec.mtu} is outside 68..65535", errno.EINVAL)


def _guest_link(ipr: IPRoute, name: str) -> Any | None:
    try:
        return ipr.link("get", ifname=name)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise


def _guest_end(spec: PortSpec) -> Any | None:
    """The guest end as virtnet left it, or None; DeviceConflict for a foreign device."""
    assert spec.netns and spec.guest_ifname
    with IPRoute(netns=spec.netns) as ipr:
        link = _guest_link(ipr, spec.guest_ifname)
    if link is None:
        return None
    if link.get_attr("IFLA_IFALIAS") != owner_alias(spec.owner):
        if link.get_attr("IFLA_GROUP") == CREATING_GROUP and not link.get_attr("IFLA_IFALIAS"):
            return None  # ours, half made: its host end is recreated, which removes it
        raise DeviceConflict(
            f"plugging veth {spec.tap}: namespace {spec.netns} already has an interface "
            f"{spec.guest_ifname} that virtnet did not create for this port; virtnet never "
            "changes or deletes such a device: rename or remove it"
        )
    return link


def _create(host: IPRoute, spec: PortSpec, mtu: int | None) -> None:
    fd = os.open(guestns.path(spec.netns or ""), os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer: dict[str, Any] = {
            "ifname": spec.guest_ifname,
            "net_ns_fd": fd,
            "address": spec.guest_mac,
            "group": CREATING_GROUP,
        }
        extra: dict[str, Any] = {}
        if mtu:
            peer["mtu"] = extra["mtu"] = mtu
        host.link(
            "add",
            ifname=spec.tap,
            kind="veth",
            address=links.host_mac(spec.guest_mac),
            group=CREATING_GROUP,
            peer=peer,
            **extra,
        )
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            raise DeviceConflict(
                f"plugging veth {spec.tap}: {spec.tap} on the host or {spec.guest_ifname} in "
                f"namespace {spec.netns} already exists; virtnet did not create it",
                exc.code,
            ) from None
        raise from_errno(exc.code, f"creating veth pair {spec.tap}") from None
    finally:
        os.close(fd)


def _label(sock: nlsock.NetlinkSocket, spec: PortSpec) -> nl.Link:
    link = links.get_link(sock, spec.tap)
    if link is None:
        raise KernelError(f"veth {spec.tap} vanished right after it was created", errno.EAGAIN)
    alias = nl.nla_str(nl.IFLA_IFALIAS, owner_alias(spec.owner))
    body = nl.ifinfomsg(link.index) + alias + nl.nla_u32(nl.IFLA_GROUP, 0)
    links.raise_for(sock.request(nl.RTM_NEWLINK, body), f"labelling veth {spec.tap}")
    return link


def _configure_guest(spec: PortSpec, mtu: int | None) -> None:
    assert spec.netns and spec.guest_ifname
    with IPRoute(netns=spec.netns) as ipr:
        link = _guest_link(ipr, spec.guest_ifname)
        if link is None:
            raise KernelError(f"veth end {spec.guest_ifname} vanished from {spec.netns}")
        change: dict[str, Any] = {"ifalias": owner_alias(spec.owner), "group": 0, "state": "up"}
        if link.get_attr("IFLA_ADDRESS") != spec.guest_mac:
            change["address"] = spec.guest_mac
        if mtu and link.get_attr("IFLA_MTU") != mtu:
            change["mtu"] = mtu
        try:
            ipr.link("set", index=link["index"], **change)
        except NetlinkError as exc:
            raise from_errno(exc.code, f"configuring {spec.guest_ifname} in {spec.netns}") from None


def plug(sock: nlsock.NetlinkSocket, host: IPRoute, spec: PortSpec, host_netns: str) -> None:
    _validate(spec)
    assert spec.netns
    bridge = links.get_link(sock, spec.bridge)
    if bridge is None or bridge.kind != "bridge":
        state = "does not exist" if bridge is None else "is not a bridge"
        raise BridgeMissing(
            f"plugging veth {spec.tap}: bridge {spec.bridge} {state} on this host", errno.ENODEV
        )
    mtu = spec.mtu or bridge.mtu
    guestns.ensure(spec.netns, host_netns)
    link = links.get_link(sock, spec.tap)
    if link is not None:
        links.require_owned(link, spec.owner, "veth", f"plugging veth {spec.tap}")
        if links.half_made(link) or _guest_end(spec) is None:
            links.delete_links(sock, [link.index])  # half made or its guest end is gone
            link = None
    if link is None:
        if _guest_end(spec) is not None:
            raise DeviceConflict(f"plugging veth {spec.tap}: its guest end exists alone")
        _create(host, spec, mtu)
        link = _label(sock, spec)
    _configure_guest(spec, mtu)
    port = ports._Port(0, spec, bridge, link, link.index)
    ports._configure(sock, [port])
    if port.error is not None:
        raise port.error


def unplug(sock: nlsock.NetlinkSocket, ref: PortSpec | PortRef, host_netns: str) -> bool:
    """Delete the pair; True if it existed. A namespace virtnet made goes with its last one."""
    links.check_ifname(ref.tap, "unplugging")
    removed = False
    link = links.get_link(sock, ref.tap)
    if link is not None:
        links.require_owned(link, ref.owner, "veth", f"unplugging {ref.tap}")
        if ref.guest_mac is not None and link.master:
            sock.transact([ports.fdb_request(link.index, ref.guest_mac, False)])
        code = links.delete_links(sock, [link.index])[0]
        if code and code != errno.ENODEV:
            raise from_errno(code, f"deleting veth {ref.tap}")
        removed = not code
    netns = getattr(ref, "netns", None)
    if netns:
        guestns.remove_if_unused(netns, host_netns)
    return removed
