from __future__ import annotations

import os
import subprocess

import pytest

from tests import netns
from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import (
    BridgeMissing,
    BridgeSpec,
    DeviceConflict,
    HostNet,
    KernelError,
    NamespaceMissing,
    OwnedDevice,
)

pytestmark = [pytest.mark.kernel, requires_root]


def test_probe_reads_this_host(host: HostNet, ns: str) -> None:
    caps = host.probe()
    assert caps.kernel_release == os.uname().release
    assert caps.tun is True
    assert caps.net_admin is True
    assert set(rb.links(ns)) == {"lo"}  # the probes' throwaway devices are gone
    # iproute2's verdict on the same question
    made = subprocess.run(
        ["ip", "-n", ns, "link", "add", "brv", "type", "bridge", "vlan_filtering", "1"],
        capture_output=True,
    )
    assert caps.vlan_filtering is (made.returncode == 0)
    rb.ip(ns, "link", "add", "brq", "type", "bridge")
    made = subprocess.run(
        ["ip", "-n", ns, "link", "add", "link", "brq", "name", "brq.5", "type", "vlan", "id", "5"],
        capture_output=True,
    )
    assert caps.vlan_8021q is (made.returncode == 0)


def test_create_bridge_with_attributes_twice(host: HostNet, ns: str) -> None:
    spec = BridgeSpec("virbr1", "net-1", mac="52:54:00:0a:0b:0c", mtu=1450, stp=False, delay=3)
    first = host.ensure_bridge(spec)
    second = host.ensure_bridge(spec)
    assert first.created and not second.created
    assert first.degraded is None and second.degraded is None
    link = rb.link(ns, "virbr1")
    assert link is not None
    assert link["address"] == "52:54:00:0a:0b:0c"
    assert link["mtu"] == 1450
    assert "UP" in link["flags"]
    assert link["ifalias"] == "virtnet:net-1"
    data = rb.info_data(link)
    assert data["stp_state"] == 0
    assert data["forward_delay"] == 300
    assert rb.sysfs(ns, "virbr1/bridge/forward_delay") == "300"
    assert list(rb.links(ns)) == ["lo", "virbr1"]


