"""Addresses on a bridge virtnet owns, read back with `ip -json addr` in the namespace."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests import netns
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, HostNet, KernelError

pytestmark = [pytest.mark.kernel, requires_root]


def global_addrs(ns: str, dev: str) -> set[str]:
    out = subprocess.run(
        ["ip", "-n", ns, "-json", "addr", "show", "dev", dev],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        f"{a['local']}/{a['prefixlen']}"
        for link in json.loads(out)
        for a in link["addr_info"]
        if a.get("scope") == "global"
    }


def test_addresses_added_corrected_and_removed(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr3", "net-3"))
    wanted = ["192.168.122.1/24", "10.24.10.1/8", "2001:db8:ac10:fe01::1/64", "fd00::1/64"]
    added, removed = host.ensure_addresses("virbr3", wanted)
    assert sorted(added) == sorted(wanted) and removed == []
    assert global_addrs(ns, "virbr3") == set(wanted)
    assert host.ensure_addresses("virbr3", wanted) == ([], [])  # twice: nothing to do
    for knob, value in (("disable_ipv6", "0"), ("accept_ra", "0"), ("autoconf", "0")):
        path = f"/proc/sys/net/ipv6/conf/virbr3/{knob}"
        assert netns.run(ns, "cat", path).stdout.strip() == value
    # someone added one by hand; the definition lost one: reconcile both ways
    subprocess.run(["ip", "-n", ns, "addr", "add", "172.16.0.1/16", "dev", "virbr3"], check=True)
    added, removed = host.ensure_addresses("virbr3", wanted[:2])
    assert sorted(removed) == sorted(["172.16.0.1/16", *wanted[2:]])
    assert global_addrs(ns, "virbr3") == set(wanted[:2])
    assert host.addresses("virbr3") == sorted(wanted[:2])


def test_addresses_on_a_missing_device_fail_clearly(host: HostNet) -> None:
    with pytest.raises(KernelError, match="vnbrnone does not exist"):
        host.ensure_addresses("vnbrnone", ["10.0.0.1/24"])
