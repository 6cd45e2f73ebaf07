"""The overlay's kernel layer in one namespace: the VXLAN device and its written table, read
back with iproute2 and nft, converging from any starting point."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import netns
from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, DeviceConflict, HostNet
from workers.kernel.specs import CREATING_GROUP
from workers.kernel.vxlan import OverlaySpec

pytestmark = [pytest.mark.kernel, requires_root]
LOCAL, P1, P2 = "10.232.0.1", "10.232.0.2", "10.232.0.3"
M1, M2 = "52:54:00:00:0e:01", "52:54:00:00:0e:02"


def table(ns: str) -> set[tuple[str, str, str]]:
    """(mac, dst or 'master', state) of every entry on vxn9 except its own address."""
    out = set()
    for e in rb.fdb(ns):
        if e.get("ifname") != "vxn9" or e.get("state") == "permanent" and "master" in e:
            continue
        out.add((e["mac"], e.get("dst", "master"), e.get("state", "")))
    return out


def chain(ns: str) -> list[dict[str, Any]]:
    rules = json.loads(netns.run(ns, "nft", "-j", "list", "ruleset").stdout or "{}")
    return [i["rule"] for i in rules.get("nftables", []) if "rule" in i]


@pytest.fixture
def overlay_host(host: HostNet, ns: str) -> HostNet:
    rb.ip(ns, "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
    rb.ip(ns, "addr", "add", f"{LOCAL}/24", "dev", "ul0")
    rb.ip(ns, "link", "set", "ul0", "up")
    host.ensure_bridge(BridgeSpec("vbr9", "net-9", stp=False, mtu=1450))
    return host


def spec(**kw: Any) -> OverlaySpec:
    base: dict[str, Any] = dict(
        owner="net-9", bridge="vbr9", vni=9, port=4789, local=LOCAL, flood=False
    )
    return OverlaySpec(**{**base, **kw})


def test_table_converges_and_repeats_cost_nothing(overlay_host: HostNet, ns: str) -> None:
    host = overlay_host
    assert host.underlay_mtu(LOCAL) == 1500
    first = host.ensure_overlay(spec(peers=(P1,), remote=((M1, P1),)), (LOCAL, P1))
    assert first.created and first.remote_entries == 1
    assert table(ns) == {
        ("00:00:00:00:00:00", P1, "permanent"),
        (M1, P1, "permanent"),
        (M1, "master", "static"),
    }
    link = rb.link(ns, "vxn9")
    assert link is not None and link["mtu"] == 1450 and link["master"] == "vbr9"
    assert rb.info_data(link)["learning"] is False
    assert (rb.slave_data(link)["learning"], rb.slave_data(link)["flood"]) == (False, False)
    again = host.ensure_overlay(spec(peers=(P1,), remote=((M1, P1),)), (LOCAL, P1))
    assert (again.created, again.requests) == (False, 0)
    # the guest moved to P2's host, a second guest appeared there, P1 has no port any more
    moved = spec(peers=(P2,), remote=((M1, P2), (M2, P2)))
    assert host.ensure_overlay(moved, (LOCAL, P1, P2)).requests == 6 + 1  # + firewall
    want = {("00:00:00:00:00:00", P2, "permanent"), (M1, P2, "permanent"), (M2, P2, "permanent")}
    want |= {(M1, "master", "static"), (M2, "master", "static")}
    assert table(ns) == want
    # a fresh HostNet (a restarted worker) reads the table back and changes nothing
    with HostNet(ns) as fresh:
        assert fresh.ensure_overlay(moved, (LOCAL, P1, P2), full=True).remote_entries == 2
    assert table(ns) == want
    rules = chain(ns)
    assert len(rules) == 2 and "drop" in json.dumps(rules[-1])
    assert host.remove_overlay(9, "net-9") is True
    assert rb.link(ns, "vxn9") is None and chain(ns) == []
    assert host.remove_overlay(9, "net-9") is False  # twice: nothing left to do


def test_half_made_device_is_finished_and_a_foreign_one_left_alone(
    overlay_host: HostNet, ns: str
) -> None:
    # a worker killed between creating the device and labelling it
    rb.ip(ns, "link", "add", "vxn9", "group", str(CREATING_GROUP), "type", "vxlan", "id", "9",
          "local", LOCAL, "dstport", "4789")  # fmt: skip
    assert overlay_host.ensure_overlay(spec(), (LOCAL,)).created
    assert rb.link(ns, "vxn9")["ifalias"] == "virtnet:net-9"
    overlay_host.remove_overlay(9, "net-9")
    rb.ip(ns, "link", "add", "vxn9", "type", "vxlan", "id", "9", "local", LOCAL, "dstport", "4789")
    with pytest.raises(DeviceConflict):
        overlay_host.ensure_overlay(spec(), (LOCAL,))
    with pytest.raises(DeviceConflict):
        overlay_host.remove_overlay(9, "net-9")
    assert rb.link(ns, "vxn9") is not None
