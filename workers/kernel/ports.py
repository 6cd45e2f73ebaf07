"""Guest ports: persistent taps on a bridge, their port flags and static FDB entries.

Everything is batched: one look-up per bridge, all tap ioctls in one hand-off to the
namespace thread, then every netlink message of every port pipelined on one socket.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import links, nl, nlsock
from .errors import BridgeFull, BridgeMissing, DeviceConflict, KernelError, from_errno
from .nsexec import (
    NamespaceRunner,
    TapRequest,
    create_taps,
    ifindex,
    open_new_taps,
    persist_taps,
)
from .specs import MAC_TABLE_MANAGERS, PortRef, PortSpec, owner_alias

_FDB_STATE = nl.NUD_NOARP | nl.NUD_REACHABLE  # what `bridge fdb` shows as "static"
_SKIP_STATS = nl.nla_u32(nl.IFLA_EXT_MASK, nl.RTEXT_FILTER_SKIP_STATS)


@dataclass
class _Port:
    pos: int
    spec: PortSpec
    bridge: nl.Link | None = None
    link: nl.Link | None = None
    """The tap as found before this call; None when this call created it."""
    index: int = 0
    error: KernelError | None = None


def _validate(spec: PortSpec) -> None:
    what = f"plugging tap {spec.tap}"
    links.check_ifname(spec.tap, what)
    links.check_ifname(spec.bridge, what)
    links.check_mac(spec.guest_mac, what)
    if spec.mac_table_manager not in MAC_TABLE_MANAGERS:
        raise KernelError(
            f"{what}: macTableManager {spec.mac_table_manager!r} is not one of "
            f"{', '.join(MAC_TABLE_MANAGERS)}",
            errno.EINVAL,
        )
    if spec.mtu is not None and not 68 <= spec.mtu <= 65535:
        raise KernelError(f"{what}: MTU {spec.mtu} is outside 68..65535", errno.EINVAL)


def _tap_request(spec: PortSpec, exclusive: bool) -> TapRequest:
    return TapRequest(
        spec.tap, spec.vnet_hdr, spec.multi_queue, spec.owner_uid, spec.owner_gid, exclusive
    )


def fdb_request(tap_index: int, mac: str, present: bool) -> nlsock.Request:
    body = nl.ndmsg(tap_index, _FDB_STATE if present else 0, nl.NTF_MASTER)
    body += nl.nla_mac(nl.NDA_LLADDR, mac)
    if present:
        # replace, not NLM_F_EXCL: a redelivered task must find the entry and move on
        return nlsock.Request(nl.RTM_NEWNEIGH, body, nl.NLM_F_CREATE | nl.NLM_F_REPLACE)
    return nlsock.Request(nl.RTM_DELNEIGH, body)


def _tun_differs(link: nl.Link, spec: PortSpec) -> bool:
    info = link.info
    uid = nl.attr_u32(info, nl.IFLA_TUN_OWNER)
    gid = nl.attr_u32(info, nl.IFLA_TUN_GROUP)
    return (
        bool(nl.attr_u8(info, nl.IFLA_TUN_PI))
        or bool(nl.attr_u8(info, nl.IFLA_TUN_VNET_HDR)) != spec.vnet_hdr
        or bool(nl.attr_u8(info, nl.IFLA_TUN_MULTI_QUEUE)) != spec.multi_queue
        or (spec.owner_uid is not None and uid != spec.owner_uid)
        or (spec.owner_gid is not None and gid != spec.owner_gid)
    )


def _port_flags(link: nl.Link | None, bridge: nl.Link) -> tuple[int, int, int]:
    if link is None or link.master != bridge.index:
        return 1, 1, 0  # a fresh bridge port learns and floods, and is not isolated
    info = link.slave_info
    return (
        nl.attr_u8(info, nl.IFLA_BRPORT_LEARNING) or 0,
        nl.attr_u8(info, nl.IFLA_BRPORT_UNICAST_FLOOD) or 0,
        nl.attr_u8(info, nl.IFLA_BRPORT_ISOLATED) or 0,
    )


def brport_request(index: int, **flags: int) -> nlsock.Request:
    """Set bridge port flags (learning, unicast_flood, isolated) of any port by its index."""
    kinds = {
        "learning": nl.IFLA_BRPORT_LEARNING,
        "unicast_flood": nl.IFLA_BRPORT_UNICAST_FLOOD,
        "isolated": nl.IFLA_BRPORT_ISOLATED,
    }
    slave = nl.nla_nest(
        nl.IFLA_LINKINFO,
        nl.nla_str(nl.IFLA_INFO_SLAVE_KIND, "bridge"),
        nl.nla_nest(nl.IFLA_INFO_SLAVE_DATA, *(nl.nla_u8(kinds[k], v) for k, v in flags.items())),
    )
    return nlsock.Request(nl.RTM_NEWLINK, nl.ifinfomsg(index) + slave)


def _config_requests(p: _Port) -> list[tuple[str, nlsock.Request]]:
    spec, link, bridge = p.spec, p.link, p.bridge
    assert bridge is not None
    mac = links.host_mac(spec.guest_mac)
    mtu = spec.mtu or bridge.mtu
    attrs = b""
    if link is None or link.mac != mac:
        attrs += nl.nla_mac(nl.IFLA_ADDRESS, mac)
    if mtu and (link is None or link.mtu != mtu):
        attrs += nl.nla_u32(nl.IFLA_MTU, mtu)
    if link is None or link.master != bridge.index:
        attrs += nl.nla_u32(nl.IFLA_MASTER, bridge.index)
    out: list[tuple[str, nlsock.Request]] = []
    if link is None:
        # A new tap has a link-state event queued (its carrier went off when the creating
        # file closed). The kernel's linkwatch would handle it up to a second later, after
        # the tap is up, paying an expedited RCU grace period per tap, 100 taps a second,
        # holding RTNL. A look-up runs the event now, while the tap is down and it is cheap.
        out.append(("sync", nlsock.Request(nl.RTM_GETLINK, nl.ifinfomsg(p.index) + _SKIP_STATS)))
    if link is None or attrs or not link.up:  # a reconcile finds most taps as they should be
        up = nl.ifinfomsg(p.index, nl.IFF_UP, nl.IFF_UP)
        out.append(("link", nlsock.Request(nl.RTM_NEWLINK, up + attrs)))
    libvirt = spec.mac_table_manager == "libvirt"
    want = 0 if libvirt else 1
    isolated = int(spec.isolated)
    if _port_flags(link, bridge) != (want, want, isolated):
        request = brport_request(p.index, learning=want, unicast_flood=want, isolated=isolated)
        out.append(("brport", request))
    if libvirt and spec.fdb:
        out.append(("fdb", fdb_request(p.index, spec.guest_mac, True)))
    elif link is not None:
        out.append(("fdb-del", fdb_request(p.index, spec.guest_mac, False)))
    return out


def _config_error(p: _Port, step: str, reply: nlsock.Reply) -> KernelError:
    tap, bridge = p.spec.tap, p.spec.bridge
    if step == "link":
        if reply.error == errno.EXFULL:
            return BridgeFull(
                f"plugging tap {tap}: bridge {bridge} already has 1023 ports, the most a Linux "
                "bridge takes; put this guest on another network",
                reply.error,
            )
        if reply.error == errno.ENODEV:
            return BridgeMissing(f"plugging tap {tap}: bridge {bridge} disappeared", reply.error)
        return from_errno(reply.error, f"configuring tap {tap} on bridge {bridge}", reply.message)
    what = {
        "sync": f"looking up new tap {tap}",
        "brport": f"setting learning/unicast_flood/isolated on bridge port {tap}",
        "fdb": f"adding static FDB entry {p.spec.guest_mac} on {tap} (bridge {bridge})",
        "fdb-del": f"removing FDB entry {p.spec.guest_mac} from {tap}",
    }[step]
    return from_errno(reply.error, what, reply.message)


def plug_many(
    sock: nlsock.NetlinkSocket,
    runner: NamespaceRunner,
    specs: Sequence[PortSpec],
    known: Mapping[str, nl.Link] | None = None,
) -> list[KernelError | None]:
    """Plug ``specs``.

    ``known``: links by name from a dump the caller just made (a reconcile). A tap it shows
    as this port's, with the wanted tun flags, is taken as it is shown, without opening it
    or looking it up; should it have vanished since (a request for it finds no device),
    it is plugged again in full. Other taps that exist are read from ``known`` too."""
    results: list[KernelError | None] = [None] * len(specs)
    ports: list[_Port] = []
    seen: set[str] = set()
    for pos, spec in enumerate(specs):
        try:
            _validate(spec)
            if spec.tap in seen:
                raise KernelError(f"plugging tap {spec.tap}: the tap appears twice in one batch")
        except KernelError as exc:
            results[pos] = exc
            continue
        seen.add(spec.tap)
        ports.append(_Port(pos, spec))

    names = sorted({p.spec.bridge for p in ports})
    found = dict(zip(names, links.get_links(sock, names), strict=True))
    for p in ports:
        bridge = found[p.spec.bridge]
        if isinstance(bridge, KernelError):
            p.error = bridge
        elif bridge is None or bridge.kind != "bridge":
            state = "does not exist" if bridge is None else "is not a bridge"
            p.error = BridgeMissing(
                f"plugging tap {p.spec.tap}: bridge {p.spec.bridge} {state} on this host",
                errno.ENODEV,
            )
        else:
            p.bridge = bridge
    live = [p for p in ports if p.error is None]
    shown = _as_shown(live, known or {})
    unknown = [p for p in live if p.link is None]

    # IFF_TUN_EXCL: EBUSY tells that the name is taken, without a look-up for every new tap
    opened = runner.run(open_new_taps, [_tap_request(p.spec, True) for p in unknown])
    new: list[_Port] = []
    fds: list[int] = []
    existing: list[_Port] = []
    for p, fd in zip(unknown, opened, strict=True):
        if fd >= 0:
            new.append(p)
            fds.append(fd)
        elif -fd == errno.EBUSY:
            existing.append(p)
        else:
            p.error = from_errno(-fd, f"creating tap {p.spec.tap}")
    try:
        _mark_new(sock, new)
    finally:
        # only now, with its alias set, does a new tap outlive this call; one that could not
        # be marked goes away with its file. Closing the files before the taps come up keeps
        # their carrier change cheap (see _config_requests).
        persist_taps(fds, [p.error is None for p in new])
    _adopt_existing(sock, runner, existing, known or {})
    _configure(sock, live)
    undo = [p.index for p in new if p.error is not None and p.index]
    links.delete_links(sock, undo)  # persistent but not set up: no half-plugged tap stays
    gone = [p for p in shown if p.error is not None and p.error.errno == errno.ENODEV]
    if gone:  # deleted since the dump: plug them as any other (it creates them)
        again = plug_many(sock, runner, [p.spec for p in gone])
        for p, error in zip(gone, again, strict=True):
            p.error = error
    for p in ports:
        results[p.pos] = p.error
    return results


def _as_shown(ports: list[_Port], known: Mapping[str, nl.Link]) -> list[_Port]:
    """The ports whose tap ``known`` shows as theirs, with the tun flags they want: each
    gets that link (it is configured as shown)."""
    out = []
    for p in ports:
        link = known.get(p.spec.tap)
        if (
            link is not None
            and link.alias == owner_alias(p.spec.owner)
            and links.device_kind(link) == "tap"
            and not _tun_differs(link, p.spec)
        ):
            p.link, p.index = link, link.index
            out.append(p)
    return out


def _mark_new(sock: nlsock.NetlinkSocket, new: list[_Port]) -> None:
    """Give each new tap its index and virtnet's alias, in one batch."""
    for p in new:
        p.index = ifindex(sock.fileno(), p.spec.tap)
        if not p.index:
            p.error = KernelError(f"tap {p.spec.tap} vanished right after it was created")
    marked = [p for p in new if p.error is None]
    requests = [
        nlsock.Request(
            nl.RTM_NEWLINK,
            nl.ifinfomsg(p.index) + nl.nla_str(nl.IFLA_IFALIAS, owner_alias(p.spec.owner)),
        )
        for p in marked
    ]
    for p, reply in zip(marked, sock.transact(requests), strict=True):
        if reply.error:
            p.error = _config_error(p, "link", reply)


