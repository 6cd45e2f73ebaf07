"""FakeHostNet must behave like HostNet where code above the kernel layer can tell."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, HostNet, PortRef, PortSpec
from workers.kernel.fake import FakeHostNet

pytestmark = [pytest.mark.kernel, requires_root]

Net = HostNet | FakeHostNet


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        value = fn()
    except Exception as exc:
        return type(exc).__name__
    if isinstance(value, list):
        return [type(v).__name__ if isinstance(v, Exception) else v for v in value]
    return value


def state(net: Net, tap: str) -> dict[str, Any] | None:
    found = net.port_state(tap)
    if found is not None:
        found.pop("index")
    return found


def lifecycle(net: Net) -> list[Any]:
    libvirt = PortSpec("vnet0", "virbr1", "52:54:00:00:00:01", "dom-1", mac_table_manager="libvirt")
    kernel = PortSpec("vnet1", "virbr1", "52:54:00:00:00:02", "dom-2", mtu=1400)
    stray = PortSpec("vnet2", "virbr-none", "52:54:00:00:00:03", "dom-3")
    steps: list[Callable[[], Any]] = [
        lambda: net.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False, vlan_filtering=True)),
        lambda: net.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False, vlan_filtering=True)),
        lambda: net.plug_many([libvirt, kernel, stray, libvirt]),
        lambda: net.plug(libvirt),
        lambda: state(net, "vnet0"),
        lambda: state(net, "vnet1"),
        lambda: net.set_fdb("virbr1", "vnet0", libvirt.guest_mac, False),
        lambda: state(net, "vnet0"),
        lambda: net.plug(PortSpec("vnet0", "virbr1", "52:54:00:00:00:01", "dom-9")),
        lambda: net.plug(PortSpec("foreign0", "virbr1", "52:54:00:00:00:09", "dom-9")),
        lambda: net.remove_bridge("br-ext", "net-1"),
        lambda: net.check_bridge("br-ext"),
        lambda: net.check_bridge("foreign0"),
        lambda: sorted(net.owned_devices(), key=lambda d: d.name),
        lambda: net.ensure_addresses("virbr1", ["10.1.0.1/24", "fd00::1/64"]),
        lambda: net.ensure_addresses("virbr1", ["10.1.0.1/24"]),
        lambda: net.addresses("virbr1"),
        lambda: net.ensure_addresses("virbr-none", ["10.2.0.1/24"]),
        lambda: net.remove_firewall(["othertool"]),
        lambda: net.firewall_tables(),
        lambda: net.unplug_many([PortRef("vnet1", "dom-before"), kernel]),
        lambda: net.plug(kernel),
        lambda: net.unplug_many([libvirt, PortRef("vnet1", "dom-2"), PortRef("foreign0", "x")]),
        lambda: net.unplug("vnet0", "dom-1"),
        lambda: net.remove_bridge("virbr1", "net-1"),
        lambda: net.remove_bridge("virbr1", "net-1"),
        lambda: net.owned_devices(),
    ]
    return [outcome(step) for step in steps]


def test_fake_agrees_with_kernel(host: HostNet, ns: str) -> None:
    rb.ip(ns, "tuntap", "add", "foreign0", "mode", "tap")
    rb.ip(ns, "link", "add", "br-ext", "type", "bridge")
    fake = FakeHostNet(vlan_filtering=host.probe().vlan_filtering)
    fake.add_foreign("foreign0", "tap")
    fake.add_foreign("br-ext", "bridge")
    real_run, fake_run = lifecycle(host), lifecycle(fake)
    for i, (real, faked) in enumerate(zip(real_run, fake_run, strict=True)):
        assert faked == real, f"step {i}"
