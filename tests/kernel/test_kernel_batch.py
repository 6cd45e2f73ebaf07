from __future__ import annotations

import pytest

from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import (
    BridgeFull,
    BridgeMissing,
    BridgeSpec,
    DeviceConflict,
    HostNet,
    KernelError,
    PortRef,
    PortSpec,
)

pytestmark = [pytest.mark.kernel, requires_root]


def mac(i: int) -> str:
    return f"52:54:00:01:{i >> 8:02x}:{i & 0xFF:02x}"


def specs(n: int, manager: str = "libvirt", bridge: str = "virbr1") -> list[PortSpec]:
    return [
        PortSpec(f"vn{i}", bridge, mac(i), f"dom-{i}", mac_table_manager=manager) for i in range(n)
    ]


def test_plug_many_and_unplug_many_200(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False))
    ports = specs(200)
    assert host.plug_many(ports) == [None] * 200
    assert host.plug_many(ports) == [None] * 200
    links = rb.links(ns)
    taps = {n: link for n, link in links.items() if n.startswith("vn")}
    assert len(taps) == 200
    for spec in ports:
        tap = taps[spec.tap]
        assert tap["master"] == "virbr1" and "UP" in tap["flags"]
        assert tap["address"] == "fe" + spec.guest_mac[2:]
        assert tap["ifalias"] == f"virtnet:{spec.owner}"
        slave = rb.slave_data(tap)
        assert (slave["learning"], slave["flood"]) == (False, False)
    static = rb.static_entries(ns)
    assert sorted((e["mac"], e["ifname"]) for e in static) == sorted(
        (s.guest_mac, s.tap) for s in ports
    )
    assert len(host.owned_devices()) == 201

    assert host.unplug_many(ports) == [True] * 200
    assert not [n for n in rb.links(ns) if n.startswith("vn")]
    assert rb.static_entries(ns) == []
    assert host.unplug_many(ports) == [False] * 200
    assert list(rb.links(ns)) == ["lo", "virbr1"]


def test_batch_reports_each_port(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False))
    rb.ip(ns, "tuntap", "add", "vn2", "mode", "tap")
    batch = specs(4)
    batch[1] = PortSpec("vn1", "virbr-none", mac(1), "dom-1")
    batch.append(batch[0])
    results = host.plug_many(batch)
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], BridgeMissing)
    assert isinstance(results[2], DeviceConflict)
    assert isinstance(results[4], KernelError) and "twice" in str(results[4])
    names = {n for n in rb.links(ns) if n.startswith("vn")}
    assert names == {"vn0", "vn2", "vn3"}
    assert "ifalias" not in (rb.link(ns, "vn2") or {})

    refs: list[PortRef | PortSpec] = [
        PortRef("vn0", "dom-0", "virbr1", mac(0)),
        PortRef("vn2", "dom-2"),
        batch[3],
        PortRef("vn1", "dom-1"),
    ]
    results2 = host.unplug_many(refs)
    assert results2[0] is True and results2[2] is True and results2[3] is False
    assert isinstance(results2[1], DeviceConflict)
    assert {n for n in rb.links(ns) if n.startswith("vn")} == {"vn2"}


def test_bridge_full_at_1024_ports(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False))
    ports = specs(1024, manager="kernel")
    results = host.plug_many(ports)
    assert results[:1023] == [None] * 1023
    assert isinstance(results[1023], BridgeFull)
    assert "1023 ports" in str(results[1023])
    # the tap that could not join was removed again, so a retry elsewhere is clean
    assert rb.link(ns, "vn1023") is None
    with pytest.raises(BridgeFull):
        host.plug(ports[1023])


def test_unplug_many_with_a_name_two_ports_held(host: HostNet, ns: str) -> None:
    """A tap name is reused: a batch may unplug the port that holds it now beside a stale
    unplug of an earlier port that held it (the control worker takes back a late plug of a
    released port). Only the holder's tap goes; it must go whichever ref comes first."""
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", stp=False))
    holder = PortSpec("vn5", "virbr1", mac(5), "port-now")
    for earlier_first in (True, False):
        assert host.plug(holder) is None
        refs: list[PortRef | PortSpec] = [PortRef("vn5", "port-before", "virbr1", mac(4)), holder]
        if not earlier_first:
            refs.reverse()
        results = host.unplug_many(refs)
        assert results == ([False, True] if earlier_first else [True, False])
        assert rb.link(ns, "vn5") is None
        assert rb.static_entries(ns) == []
