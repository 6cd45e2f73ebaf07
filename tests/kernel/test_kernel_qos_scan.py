"""The reconcile's quick QoS check (workers/kernel/qos_scan.py): ports it skips are exactly
those with nothing to repair; a leftover limit on any other is still found and removed."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import BridgeSpec, HostNet, PortSpec, qos_scan
from workers.kernel.qos import ifb_name
from workers.kernel.specs import Bandwidth, Rate

pytestmark = [pytest.mark.kernel, requires_root]


def ports(n: int) -> list[PortSpec]:
    return [PortSpec(f"vnqs{i}", "vnqsbr", f"52:54:00:51:00:{i:02x}", f"own-{i}") for i in range(n)]


def tc(ns: str, *argv: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "tc", *argv], check=True, capture_output=True, text=True
    ).stdout


def qdiscs(ns: str, dev: str) -> list[str]:
    return [q["kind"] for q in json.loads(tc(ns, "-json", "qdisc", "show", "dev", dev))]


def test_only_ports_without_any_tc_state_are_skipped(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("vnqsbr", "net", mtu=1500, stp=False))
    specs = ports(4)
    assert host.plug_many(specs) == [None] * 4
    assert qos_scan.bare(host._sock, specs) == {s.tap for s in specs}
    # left behind by hand or by a run that died: an ingress policer, an htb root, an IFB
    rb.ip(ns, "link", "set", "vnqs1", "up")
    tc(ns, "qdisc", "add", "dev", "vnqs1", "ingress")
    tc(ns, "qdisc", "add", "dev", "vnqs2", "root", "handle", "1:", "htb")
    rb.ip(ns, "link", "add", ifb_name("own-3"), "type", "ifb")
    assert qos_scan.bare(host._sock, specs) == {"vnqs0"}
    gone = PortSpec("vnqsgone", "vnqsbr", "52:54:00:51:01:00", "x")
    assert qos_scan.bare(host._sock, [gone]) == set()  # the slow path reports it missing
    assert qos_scan.wants_no_qos(specs[0])
    assert not qos_scan.wants_no_qos(dataclasses.replace(specs[0], bandwidth=Bandwidth(Rate(1))))


def test_reconcile_still_removes_a_leftover_limit(host: HostNet, ns: str) -> None:
    host.ensure_bridge(BridgeSpec("vnqsbr", "net", mtu=1500, stp=False))
    specs = ports(3)
    limited = dataclasses.replace(specs[2], qos=True, bandwidth=Bandwidth(Rate(1000)))
    assert host.plug_many([*specs[:2], limited]) == [None] * 3
    assert "htb" in qdiscs(ns, "vnqs2")
    # the limit is no longer wanted: the reconcile's pass (check_qos) takes it away
    assert host.plug_many(specs, check_qos=True) == [None] * 3
    assert "htb" not in qdiscs(ns, "vnqs2")
    assert host.outbound_modes["vnqs0"] is None and host.outbound_modes["vnqs2"] is None
    assert qos_scan.bare(host._sock, specs) == {s.tap for s in specs}
