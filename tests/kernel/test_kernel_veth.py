"""Containers' veth pairs in real namespaces: host end as a libvirt-mode tap, guest end in
the container's namespace; namespaces virtnet did not create are never removed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from app.messages import Message
from tests import netns
from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, DeviceConflict, HostNet, PortRef, PortSpec
from workers.tasks import HostAgent

pytestmark = [pytest.mark.kernel, requires_root]

GUEST = "52:54:00:cc:00:01"


@pytest.fixture
def bridge(host: HostNet) -> str:
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", mtu=1450, stp=False))
    return "virbr1"


@pytest.fixture
def guest_name() -> Iterator[str]:
    """A namespace name for virtnet to create; deleted afterwards if it is left over."""
    name = netns.new_name("g")
    yield name
    netns.delete(name)


def veth(netns_name: str, tap: str = "vnet0", ifname: str = "eth0", **kw: object) -> PortSpec:
    return PortSpec(
        tap,
        "virbr1",
        kw.pop("mac", GUEST),  # type: ignore[arg-type]
        "port-1",
        mac_table_manager="libvirt",
        netns=netns_name,
        guest_ifname=ifname,
        **kw,  # type: ignore[arg-type]
    )


def test_veth_pair_like_libvirt_lxc_and_its_namespace_comes_and_goes(
    host: HostNet, ns: str, bridge: str, guest_name: str
) -> None:
    spec = veth(guest_name)
    host.plug(spec)
    host.plug(spec)  # redelivered: the same pair, nothing more
    end = rb.links(ns)["vnet0"]
    assert end["linkinfo"]["info_kind"] == "veth"
    assert end["master"] == "virbr1" and end["address"] == "fe:54:00:cc:00:01"
    assert end["mtu"] == 1450 and "UP" in end["flags"] and end["ifalias"] == "virtnet:port-1"
    slave = rb.slave_data(end)
    assert (slave["learning"], slave["flood"]) == (False, False)
    assert [e["ifname"] for e in rb.static_entries(ns, GUEST)] == ["vnet0"]
    inside = rb.links(guest_name)
    assert sorted(inside) == ["eth0", "lo"]
    assert inside["eth0"]["address"] == GUEST and inside["eth0"]["mtu"] == 1450
    assert "UP" in inside["eth0"]["flags"] and "UP" in inside["lo"]["flags"]
    assert host.created_namespaces() == [guest_name]

    # paused: plugged without its FDB entry, as a tap
    host.plug(veth(guest_name, fdb=False))
    assert rb.static_entries(ns, GUEST) == []
    host.plug(spec)

    # a second interface becomes eth1; unplugging the first keeps the namespace
    host.plug(veth(guest_name, "vnet1", "eth1", mac="52:54:00:cc:00:02", mtu=1400))
    assert rb.links(guest_name)["eth1"]["mtu"] == 1400
    assert host.unplug_many([spec]) == [True]
    assert "vnet0" not in rb.links(ns) and "eth0" not in rb.links(guest_name)
    assert os.path.exists(f"/var/run/netns/{guest_name}")
    # reconcile's view: the host end is a veth virtnet owns
    owned = {d.name: d.kind for d in host.owned_devices()}
    assert owned["vnet1"] == "veth"
    last = veth(guest_name, "vnet1", "eth1", mac="52:54:00:cc:00:02")
    assert host.unplug_many([last]) == [True]
    assert not os.path.exists(f"/var/run/netns/{guest_name}")
    assert host.created_namespaces() == []


def test_an_existing_namespace_is_used_and_never_removed(
    host: HostNet, ns: str, bridge: str
) -> None:
    with netns.namespace("c") as mine:
        spec = veth(mine)
        host.plug(spec)
        assert rb.links(mine)["eth0"]["address"] == GUEST
        assert host.unplug_many([spec]) == [True]
        assert os.path.exists(f"/var/run/netns/{mine}")
        assert host.created_namespaces() == []
        assert not host.remove_namespace_if_unused(mine)
        assert os.path.exists(f"/var/run/netns/{mine}")


def test_a_foreign_eth0_in_the_namespace_is_left_alone(host: HostNet, ns: str, bridge: str) -> None:
    with netns.namespace("c") as mine:
        rb.ip(mine, "link", "add", "eth0", "type", "veth", "peer", "name", "x0")
        with pytest.raises(DeviceConflict, match="eth0"):
            host.plug(veth(mine))
        assert "vnet0" not in rb.links(ns)
        assert rb.links(mine)["eth0"]["linkinfo"]["info_kind"] == "veth"
        assert rb.links(mine)["eth0"].get("ifalias") is None


def test_a_leftover_veth_is_removed_by_its_owner_only(
    host: HostNet, ns: str, bridge: str, guest_name: str
) -> None:
    host.plug(veth(guest_name))
    with contextlib.suppress(Exception):
        assert isinstance(host.unplug_many([PortRef("vnet0", "other", kind="veth")])[0], Exception)
    assert "vnet0" in rb.links(ns)
    assert host.unplug_many([PortRef("vnet0", "port-1", kind="veth")]) == [True]
    assert host.remove_namespace_if_unused(guest_name)
    assert not os.path.exists(f"/var/run/netns/{guest_name}")


class Agent(HostAgent):
    """The host worker's logic on a real HostNet, its reports kept instead of sent."""

    def __init__(self, net: HostNet) -> None:
        super().__init__(
            network=lambda: net, send=lambda *_: None, host="h1", worker_id="test", key="test"
        )
        self.sent: list[dict[str, Any]] = []

    def send(self, name: str, report: Message) -> None:
        self.sent.append(report.wire())


