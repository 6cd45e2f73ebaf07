"""<port isolated='yes'/>: the bridge port flag, read back with `bridge -d -json link`, and
what it does to frames: isolated ports cannot reach each other, but reach open ports."""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import pytest

from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, HostNet, PortSpec

pytestmark = [pytest.mark.kernel, requires_root]

MACS = {"vnA": "52:54:00:00:01:0a", "vnB": "52:54:00:00:01:0b", "vnC": "52:54:00:00:01:0c"}
ISOLATED = {"vnA", "vnB"}


def isolated_flags(ns: str) -> dict[str, bool]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "bridge", "-d", "-json", "link"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {entry["ifname"]: entry.get("isolated") for entry in json.loads(out)}


def test_isolated_ports_reach_open_ports_only(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False, delay=0))
    specs = [
        PortSpec(
            tap,
            "virbr1",
            mac,
            f"p-{tap}",
            mac_table_manager="libvirt",
            vnet_hdr=False,
            isolated=tap in ISOLATED,
        )
        for tap, mac in MACS.items()
    ]
    assert host.plug_many(specs) == [None, None, None]
    assert isolated_flags(ns) == {"vnA": True, "vnB": True, "vnC": False}
    assert host.plug_many(specs) == [None, None, None]  # a redelivered plug changes nothing
    fds = {tap: rb.open_tap(ns, tap) for tap in MACS}
    try:
        rb.wait_forwarding(ns, "virbr1", list(MACS))

        def send(src: str, dst: str, expect: set[str]) -> set[str]:
            token = secrets.token_bytes(8)
            os.write(fds[src], rb.frame(dst, MACS[src], token))
            return rb.received({t: fd for t, fd in fds.items() if t != src}, token, expect)

        assert send("vnA", MACS["vnB"], set()) == set()  # isolated to isolated: dropped
        assert send("vnA", MACS["vnC"], {"vnC"}) == {"vnC"}  # isolated to open: passes
        assert send("vnC", MACS["vnA"], {"vnA"}) == {"vnA"}
        assert send("vnA", "ff:ff:ff:ff:ff:ff", {"vnC"}) == {"vnC"}
        # the flag follows the desired state: a re-plug without it opens the port
        host.plug_many([specs[1].__class__(**{**specs[1].__dict__, "isolated": False})])
        assert isolated_flags(ns)["vnB"] is False
        assert send("vnA", MACS["vnB"], {"vnB"}) == {"vnB"}
    finally:
        for fd in fds.values():
            os.close(fd)


def test_isolation_on_any_bridge_port_by_name(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False, delay=0))
    rb.ip(ns, "link", "add", "vg1", "type", "veth", "peer", "name", "vg1p")
    rb.ip(ns, "link", "set", "vg1", "master", "virbr1")
    host.set_port_isolated("vg1", True)
    assert isolated_flags(ns)["vg1"] is True
    host.set_port_isolated("vg1", False)
    assert isolated_flags(ns)["vg1"] is False
