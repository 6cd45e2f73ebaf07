"""Reconcile finds leftovers by name AND owner: a tap of a deleted port goes even when a new
port reuses its name, and the new port is plugged once the name is free (issue 10, item 2)."""

from __future__ import annotations

from typing import Any

import pytest

from app.messages import Message
from tests.kernel import readback as rb
from tests.kernel.conftest import requires_root
from workers.kernel import HostNet, PortSpec
from workers.tasks import HostAgent

pytestmark = [pytest.mark.kernel, requires_root]

NETWORK = {
    "network_id": 1,
    "name": "lab",
    "uuid": "5b1e7f2c-7d0e-4f0a-9c3b-0e1d2c3b4a60",
    "generation": 1,
    "mode": "none",
    "bridge": "vnrc0",
    "stp": False,
    "mac_table_manager": "libvirt",
}


class Agent(HostAgent):
    """The host worker's logic on a real HostNet, its reports kept instead of sent."""

    def __init__(self, net: HostNet) -> None:
        super().__init__(
            network=lambda: net, send=lambda *_: None, host="h1", worker_id="test", key="test"
        )
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, name: str, report: Message) -> None:
        self.sent.append((name, report.wire()))


def wanted(tap: str, owner: str, mac: str) -> dict[str, Any]:
    return {
        "port_id": owner,
        "owner_uuid": "dom-" + owner,
        "generation": 3,
        "present": True,
        "tap": tap,
        "bridge": "vnrc0",
        "guest_mac": mac,
        "mac_table_manager": "libvirt",
        "fdb": True,
    }


def test_a_reused_tap_name_of_another_owner_is_replaced(host: HostNet, ns: str) -> None:
    agent = Agent(host)
    agent.realise(NETWORK)
    # left by ports deleted while the worker was away: vnet0's name is now a new port's
    host.plug_many(
        [
            PortSpec(
                "vnet0", "vnrc0", "52:54:00:ee:00:01", "deleted-a", mac_table_manager="libvirt"
            ),
            PortSpec(
                "vnet1", "vnrc0", "52:54:00:ee:00:02", "deleted-b", mac_table_manager="libvirt"
            ),
            PortSpec("vnet2", "vnrc0", "52:54:00:ee:00:03", "kept", mac_table_manager="libvirt"),
        ]
    )
    index = rb.links(ns)["vnet2"]["ifindex"]
    agent.reconcile(
        [NETWORK],
        [
            wanted("vnet0", "new-port", "52:54:00:ee:00:09"),
            wanted("vnet2", "kept", "52:54:00:ee:00:03"),
        ],
    )
    links = rb.links(ns)
    taps = {n: link for n, link in links.items() if n.startswith("vnet")}
    assert sorted(taps) == ["vnet0", "vnet2"]
    assert taps["vnet0"]["ifalias"] == "virtnet:new-port"
    assert taps["vnet0"]["master"] == "vnrc0" and "UP" in taps["vnet0"]["flags"]
    assert taps["vnet2"]["ifindex"] == index  # the wanted one with its own owner is untouched
    assert [e["ifname"] for e in rb.static_entries(ns, "52:54:00:ee:00:09")] == ["vnet0"]
    assert not rb.static_entries(ns, "52:54:00:ee:00:01")
    assert not rb.static_entries(ns, "52:54:00:ee:00:02")
    ports = [kw for name, kw in agent.sent if "results" in kw][-1]["results"]
    assert {r["tap"]: r["state"] for r in ports} == {"vnet0": "plugged", "vnet2": "plugged"}