def desired(spec: PortSpec, present: bool, **extra: Any) -> dict[str, Any]:
    return {
        "port_id": spec.owner,
        "owner_uuid": "dom-" + spec.owner,
        "generation": 1,
        "present": present,
        "tap": spec.tap,
        "bridge": spec.bridge,
        "guest_mac": spec.guest_mac,
        "mac_table_manager": spec.mac_table_manager,
        "netns": spec.netns,
        "guest_ifname": spec.guest_ifname,
        **extra,
    }


def test_a_held_tap_stays_unless_forced_and_reconcile_knows_veths(
    host: HostNet, ns: str, bridge: str, guest_name: str
) -> None:
    agent = Agent(host)
    held = PortSpec("vnet5", "virbr1", "52:54:00:cc:00:05", "p5", mac_table_manager="libvirt")
    sibling = PortSpec("vnet6", "virbr1", "52:54:00:cc:00:06", "p5", mac_table_manager="libvirt")
    host.plug_many([held, sibling])
    fd = rb.open_tap(ns, "vnet5")  # as QEMU does: the tap gets carrier
    try:
        # a stop without force: both of the domain's ports stay, reported busy
        agent.apply_ports(
            [desired(held, False, keep_busy=True), desired(sibling, False, keep_busy=True)]
        )
        results = agent.sent[-1]["results"]
        assert [r["state"] for r in results] == ["busy", "busy"]
        assert "vnet5 is in use" in results[0]["error"]
        assert {"vnet5", "vnet6"} <= set(rb.links(ns))

        # reconcile: nothing wanted; the veth and virtnet's namespace go, the held tap stays
        with netns.namespace("c") as mine:
            host.plug(veth(guest_name))
            host.plug(veth(mine, "vnet7", mac="52:54:00:cc:00:07"))
            agent.reconcile([], [])
            left = set(rb.links(ns))
            assert "vnet5" in left and not {"vnet0", "vnet6", "vnet7"} & left
            assert not os.path.exists(f"/var/run/netns/{guest_name}")
            assert sorted(rb.links(mine)) == ["lo"]

        # with force (no keep_busy) the held tap goes
        agent.apply_ports([desired(held, False)])
        assert agent.sent[-1]["results"][0]["state"] == "absent"
        assert "vnet5" not in rb.links(ns)
    finally:
        os.close(fd)
