"""Which ports carry no traffic control at all, read in two dumps instead of per port.

A reconcile compares the qdiscs of every port, also of ports that never had bandwidth
(``plug_many(check_qos=True)``): with pyroute2 that is four requests per port, ~2 ms, so
20 s for 10,000 ports. Most ports have no limits and nothing left over, which one link dump
(each device's root qdisc kind, the IFB devices that exist) and one qdisc dump (which
devices have an ingress qdisc) show for all of them at once. Only the others go the slow
way, which compares and repairs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from . import links, nl, nlsock
from .qos import ifb_name
from .specs import PortSpec

RTM_GETQDISC = 38
#: parent of an ingress (or clsact) qdisc
TC_H_INGRESS = 0xFFFFFFF1
_TCMSG = struct.Struct("=BxxxiIII")
_SKIP_STATS = nl.nla_u32(nl.IFLA_EXT_MASK, nl.RTEXT_FILTER_SKIP_STATS)


def wants_no_qos(spec: PortSpec) -> bool:
    """The port has no limits, no floor and no class of its own (now or left over)."""
    return not (spec.bandwidth or spec.floor or spec.class_id is not None)


def bare(
    sock: nlsock.NetlinkSocket,
    specs: Iterable[PortSpec],
    known: Mapping[str, nl.Link] | None = None,
) -> set[str]:
    """The taps among ``specs`` that exist and have no htb root qdisc, no ingress qdisc and
    no IFB device of their owner: ``bandwidth.ensure_port`` with no bandwidth would find
    them as wanted and change nothing.

    ``known``: the links of a dump made before the taps were plugged (a reconcile's), read
    instead of a new dump: plugging changes no root qdisc to or from htb and makes no IFB;
    a tap it lacks (created since) is looked up."""
    specs = list(specs)
    roots: dict[str, tuple[int, str | None]] = {}
    if known is not None:
        missing = [s.tap for s in specs if s.tap not in known]
        for tap, link in zip(missing, links.get_links(sock, missing), strict=True):
            if isinstance(link, nl.Link):
                roots[tap] = (link.index, link.qdisc)
    else:
        for body in sock.dump(nl.RTM_GETLINK, nl.ifinfomsg() + _SKIP_STATS):
            index = struct.unpack_from("=i", body, 4)[0]
            attrs = nl.parse_attrs(body, 16)
            name = nl.attr_str(attrs, nl.IFLA_IFNAME)
            if name:
                roots[name] = (index, nl.attr_str(attrs, nl.IFLA_QDISC))

    def root(name: str) -> tuple[int, str | None] | None:
        if known is not None and name in known:
            return known[name].index, known[name].qdisc
        return roots.get(name)

    ingress = set()
    for body in sock.dump(RTM_GETQDISC, _TCMSG.pack(nl.AF_UNSPEC, 0, 0, 0, 0)):
        _family, index, _handle, parent, _info = _TCMSG.unpack_from(body)
        if parent == TC_H_INGRESS:
            ingress.add(index)
    out = set()
    for spec in specs:
        found = root(spec.tap)
        if found is None or found[1] == "htb" or found[0] in ingress:
            continue
        if root(ifb_name(spec.owner)) is not None:
            continue
        out.add(spec.tap)
    return out
