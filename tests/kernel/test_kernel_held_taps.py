"""A guest's tap its QEMU still holds is taken over by the guest's next port, not replaced."""

from __future__ import annotations

import fcntl
import os
import struct

import pytest

from tests import netns
from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, HostNet, PortSpec

pytestmark = [pytest.mark.kernel, requires_root]
GUEST = "52:54:00:dd:00:01"


def port(tap: str, owner: str, **kw: object) -> PortSpec:
    return PortSpec(tap, "virbr1", GUEST, owner, mac_table_manager="libvirt", **kw)  # type: ignore[arg-type]


def open_like_qemu(ns: str, name: str) -> int:
    """Attach to a tap as QEMU's -netdev tap does by default (IFF_NO_PI | IFF_VNET_HDR)."""

    def attach() -> int:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        flags = rb.IFF_TAP | rb.IFF_NO_PI | 0x4000
        fcntl.ioctl(fd, rb.TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
        return fd

    return netns.in_namespace(ns, attach)


def test_a_restarted_guest_gets_its_held_tap_back(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False))
    host.plug(port("vnet3", "old-port"))
    index = rb.links(ns)["vnet3"]["ifindex"]
    fd = open_like_qemu(ns, "vnet3")  # the earlier run's QEMU, still running
    try:
        host.plug(port("vnet0", "new-port", reuse_held=True))
        links = rb.links(ns)
        assert "vnet3" not in links
        tap = links["vnet0"]
        assert tap["ifindex"] == index and tap["ifalias"] == "virtnet:new-port"
        assert tap["master"] == "virbr1" and "UP" in tap["flags"]
        assert [e["ifname"] for e in rb.static_entries(ns, GUEST)] == ["vnet0"]
        assert host.held_taps(["vnet0"]) == {"vnet0"}  # QEMU's file is still attached
    finally:
        os.close(fd)


def test_a_tap_nobody_holds_is_not_taken_over(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False))
    host.plug(port("vnet3", "old-port"))
    host.plug(port("vnet0", "new-port", reuse_held=True))
    links = rb.links(ns)
    assert links["vnet3"]["ifalias"] == "virtnet:old-port"  # left for reconcile to remove
    assert links["vnet0"]["ifalias"] == "virtnet:new-port"
