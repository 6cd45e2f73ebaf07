"""Taps a hypervisor holds open: a tap has carrier exactly while a file is attached to it.

Such a tap is never deleted without force, and a domain started again while its old QEMU
still holds a tap gets that tap back (renamed to the name allocated now) instead of a new
one the running QEMU would not be attached to.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import links, nl, nlsock
from .specs import PortSpec, owner_alias

IFLA_CARRIER = 33
_SKIP_STATS = nl.nla_u32(nl.IFLA_EXT_MASK, nl.RTEXT_FILTER_SKIP_STATS)


def _carrier(body: bytes) -> bool:
    return bool(nl.attr_u8(nl.parse_attrs(body, nl._IFINFOMSG.size), IFLA_CARRIER))


def held(sock: nlsock.NetlinkSocket, names: Sequence[str]) -> set[str]:
    """The taps among ``names`` that a process has open (missing ones are not held)."""
    out: set[str] = set()
    requests = [links.get_link_request(n) for n in names]
    for name, reply in zip(names, sock.transact(requests), strict=True):
        if reply.error:
            continue
        body = reply.payloads[0]
        if links.device_kind(nl.parse_link(body)) == "tap" and _carrier(body):
            out.add(name)
    return out


def reuse_held(sock: nlsock.NetlinkSocket, specs: Sequence[PortSpec]) -> list[str]:
    """Give each new port the held tap its guest already uses, if there is one.

    A MAC is unique on a network, so a virtnet tap on the same bridge with this guest's
    host-side MAC, under another name, is this interface's tap from an earlier run whose
    port is gone. If a process still holds it, it is renamed to the allocated name and
    labelled for the new port; plugging then adopts it. Returns the old names reused.
    """
    wanted = [s for s in specs if s.kind == "tap"]
    if not wanted:
        return []
    taps: dict[tuple[int, str], tuple[nl.Link, bool]] = {}
    names: set[str] = set()
    for body in sock.dump(nl.RTM_GETLINK, nl.ifinfomsg() + _SKIP_STATS):
        link = nl.parse_link(body)
        names.add(link.name)
        if link.master and link.mac and links.device_kind(link) == "tap" and links.owner_of(link):
            taps[(link.master, link.mac)] = (link, _carrier(body))
    bridges = {b: links.get_link(sock, b) for b in {s.bridge for s in wanted}}
    reused: list[str] = []
    for spec in wanted:
        bridge = bridges[spec.bridge]
        if bridge is None or spec.tap in names:
            continue
        found = taps.get((bridge.index, links.host_mac(spec.guest_mac)))
        if found is None or not found[1] or found[0].name == spec.tap:
            continue
        old = found[0]
        down = nl.ifinfomsg(old.index, 0, nl.IFF_UP)  # the kernel renames only a down device
        rename = (
            nl.ifinfomsg(old.index)
            + nl.nla_str(nl.IFLA_IFNAME, spec.tap)
            + nl.nla_str(nl.IFLA_IFALIAS, owner_alias(spec.owner))
        )
        replies = sock.transact(
            [nlsock.Request(nl.RTM_NEWLINK, down), nlsock.Request(nl.RTM_NEWLINK, rename)]
        )
        if any(r.error for r in replies):
            up = nl.ifinfomsg(old.index, nl.IFF_UP, nl.IFF_UP)  # leave it as it was
            sock.transact([nlsock.Request(nl.RTM_NEWLINK, up)])
            continue
        names.add(spec.tap)
        reused.append(old.name)
    return reused
