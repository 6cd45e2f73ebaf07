"""What the bridge does with guest frames, without a VM: the test attaches to the taps as
QEMU would, writes frames into one and reads what comes out of the others."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, HostNet, PortSpec

pytestmark = [pytest.mark.kernel, requires_root]

MACS = {"vnA": "52:54:00:00:00:0a", "vnB": "52:54:00:00:00:0b", "vnC": "52:54:00:00:00:0c"}
UNKNOWN = "52:54:00:de:ad:01"
BROADCAST = "ff:ff:ff:ff:ff:ff"


@pytest.fixture(params=["libvirt", "kernel"])
def guests(request: pytest.FixtureRequest, host: HostNet, ns: str) -> Iterator[dict[str, int]]:
    # STP off and no forward delay: with STP the ports would only forward after ~4 s
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False, delay=0))
    ports = [
        PortSpec(tap, "virbr1", mac, f"dom-{tap}", mac_table_manager=request.param, vnet_hdr=False)
        for tap, mac in MACS.items()
    ]
    assert host.plug_many(ports) == [None, None, None]
    fds = {tap: rb.open_tap(ns, tap) for tap in MACS}
    try:
        rb.wait_forwarding(ns, "virbr1", list(MACS))
        yield fds
    finally:
        for fd in fds.values():
            os.close(fd)


def send(fds: dict[str, int], src: str, dst: str, expect: set[str]) -> set[str]:
    """Write a frame into ``src``'s tap; return the other taps it came out of."""
    token = secrets.token_bytes(8)
    os.write(fds[src], rb.frame(dst, MACS[src], token))
    return rb.received({t: fd for t, fd in fds.items() if t != src}, token, expect)


@pytest.mark.parametrize("guests", ["libvirt"], indirect=True)
def test_libvirt_mode_delivers_by_static_entries_only(
    guests: dict[str, int], host: HostNet
) -> None:
    assert send(guests, "vnA", MACS["vnB"], {"vnB"}) == {"vnB"}
    assert send(guests, "vnA", MACS["vnC"], {"vnC"}) == {"vnC"}
    assert send(guests, "vnA", UNKNOWN, set()) == set()  # unknown unicast reaches no guest
    assert send(guests, "vnA", BROADCAST, {"vnB", "vnC"}) == {
        "vnB",
        "vnC",
    }  # broadcast still floods
    # a paused guest: its entry is gone and nothing floods to it
    host.set_fdb("virbr1", "vnB", MACS["vnB"], False)
    assert send(guests, "vnA", MACS["vnB"], set()) == set()
    host.set_fdb("virbr1", "vnB", MACS["vnB"], True)
    assert send(guests, "vnA", MACS["vnB"], {"vnB"}) == {"vnB"}


@pytest.mark.parametrize("guests", ["kernel"], indirect=True)
def test_kernel_mode_floods_and_learns(guests: dict[str, int]) -> None:
    assert send(guests, "vnA", UNKNOWN, {"vnB", "vnC"}) == {"vnB", "vnC"}
    assert send(guests, "vnA", MACS["vnB"], {"vnB", "vnC"}) == {"vnB", "vnC"}  # not learnt yet
    assert send(guests, "vnB", MACS["vnA"], {"vnA"}) == {"vnA"}  # A was learnt from its frames
    assert send(guests, "vnA", MACS["vnB"], {"vnB"}) == {"vnB"}  # now B is known too
