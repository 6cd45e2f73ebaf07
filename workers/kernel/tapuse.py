"""Whether a hypervisor holds a tap open: a tap has carrier exactly while a file is attached."""

from __future__ import annotations

import errno
from collections.abc import Sequence

from . import links, nl, nlsock

IFLA_CARRIER = 33


def held(sock: nlsock.NetlinkSocket, names: Sequence[str]) -> set[str]:
    """The taps among ``names`` that a process has open (missing ones are not held)."""
    out: set[str] = set()
    requests = [links.get_link_request(n) for n in names]
    for name, reply in zip(names, sock.transact(requests), strict=True):
        if reply.error == errno.ENODEV or reply.error:
            continue
        body = reply.payloads[0]
        link = nl.parse_link(body)
        if links.device_kind(link) != "tap":
            continue
        attrs = nl.parse_attrs(body, nl._IFINFOMSG.size)
        if nl.attr_u8(attrs, IFLA_CARRIER):
            out.add(name)
    return out
