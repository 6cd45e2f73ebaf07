"""Does this kernel make 802.1Q VLAN devices (the ``8021q`` module)? Asked, not guessed.

/proc/net/vlan exists only once the module is loaded, and the module list is absent on
kernels without modules, so both miss a loadable 8021q. The kernel itself answers: a
``vlan`` link is tried on a throwaway bridge in this host's namespace (the kernel loads
8021q on demand if it can) and both go at once; no other device is touched.
"""

from __future__ import annotations

import errno
import secrets

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .errors import from_errno


def probe_8021q(ipr: IPRoute) -> bool:
    """True when a VLAN (802.1Q) device can be created here."""
    lower = "vntprobe" + secrets.token_hex(3)
    try:
        ipr.link("add", ifname=lower, kind="bridge")
        index = ipr.link_lookup(ifname=lower)[0]
    except NetlinkError as exc:
        raise from_errno(exc.code, "probing 802.1Q: a throwaway bridge") from exc
    try:
        ipr.link("add", ifname=lower + "v", kind="vlan", link=index, vlan_id=1)
    except NetlinkError as exc:
        if exc.code == errno.EOPNOTSUPP:  # "Unknown device type": no 8021q
            return False
        raise from_errno(exc.code, "probing 802.1Q") from exc
    finally:
        ipr.link("del", index=index)  # takes the vlan device with it
    return True
