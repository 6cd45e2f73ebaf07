"""A reconcile reads the links once (issue 12, item 4): its plug pass takes the taps that exist
from the dump of ``owned_devices`` instead of opening and reading each again, and still ends
with every tap as wanted: drift the dump shows is repaired, a tap deleted after the dump is
made again, a tap the dump does not know is plugged, a leftover limit goes."""

from __future__ import annotations

import dataclasses

import pytest

from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from tests.kernel.test_kernel_qos_scan import qdiscs, tc
from workers.kernel import BridgeSpec, HostNet, PortSpec

pytestmark = [pytest.mark.kernel, requires_root]


def specs(n: int, manager: str = "kernel") -> list[PortSpec]:
    return [
        PortSpec(
            f"vnrd{i}", "vnrdbr", f"52:54:00:52:00:{i:02x}", f"own-{i}", mac_table_manager=manager
        )
        for i in range(n)
    ]


def plugged(ns: str, taps: list[str]) -> dict[str, tuple[str | None, bool]]:
    found = rb.taps(ns)
    return {t: (found[t].get("master"), "UP" in found[t]["flags"]) for t in taps if t in found}


@pytest.mark.parametrize("manager", ["kernel", "libvirt"])
def test_a_reconcile_plug_pass_from_its_dump_ends_with_every_tap_as_wanted(
    host: HostNet, ns: str, manager: str
) -> None:
    host.ensure_bridge(BridgeSpec("vnrdbr", "net", mtu=1500, stp=False))
    wanted = specs(6, manager)
    assert host.plug_many(wanted[:5]) == [None] * 5
    # drift before the reconcile's dump: repaired from what the dump shows
    rb.ip(ns, "link", "set", "vnrd1", "nomaster")
    rb.ip(ns, "link", "set", "vnrd2", "down")
    tc(ns, "qdisc", "add", "dev", "vnrd3", "root", "handle", "1:", "htb")
    owned = {d.name for d in host.owned_devices()}
    assert {s.tap for s in wanted[:5]} <= owned
    # deleted between the dump and the plug pass: made again
    rb.ip(ns, "link", "del", "vnrd0")
    assert host.plug_many(wanted, check_qos=True) == [None] * 6  # vnrd5: not in the dump
    taps = [s.tap for s in wanted]
    assert plugged(ns, taps) == {t: ("vnrdbr", True) for t in taps}
    assert "htb" not in qdiscs(ns, "vnrd3")
    if manager == "libvirt":
        assert {e["mac"] for e in rb.static_entries(ns)} >= {s.guest_mac for s in wanted}
    # the dump serves one plug pass only: the next reads the kernel again
    rb.ip(ns, "link", "set", "vnrd4", "nomaster")
    assert host.plug_many(wanted, check_qos=True) == [None] * 6
    assert plugged(ns, taps)["vnrd4"] == ("vnrdbr", True)


def test_a_tap_the_dump_shows_with_other_tap_flags_is_made_again(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("vnrdbr", "net", mtu=1500, stp=False))
    wanted = specs(2)
    assert host.plug_many(wanted) == [None] * 2
    host.owned_devices()
    plain = [dataclasses.replace(s, vnet_hdr=False) for s in wanted]
    assert host.plug_many(plain, check_qos=True) == [None] * 2
    found = rb.taps(ns)
    assert not any(rb.info_data(found[s.tap]).get("vnet_hdr") for s in wanted)
    assert plugged(ns, [s.tap for s in wanted]) == {s.tap: ("vnrdbr", True) for s in wanted}
