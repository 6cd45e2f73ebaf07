from __future__ import annotations

import pytest

from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import (
    BridgeMissing,
    BridgeSpec,
    DeviceConflict,
    HostNet,
    KernelError,
    OwnedDevice,
    PortSpec,
)

pytestmark = [pytest.mark.kernel, requires_root]

GUEST = "52:54:00:aa:bb:01"
IFF_TAP, IFF_MULTI_QUEUE, IFF_NO_PI, IFF_VNET_HDR = 0x2, 0x100, 0x1000, 0x4000


@pytest.fixture
def bridge(host: HostNet) -> str:
    host.ensure_bridge(BridgeSpec("virbr1", "net-1", mtu=1450, stp=False))
    return "virbr1"


def libvirt_port(tap: str = "vnet0", mac: str = GUEST, **kw: object) -> PortSpec:
    return PortSpec(tap, "virbr1", mac, "dom-1", mac_table_manager="libvirt", **kw)  # type: ignore[arg-type]


def test_libvirt_port_twice(host: HostNet, ns: str, bridge: str) -> None:
    spec = libvirt_port()
    host.plug(spec)
    host.plug(spec)
    links = rb.links(ns)
    assert [n for n in links if n.startswith("vnet")] == ["vnet0"]
    tap = links["vnet0"]
    assert tap["master"] == "virbr1"
    assert tap["address"] == "fe:54:00:aa:bb:01"
    assert tap["mtu"] == 1450  # the bridge's
    assert "UP" in tap["flags"]
    assert tap["ifalias"] == "virtnet:dom-1"
    assert rb.info_data(tap)["type"] == "tap"
    slave = rb.slave_data(tap)
    assert (slave["learning"], slave["flood"]) == (False, False)
    assert (slave["mcast_flood"], slave["bcast_flood"]) == (True, True)
    assert rb.sysfs(ns, "virbr1/brif/vnet0/learning") == "0"
    assert rb.sysfs(ns, "virbr1/brif/vnet0/unicast_flood") == "0"
    assert rb.sysfs(ns, "virbr1/brif/vnet0/multicast_flood") == "1"
    entries = rb.static_entries(ns, GUEST)
    assert entries == [
        {"mac": GUEST, "ifname": "vnet0", "flags": [], "master": "virbr1", "state": "static"}
    ]
    state = host.port_state("vnet0")
    assert state is not None
    assert (state["master"], state["learning"], state["unicast_flood"]) == ("virbr1", False, False)
    assert state["static_fdb"] == [GUEST] and state["owner"] == "dom-1"


def test_kernel_port_keeps_defaults(host: HostNet, ns: str, bridge: str) -> None:
    spec = PortSpec("vnet1", "virbr1", GUEST, "dom-1", mtu=1400)
    host.plug(spec)
    host.plug(spec)
    tap = rb.link(ns, "vnet1") or {}
    assert tap["master"] == "virbr1" and tap["mtu"] == 1400
    # the network's MTU sticks: a smaller port does not drag the bridge down with it
    assert (rb.link(ns, "virbr1") or {})["mtu"] == 1450
    slave = rb.slave_data(tap)
    assert (slave["learning"], slave["flood"]) == (True, True)
    assert rb.static_entries(ns) == []


def test_switching_mac_table_manager_converges(host: HostNet, ns: str, bridge: str) -> None:
    host.plug(libvirt_port())
    host.plug(PortSpec("vnet0", "virbr1", GUEST, "dom-1"))
    assert rb.static_entries(ns) == []
    assert rb.sysfs(ns, "virbr1/brif/vnet0/learning") == "1"
    host.plug(libvirt_port())
    assert len(rb.static_entries(ns, GUEST)) == 1
    assert rb.sysfs(ns, "virbr1/brif/vnet0/unicast_flood") == "0"


def test_tap_flags_and_owner(host: HostNet, ns: str, bridge: str) -> None:
    host.plug(libvirt_port("vnet2", owner_uid=1234, owner_gid=4321, multi_queue=True))
    host.plug(libvirt_port("vnet3", vnet_hdr=False))
    flags2 = int(rb.sysfs(ns, "vnet2/tun_flags"), 16)
    flags3 = int(rb.sysfs(ns, "vnet3/tun_flags"), 16)
    assert flags2 & IFF_TAP and flags2 & IFF_NO_PI and flags2 & IFF_VNET_HDR
    assert flags2 & IFF_MULTI_QUEUE
    assert flags3 & IFF_NO_PI and not flags3 & IFF_VNET_HDR and not flags3 & IFF_MULTI_QUEUE
    assert rb.sysfs(ns, "vnet2/owner") == "1234" and rb.sysfs(ns, "vnet2/group") == "4321"
    assert rb.sysfs(ns, "vnet3/owner") == "-1"
    data = rb.info_data(rb.link(ns, "vnet2") or {})
    assert (data["pi"], data["vnet_hdr"], data["multi_queue"], data["persist"]) == (
        False,
        True,
        True,
        True,
    )
    # a changed spec corrects the flags of our idle tap
    host.plug(libvirt_port("vnet3", vnet_hdr=True, owner_uid=77))
    flags3 = int(rb.sysfs(ns, "vnet3/tun_flags"), 16)
    assert flags3 & IFF_VNET_HDR and rb.sysfs(ns, "vnet3/owner") == "77"