def _configure(sock: nlsock.NetlinkSocket, live: list[_Port]) -> None:
    """MAC, MTU, master, up, port flags and FDB for every port still without error."""
    live = [p for p in live if p.error is None]
    steps: list[tuple[_Port, str]] = []
    requests: list[nlsock.Request] = []
    for p in live:
        for step, req in _config_requests(p):
            steps.append((p, step))
            requests.append(req)
    for (p, step), reply in zip(steps, sock.transact(requests), strict=True):
        if p.error is None and reply.error:
            if step == "fdb-del" and reply.error == errno.ENOENT:
                continue
            p.error = _config_error(p, step, reply)


def _adopt_existing(
    sock: nlsock.NetlinkSocket,
    runner: NamespaceRunner,
    ports: list[_Port],
    known: Mapping[str, nl.Link],
) -> None:
    if not ports:
        return
    missing = [p.spec.tap for p in ports if p.spec.tap not in known]
    looked_up = dict(zip(missing, links.get_many(sock, missing), strict=True))
    reopen: list[_Port] = []
    found = [known.get(p.spec.tap) or looked_up[p.spec.tap] for p in ports]
    for p, link in zip(ports, found, strict=True):
        if isinstance(link, KernelError):
            p.error = link
            continue
        if link is None:
            p.error = KernelError(
                f"plugging tap {p.spec.tap}: the name was taken, then freed; retry", errno.EAGAIN
            )
            continue
        try:
            links.require_owned(link, p.spec.owner, "tap", f"plugging tap {p.spec.tap}")
        except DeviceConflict as exc:
            p.error = exc
            continue
        p.link, p.index = link, link.index
        if _tun_differs(link, p.spec):
            reopen.append(p)
    if not reopen:
        return
    codes = runner.run(create_taps, [_tap_request(p.spec, False) for p in reopen])
    for p, code in zip(reopen, codes, strict=True):
        if code == errno.EBUSY:
            p.error = KernelError(
                f"plugging tap {p.spec.tap}: it exists with other tap flags (vnet_hdr, "
                "multi_queue, owner) and a guest has it open; unplug it first",
                code,
            )
        elif code:
            p.error = from_errno(code, f"changing tap flags of {p.spec.tap}")


