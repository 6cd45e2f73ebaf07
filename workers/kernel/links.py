"""Link look-ups, ownership checks and deletion shared by bridges and ports."""

from __future__ import annotations

import errno
import random
import re
from collections.abc import Sequence

from app.conf.ifname import ifname_problem

from . import nl, nlsock
from .errors import DeviceConflict, KernelError, from_errno
from .specs import ALIAS_PREFIX, CREATING_GROUP, owner_alias

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_SKIP_STATS = nl.nla_u32(nl.IFLA_EXT_MASK, nl.RTEXT_FILTER_SKIP_STATS)
TUN_TYPE_TAP = 2


def check_ifname(name: str, what: str) -> None:
    problem = ifname_problem(name)  # the API's rule too: what it accepts, a host can create
    if problem:
        message = f"{what}: {name!r} is not a valid interface name: {problem}"
        raise KernelError(message, errno.EINVAL)


def check_mac(mac: str, what: str) -> None:
    if not _MAC.match(mac):
        raise KernelError(f"{what}: {mac!r} is not a MAC address like 52:54:00:aa:bb:01")


def host_mac(guest_mac: str) -> str:
    """libvirt's host-side tap MAC: the guest's with the first byte fe, so the bridge never
    takes a guest's address as its own."""
    return "fe" + guest_mac.lower()[2:]


def get_link_request(name: str) -> nlsock.Request:
    return nlsock.Request(
        nl.RTM_GETLINK, nl.ifinfomsg() + nl.nla_str(nl.IFLA_IFNAME, name) + _SKIP_STATS
    )


def link_from_reply(reply: nlsock.Reply, what: str) -> nl.Link | None:
    if reply.error == errno.ENODEV:
        return None
    if reply.error:
        raise from_errno(reply.error, what, reply.message)
    return nl.parse_link(reply.payloads[0])


def get_link(sock: nlsock.NetlinkSocket, name: str) -> nl.Link | None:
    return link_from_reply(sock.transact([get_link_request(name)])[0], f"looking up {name}")


def get_links(
    sock: nlsock.NetlinkSocket, names: Sequence[str]
) -> list[nl.Link | None | KernelError]:
    out: list[nl.Link | None | KernelError] = []
    for name, reply in zip(names, sock.transact([get_link_request(n) for n in names]), strict=True):
        try:
            out.append(link_from_reply(reply, f"looking up {name}"))
        except KernelError as exc:
            out.append(exc)
    return out


#: from this many names on, one dump of every link beats a look-up each (a reconcile:
#: ~9000 look-ups by name took 1.6 s, the kernel answering each within our sendto; a dump of
#: 10,000 links 0.6 s)
DUMP_FROM = 512


def get_many(
    sock: nlsock.NetlinkSocket, names: Sequence[str]
) -> list[nl.Link | None | KernelError]:
    """``get_links``, by one dump when there are many names."""
    if len(names) < DUMP_FROM:
        return get_links(sock, names)
    try:
        by_name = {link.name: link for link in dump_links(sock)}
    except KernelError:
        return get_links(sock, names)
    return [by_name.get(name) for name in names]


def get_link_by_index(sock: nlsock.NetlinkSocket, index: int) -> nl.Link | None:
    reply = sock.request(nl.RTM_GETLINK, nl.ifinfomsg(index) + _SKIP_STATS)
    return link_from_reply(reply, f"looking up interface #{index}")


def dump_links(sock: nlsock.NetlinkSocket) -> list[nl.Link]:
    return [nl.parse_link(body) for body in sock.dump(nl.RTM_GETLINK, nl.ifinfomsg() + _SKIP_STATS)]


def device_kind(link: nl.Link) -> str:
    """'bridge', 'tap', 'tun' or the kernel's kind string ('device' for real NICs)."""
    if link.kind == "tun":
        return "tap" if nl.attr_u8(link.info, nl.IFLA_TUN_TYPE) == TUN_TYPE_TAP else "tun"
    return link.kind or "device"


def owner_of(link: nl.Link) -> str | None:
    if link.alias and link.alias.startswith(ALIAS_PREFIX):
        return link.alias[len(ALIAS_PREFIX) :]
    if half_made(link):
        return ""
    return None


def half_made(link: nl.Link) -> bool:
    """Created by virtnet, which died before it could set the alias (see CREATING_GROUP)."""
    return not link.alias and link.group == CREATING_GROUP


def require_owned(link: nl.Link, owner: str, kind: str, what: str) -> None:
    """Raise DeviceConflict unless ``link`` is a ``kind`` virtnet created for ``owner``."""
    actual = device_kind(link)
    found = owner_of(link)
    if half_made(link) and actual == kind:
        return  # ours, unlabelled: the caller labels or removes it
    if link.alias != owner_alias(owner):
        whose = (
            f"virtnet created it for {found!r}, not {owner!r}"
            if found is not None
            else "virtnet did not create it (no 'virtnet:' alias)"
        )
        raise DeviceConflict(
            f"{what}: a {actual} named {link.name} already exists and {whose}; "
            "virtnet never adopts, changes or deletes such a device: pick another name "
            "or remove it by hand"
        )
    if actual != kind:
        raise DeviceConflict(
            f"{what}: {link.name} is a {actual}, not a {kind}, although its alias says "
            "virtnet created it; remove it by hand"
        )


def delete_links(sock: nlsock.NetlinkSocket, indexes: Sequence[int]) -> list[int]:
    """Delete devices by index; returns 0 or an errno (ENODEV: already gone) for each.

    Each unregister waits for an RCU grace period (~16 ms), but the kernel unregisters a
    whole link group under one: more than one device is moved into a fresh random group and
    the group is deleted in one request. A 32-bit random group makes catching a foreign
    device in it practically impossible.
    """
    if not indexes:
        return []
    if len(indexes) > 1:
        group = random.randrange(0x10000, 0x7FFFFFFF)
        replies = sock.transact(
            [
                nlsock.Request(nl.RTM_NEWLINK, nl.ifinfomsg(i) + nl.nla_u32(nl.IFLA_GROUP, group))
                for i in indexes
            ]
        )
        grouped = [i for i, r in zip(indexes, replies, strict=True) if not r.error]
        reply = sock.request(nl.RTM_DELLINK, nl.ifinfomsg() + nl.nla_u32(nl.IFLA_GROUP, group))
        if not reply.error:
            done = set(grouped)
            return [0 if i in done else r.error for i, r in zip(indexes, replies, strict=True)]
    replies = sock.transact([nlsock.Request(nl.RTM_DELLINK, nl.ifinfomsg(i)) for i in indexes])
    return [r.error for r in replies]


def raise_for(
    reply: nlsock.Reply, what: str, *, ok: tuple[int, ...] = (), bridge: str | None = None
) -> None:
    if reply.error and reply.error not in ok:
        raise from_errno(reply.error, what, reply.message, bridge=bridge)