def test_foreign_tap_is_never_touched(host: HostNet, ns: str, bridge: str) -> None:
    rb.ip(ns, "tuntap", "add", "vnet4", "mode", "tap")
    before = rb.link(ns, "vnet4")
    with pytest.raises(DeviceConflict, match="vnet4"):
        host.plug(libvirt_port("vnet4"))
    with pytest.raises(DeviceConflict):
        host.unplug("vnet4", "dom-1", "virbr1", GUEST)
    with pytest.raises(DeviceConflict):
        host.set_fdb("virbr1", "vnet4", GUEST, True)
    assert rb.link(ns, "vnet4") == before
    assert rb.static_entries(ns) == []


def test_other_owner_and_other_kind_conflict(host: HostNet, ns: str, bridge: str) -> None:
    host.plug(libvirt_port("vnet5"))
    with pytest.raises(DeviceConflict, match="dom-1"):
        host.plug(PortSpec("vnet5", "virbr1", GUEST, "dom-2"))
    # another port's tap of that name: dom-2's own is gone, dom-1's stays
    assert host.unplug("vnet5", "dom-2") is False
    with pytest.raises(DeviceConflict, match="is a bridge"):
        host.plug(PortSpec("virbr1", "virbr1", GUEST, "net-1"))
    assert rb.link(ns, "vnet5") is not None


def test_missing_bridge(host: HostNet, ns: str) -> None:
    with pytest.raises(BridgeMissing, match="virbr1"):
        host.plug(libvirt_port())
    assert rb.link(ns, "vnet0") is None


def test_bad_spec_is_refused(host: HostNet, bridge: str) -> None:
    with pytest.raises(KernelError, match="macTableManager"):
        host.plug(PortSpec("vnet0", "virbr1", GUEST, "dom-1", mac_table_manager="bogus"))
    with pytest.raises(KernelError, match="MAC"):
        host.plug(PortSpec("vnet0", "virbr1", "52:54:00", "dom-1"))
    with pytest.raises(KernelError, match="not a valid interface name"):
        host.plug(PortSpec("vnet%d", "virbr1", GUEST, "dom-1"))


def test_set_fdb_off_and_on(host: HostNet, ns: str, bridge: str) -> None:
    host.plug(libvirt_port())
    for _ in range(2):
        host.set_fdb("virbr1", "vnet0", GUEST, False)
        assert rb.static_entries(ns) == []
    for _ in range(2):
        host.set_fdb("virbr1", "vnet0", GUEST, True)
        assert len(rb.static_entries(ns, GUEST)) == 1
    # a paused guest's port is plugged without its entry, and stays so when replugged
    host.plug(libvirt_port(fdb=False))
    assert rb.static_entries(ns) == []
    assert rb.sysfs(ns, "virbr1/brif/vnet0/learning") == "0"
    with pytest.raises(KernelError, match="does not exist"):
        host.set_fdb("virbr1", "vnet9", GUEST, True)
    host.set_fdb("virbr1", "vnet9", GUEST, False)  # nothing to remove


def test_unplug_removes_fdb_entry_then_tap(host: HostNet, ns: str, bridge: str) -> None:
    host.plug(libvirt_port())
    monitor = rb.Monitor(ns)
    try:
        monitor.mark()  # the monitor is listening
        assert host.unplug("vnet0", "dom-1", "virbr1", GUEST) is True
        events = monitor.mark()  # everything the unplug caused
    finally:
        monitor.close()
    # the static entry goes first; only then is the tap closed (no UP) and deleted. Earlier
    # events about vnet0 still UP would be the kernel's deferred link-state work.
    fdb_gone = events.index(f"Deleted {GUEST} dev vnet0 master virbr1 static")
    tap_down = next(
        i
        for i, e in enumerate(events)
        if " vnet0: <" in e and (e.startswith("Deleted") or "UP" not in _flags(e))
    )
    assert fdb_gone < tap_down, events
    assert any(e.startswith("Deleted") and "vnet0:" in e for e in events)
    assert rb.link(ns, "vnet0") is None and rb.static_entries(ns) == []
    assert host.unplug("vnet0", "dom-1", "virbr1", GUEST) is False
    assert host.port_state("vnet0") is None


def _flags(event: str) -> list[str]:
    return event.split("<", 1)[1].split(">", 1)[0].split(",")


def test_owned_devices(host: HostNet, ns: str, bridge: str) -> None:
    rb.ip(ns, "tuntap", "add", "foreign0", "mode", "tap")
    host.plug(libvirt_port("vnet0"))
    host.plug(PortSpec("vnet1", "virbr1", "52:54:00:aa:bb:02", "dom-2"))
    assert sorted(host.owned_devices(), key=lambda d: d.name) == [
        OwnedDevice("virbr1", "bridge", "net-1"),
        OwnedDevice("vnet0", "tap", "dom-1"),
        OwnedDevice("vnet1", "tap", "dom-2"),
    ]
