"""Bridges: create/correct/remove the ones virtnet owns, check the external ones."""

from __future__ import annotations

import errno
import secrets

from . import links, nl, nlsock
from .errors import BridgeMissing, KernelError, from_errno
from .specs import CREATING_GROUP, BridgeResult, BridgeSpec, owner_alias

# forward delay is in clock_t (1/100 s) on the wire; with STP on the kernel refuses values
# outside 2..30 s (ERANGE) and raises a smaller one to 2 s when STP starts
_STP_MIN_DELAY = 200
_STP_MAX_DELAY = 3000

NO_VLAN_FILTERING = (
    "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING): the bridge "
    "runs without it, so ports that neither learn nor flood stay promiscuous"
)


def effective_delay(spec: BridgeSpec) -> int:
    """The forward delay (1/100 s) the kernel will actually keep for this spec."""
    delay = spec.delay * 100
    if spec.stp:
        delay = min(max(delay, _STP_MIN_DELAY), _STP_MAX_DELAY)
    return delay


def _validate(spec: BridgeSpec) -> None:
    what = f"bridge {spec.name}"
    links.check_ifname(spec.name, what)
    if spec.mac is not None:
        links.check_mac(spec.mac, what)
    if spec.mtu is not None and not 68 <= spec.mtu <= 65535:
        raise KernelError(f"{what}: MTU {spec.mtu} is outside 68..65535", errno.EINVAL)
    if spec.delay < 0:
        raise KernelError(f"{what}: forward delay {spec.delay} s is negative", errno.EINVAL)


def _bridge_data(stp: bool | None, delay: int | None, vlan: bool | None) -> bytes:
    # the kernel applies IFLA_BR_FORWARD_DELAY before IFLA_BR_STP_STATE
    attrs = []
    if delay is not None:
        attrs.append(nl.nla_u32(nl.IFLA_BR_FORWARD_DELAY, delay))
    if stp is not None:
        attrs.append(nl.nla_u32(nl.IFLA_BR_STP_STATE, int(stp)))
    if vlan is not None:
        attrs.append(nl.nla_u8(nl.IFLA_BR_VLAN_FILTERING, int(vlan)))
    return nl.nla_nest(
        nl.IFLA_LINKINFO,
        nl.nla_str(nl.IFLA_INFO_KIND, "bridge"),
        nl.nla_nest(nl.IFLA_INFO_DATA, *attrs),
    )


def _create(sock: nlsock.NetlinkSocket, spec: BridgeSpec, vlan: bool) -> nlsock.Reply:
    body = nl.ifinfomsg(flags=nl.IFF_UP, change=nl.IFF_UP) + nl.nla_str(nl.IFLA_IFNAME, spec.name)
    body += nl.nla_u32(nl.IFLA_GROUP, CREATING_GROUP)
    if spec.mac is not None:
        body += nl.nla_mac(nl.IFLA_ADDRESS, spec.mac)
    body += _bridge_data(spec.stp, effective_delay(spec), True if vlan else None)
    # NLM_F_ECHO returns the new link, so the alias goes on by index and can never land on
    # a device someone else created under the same name meanwhile
    return sock.request(nl.RTM_NEWLINK, body, nl.NLM_F_CREATE | nl.NLM_F_EXCL | nl.NLM_F_ECHO)


def ensure_bridge(
    sock: nlsock.NetlinkSocket, spec: BridgeSpec, vlan_supported: bool | None
) -> tuple[BridgeResult, bool | None]:
    """Create or correct the bridge; also returns what was learnt about VLAN filtering."""
    _validate(spec)
    what = f"ensuring bridge {spec.name}"
    link = links.get_link(sock, spec.name)
    created = False
    if link is None:
        want_vlan = spec.vlan_filtering and vlan_supported is not False
        reply = _create(sock, spec, want_vlan)
        if want_vlan and reply.error == errno.EOPNOTSUPP:
            vlan_supported = False
            reply = _create(sock, spec, False)
        elif want_vlan and not reply.error:
            vlan_supported = True
        if reply.error != errno.EEXIST:  # EEXIST: lost a race, handled as existing below
            links.raise_for(reply, f"creating bridge {spec.name}")
            created = True
            index = nl.parse_link(reply.payloads[0]).index if reply.payloads else 0
            _label(sock, spec, index or _index_of(sock, spec.name))
        link = links.get_link(sock, spec.name)
        if link is None:
            raise KernelError(f"{what}: bridge vanished while being created", errno.ENODEV)
    if link is not None and links.half_made(link) and links.device_kind(link) == "bridge":
        _label(sock, spec, link.index)  # a worker died between creating and labelling it
        created = True
        link = links.get_link(sock, spec.name)
        if link is None:
            raise KernelError(f"{what}: bridge vanished while being created", errno.ENODEV)
    links.require_owned(link, spec.owner, "bridge", what)
    if not created:
        vlan_supported = _correct(sock, spec, link, vlan_supported)
        link = links.get_link(sock, spec.name) or link
    vlan_now = bool(nl.attr_u8(link.info, nl.IFLA_BR_VLAN_FILTERING))
    degraded = None
    if spec.vlan_filtering and not vlan_now:
        degraded = (
            NO_VLAN_FILTERING
            if vlan_supported is False
            else ("VLAN filtering could not be turned on for this bridge")
        )
    result = BridgeResult(spec.name, created, vlan_now, degraded)
    return result, vlan_supported