def unplug_many(
    sock: nlsock.NetlinkSocket, refs: Sequence[PortSpec | PortRef]
) -> list[bool | KernelError]:
    results: list[bool | KernelError] = [False] * len(refs)
    todo: list[tuple[int, PortSpec | PortRef, nl.Link]] = []
    # a name held by two refs is a repeat only with the same owner: a stale unplug of a port
    # that held the name before must not hide the unplug of the port that holds it now
    seen: set[tuple[str, str]] = set()
    valid: list[tuple[int, PortSpec | PortRef]] = []
    for pos, ref in enumerate(refs):
        try:
            links.check_ifname(ref.tap, "unplugging")
            if ref.guest_mac is not None:
                links.check_mac(ref.guest_mac, f"unplugging {ref.tap}")
        except KernelError as exc:
            results[pos] = exc
            continue
        if (ref.tap, ref.owner) not in seen:  # a repeat finds the tap already gone: False
            seen.add((ref.tap, ref.owner))
            valid.append((pos, ref))
    found = links.get_links(sock, [ref.tap for _, ref in valid])
    for (pos, ref), link in zip(valid, found, strict=True):
        if isinstance(link, KernelError):
            results[pos] = link
        elif link is not None:
            found_owner = links.owner_of(link)
            if found_owner and found_owner != ref.owner and links.device_kind(link) == "tap":
                # the name went to another port (that of a failed plug is free again): this
                # port's device is gone, and the other's is left alone
                continue
            try:
                links.require_owned(link, ref.owner, "tap", f"unplugging {ref.tap}")
            except DeviceConflict as exc:
                results[pos] = exc
                continue
            todo.append((pos, ref, link))
    # FDB entries first, as libvirt does; deleting the tap would flush them anyway, so a
    # failure here does not stop the unplug
    sock.transact(
        [
            fdb_request(link.index, ref.guest_mac, False)
            for _, ref, link in todo
            if ref.guest_mac is not None and link.master
        ]
    )
    codes = links.delete_links(sock, [link.index for _, _, link in todo])
    for (pos, ref, _), code in zip(todo, codes, strict=True):
        if code == 0:
            results[pos] = True
        elif code != errno.ENODEV:
            results[pos] = from_errno(code, f"deleting tap {ref.tap}")
    return results