def test_stp_clamps_forward_delay(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr2", "net-2", stp=True, delay=0))
    data = rb.info_data(rb.link(ns, "virbr2") or {})
    assert data["stp_state"] == 1
    assert data["forward_delay"] == 200  # the kernel's minimum with STP on: 2 s
    # turning STP off lets the delay drop to 0 (STP state is changed before the delay)
    host.ensure_bridge(BridgeSpec("virbr2", "net-2", stp=False, delay=0))
    data = rb.info_data(rb.link(ns, "virbr2") or {})
    assert (data["stp_state"], data["forward_delay"]) == (0, 0)
    host.ensure_bridge(BridgeSpec("virbr2", "net-2", stp=True, delay=5))
    data = rb.info_data(rb.link(ns, "virbr2") or {})
    assert (data["stp_state"], data["forward_delay"]) == (1, 500)


def test_existing_bridge_is_corrected(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr3", "net-3", mtu=1500, stp=False))
    rb.ip(ns, "link", "set", "virbr3", "down", "mtu", "1400", "address", "52:54:00:00:00:99")
    result = host.ensure_bridge(BridgeSpec("virbr3", "net-3", mac="52:54:00:00:00:01", mtu=9000))
    assert not result.created
    link = rb.link(ns, "virbr3") or {}
    assert (link["mtu"], link["address"]) == (9000, "52:54:00:00:00:01")
    assert "UP" in link["flags"]
    assert rb.info_data(link)["stp_state"] == 1


def test_vlan_filtering_degrades_instead_of_failing(host: HostNet, ns: str) -> None:
    supported = host.probe().vlan_filtering
    result = host.ensure_bridge(BridgeSpec("virbr4", "net-4", stp=False, vlan_filtering=True))
    again = host.ensure_bridge(BridgeSpec("virbr4", "net-4", stp=False, vlan_filtering=True))
    link = rb.link(ns, "virbr4") or {}
    assert link["ifalias"] == "virtnet:net-4"
    assert result.vlan_filtering is supported and again.vlan_filtering is supported
    if supported:
        assert result.degraded is None
        assert rb.info_data(link)["vlan_filtering"] == 1
    else:  # this project's kernel: no CONFIG_BRIDGE_VLAN_FILTERING
        assert result.degraded and "VLAN filtering" in result.degraded
        assert "promiscuous" in result.degraded
        assert again.degraded == result.degraded
        assert rb.info_data(link).get("vlan_filtering", 0) == 0


def test_remove_only_our_bridge(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("virbr5", "net-5", stp=False))
    with pytest.raises(DeviceConflict, match="net-5"):
        host.remove_bridge("virbr5", "net-other")
    assert rb.link(ns, "virbr5") is not None
    assert host.remove_bridge("virbr5", "net-5") is True
    assert rb.link(ns, "virbr5") is None
    assert host.remove_bridge("virbr5", "net-5") is False


def test_foreign_bridge_is_never_touched(host: HostNet, ns: str) -> None:
    rb.ip(ns, "link", "add", "br-ext", "mtu", "1400", "type", "bridge", "stp_state", "0")
    before = rb.link(ns, "br-ext")
    with pytest.raises(DeviceConflict, match="did not create"):
        host.ensure_bridge(BridgeSpec("br-ext", "net-6", mtu=9000, stp=True))
    with pytest.raises(DeviceConflict):
        host.remove_bridge("br-ext", "net-6")
    after = rb.link(ns, "br-ext")
    assert after is not None and before is not None
    for key in ("mtu", "address", "flags", "ifindex"):
        assert after[key] == before[key]
    assert "ifalias" not in after
    assert rb.info_data(after)["stp_state"] == 0
    host.check_bridge("br-ext")  # an external bridge is fine for forward mode 'bridge'


def test_device_of_other_kind_conflicts(host: HostNet, ns: str) -> None:
    rb.ip(ns, "link", "add", "virbr7", "type", "veth", "peer", "name", "virbr7p")
    with pytest.raises(DeviceConflict):
        host.ensure_bridge(BridgeSpec("virbr7", "net-7"))
    with pytest.raises(BridgeMissing, match="not a bridge"):
        host.check_bridge("virbr7")
    # even with virtnet's alias, a device of another kind is not adopted
    rb.ip(ns, "tuntap", "add", "virbr9", "mode", "tap")
    rb.ip(ns, "link", "set", "virbr9", "alias", "virtnet:net-9")
    with pytest.raises(DeviceConflict, match="is a tap, not a bridge"):
        host.ensure_bridge(BridgeSpec("virbr9", "net-9"))
    with pytest.raises(DeviceConflict):
        host.remove_bridge("virbr9", "net-9")
    links = rb.links(ns)
    assert links["virbr7"]["linkinfo"]["info_kind"] == "veth"
    assert links["virbr9"]["linkinfo"]["info_kind"] == "tun"


def test_check_bridge_missing(host: HostNet) -> None:
    with pytest.raises(BridgeMissing, match="br-nowhere does not exist"):
        host.check_bridge("br-nowhere")


def test_invalid_names_are_refused(host: HostNet) -> None:
    with pytest.raises(KernelError, match="not a valid interface name"):
        host.ensure_bridge(BridgeSpec("a-name-much-too-long", "net"))


def test_owned_devices_lists_only_ours(host: HostNet, ns: str) -> None:
    rb.ip(ns, "link", "add", "br-ext", "type", "bridge")
    rb.ip(ns, "link", "add", "br-alias", "alias", "someone else", "type", "bridge")
    host.ensure_bridge(BridgeSpec("virbr8", "net-8", stp=False))
    assert host.owned_devices() == [OwnedDevice("virbr8", "bridge", "net-8")]


def test_missing_namespace_is_not_created() -> None:
    name = netns.new_name("missing")
    with pytest.raises(NamespaceMissing, match=name):
        HostNet(name)
    assert not os.path.exists(os.path.join(netns.RUN_DIR, name))