def _label(sock: nlsock.NetlinkSocket, spec: BridgeSpec, index: int) -> None:
    body = nl.ifinfomsg(index) + nl.nla_str(nl.IFLA_IFALIAS, owner_alias(spec.owner))
    body += nl.nla_u32(nl.IFLA_GROUP, 0)
    if spec.mtu is not None:
        # set after creation, like libvirt: only an MTU changed on a live bridge is
        # kept; one given at creation follows the smallest port MTU
        body += nl.nla_u32(nl.IFLA_MTU, spec.mtu)
    links.raise_for(sock.request(nl.RTM_NEWLINK, body), f"labelling bridge {spec.name}")


def _index_of(sock: nlsock.NetlinkSocket, name: str) -> int:
    link = links.get_link(sock, name)
    if link is None:
        raise KernelError(f"bridge {name} vanished right after it was created", errno.ENODEV)
    return link.index


def _correct(
    sock: nlsock.NetlinkSocket, spec: BridgeSpec, link: nl.Link, vlan_supported: bool | None
) -> bool | None:
    """Bring an existing bridge of ours to the spec, touching only what differs."""
    requests: list[nlsock.Request] = []
    base = b""
    if spec.mac is not None and (link.mac or "") != spec.mac.lower():
        base += nl.nla_mac(nl.IFLA_ADDRESS, spec.mac)
    if spec.mtu is not None and link.mtu != spec.mtu:
        base += nl.nla_u32(nl.IFLA_MTU, spec.mtu)
    if base or not link.up:
        requests.append(
            nlsock.Request(nl.RTM_NEWLINK, nl.ifinfomsg(link.index, nl.IFF_UP, nl.IFF_UP) + base)
        )
    stp_now = bool(nl.attr_u32(link.info, nl.IFLA_BR_STP_STATE))
    delay_now = nl.attr_u32(link.info, nl.IFLA_BR_FORWARD_DELAY)
    # STP first, in its own message: the allowed delay range depends on the STP state
    if stp_now != spec.stp:
        requests.append(_set_bridge(link.index, _bridge_data(spec.stp, None, None)))
    if delay_now != effective_delay(spec):
        requests.append(_set_bridge(link.index, _bridge_data(None, effective_delay(spec), None)))
    for reply in sock.transact(requests):
        links.raise_for(reply, f"correcting bridge {spec.name}")
    vlan_now = bool(nl.attr_u8(link.info, nl.IFLA_BR_VLAN_FILTERING))
    want_vlan = spec.vlan_filtering and vlan_supported is not False
    if want_vlan != vlan_now:
        request = _set_bridge(link.index, _bridge_data(None, None, want_vlan))
        reply = sock.request(request.type, request.body)
        if reply.error == errno.EOPNOTSUPP:
            return False
        links.raise_for(reply, f"setting vlan_filtering on bridge {spec.name}")
        if want_vlan:
            vlan_supported = True
    return vlan_supported


def _set_bridge(index: int, linkinfo: bytes) -> nlsock.Request:
    return nlsock.Request(nl.RTM_NEWLINK, nl.ifinfomsg(index) + linkinfo)


def remove_bridge(sock: nlsock.NetlinkSocket, name: str, owner: str) -> bool:
    links.check_ifname(name, "removing bridge")
    link = links.get_link(sock, name)
    if link is None:
        return False
    links.require_owned(link, owner, "bridge", f"removing bridge {name}")
    reply = sock.request(nl.RTM_DELLINK, nl.ifinfomsg(link.index))
    if reply.error == errno.ENODEV:
        return False
    links.raise_for(reply, f"removing bridge {name}")
    return True


def check_bridge(sock: nlsock.NetlinkSocket, name: str) -> nl.Link:
    links.check_ifname(name, "checking bridge")
    link = links.get_link(sock, name)
    if link is None:
        raise BridgeMissing(
            f"bridge {name} does not exist on this host; a network in forward mode 'bridge' "
            "uses a bridge set up outside virtnet: create it (e.g. in the host's network "
            "configuration) or change the network",
            errno.ENODEV,
        )
    if link.kind != "bridge":
        raise BridgeMissing(
            f"{name} exists on this host but is a {links.device_kind(link)}, not a bridge",
            errno.EINVAL,
        )
    return link


def probe_vlan_filtering(sock: nlsock.NetlinkSocket) -> bool:
    """Try VLAN filtering on a throwaway bridge (no other device is touched)."""
    name = "vntprobe" + secrets.token_hex(3)
    body = nl.ifinfomsg() + nl.nla_str(nl.IFLA_IFNAME, name) + _bridge_data(False, 0, True)
    reply = sock.request(nl.RTM_NEWLINK, body, nl.NLM_F_CREATE | nl.NLM_F_EXCL)
    if reply.error == errno.EOPNOTSUPP:
        return False
    if reply.error:
        raise from_errno(reply.error, "probing bridge VLAN filtering", reply.message)
    link = links.get_link(sock, name)
    try:
        return link is not None and bool(nl.attr_u8(link.info, nl.IFLA_BR_VLAN_FILTERING))
    finally:
        if link is not None:
            sock.request(nl.RTM_DELLINK, nl.ifinfomsg(link.index))
