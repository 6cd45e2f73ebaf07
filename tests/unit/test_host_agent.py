"""The host agent on the fake kernel: desired state in, kernel state and reports out.

The namespace tests (tests/kernel, tests/integration) prove the same against the real
kernel; these run in milliseconds and need no root.
"""

from __future__ import annotations

from typing import Any

from app.celery_app import CONTROL_QUEUE, REPORT_PORTS, REPORT_REALISATION
from app.host_identity import SIGNATURE, host_key, verified_host
from workers.kernel.fake import FakeHostNet
from workers.tasks import HostAgent

SECRET = "unit-test-report-secret"
OWNER = "5b1e7f2c-7d0e-4f0a-9c3b-0e1d2c3b4a59"
NETWORK = {
    "network_id": 1,
    "name": "lab",
    "uuid": OWNER,
    "generation": 1,
    "mode": "nat",
    "bridge": "virbr1",
    "mac_table_manager": "kernel",
}


class Reports(list[tuple[str, dict[str, Any]]]):
    def __call__(self, name: str, kwargs: dict[str, Any], queue: str) -> None:
        assert queue == CONTROL_QUEUE
        assert verified_host(SECRET, name, kwargs) == "h1"  # signed with h1's own key
        self.append((name, {k: v for k, v in kwargs.items() if k != SIGNATURE}))


def agent() -> tuple[HostAgent, FakeHostNet, Reports]:
    net, reports = FakeHostNet(), Reports()
    key = host_key(SECRET, "h1")
    return (
        HostAgent(network=lambda: net, send=reports, host="h1", worker_id="w1", key=key),
        net,
        reports,
    )


def port(n: int, *, present: bool = True, generation: int = 1) -> dict[str, Any]:
    return {
        "port_id": f"00000000-0000-4000-8000-00000000000{n}",
        "generation": generation,
        "present": present,
        "tap": f"vnet{n}",
        "bridge": "virbr1",
        "guest_mac": f"52:54:00:00:00:0{n}",
        "mac_table_manager": "libvirt",
        "fdb": True,
        "mtu": None,
    }


def test_a_network_is_realised_and_reported_active_or_degraded() -> None:
    host, net, reports = agent()
    host.realise({**NETWORK, "mac_table_manager": "libvirt"})
    assert net.devices["virbr1"].kind == "bridge"
    assert reports[-1][1]["state"] == "degraded"  # this fake kernel has no VLAN filtering
    assert "no bridge VLAN filtering" in reports[-1][1]["error"]
    reports.clear()
    host.realise(NETWORK)
    assert reports == [
        (
            REPORT_REALISATION,
            {
                "host": "h1",
                "network_id": 1,
                "generation": 1,
                "state": "active",
                "error": None,
                "error_code": None,
            },
        )
    ]


def test_ports_are_plugged_once_however_often_they_are_sent() -> None:
    host, net, reports = agent()
    host.realise(NETWORK)
    for _ in range(2):
        host.apply_ports([port(1), port(2)])
    state = net.port_state("vnet1")
    assert state is not None and state["master"] == "virbr1"
    assert state["static_fdb"] == ["52:54:00:00:00:01"] and state["learning"] is False
    name, report = reports[-1]
    assert name == REPORT_PORTS
    assert [(r["tap"], r["state"], r["error"]) for r in report["results"]] == [
        ("vnet1", "plugged", None),
        ("vnet2", "plugged", None),
    ]


def test_a_port_that_cannot_be_plugged_is_reported_with_why() -> None:
    host, net, reports = agent()
    net.add_foreign("vnet1")
    host.apply_ports([port(1)])
    (result,) = reports[-1][1]["results"]
    assert result["state"] == "failed" and "virbr1" in result["error"]
    assert result["error_code"] == "bridge_missing"
    host.realise(NETWORK)
    host.apply_ports([port(1)])
    (result,) = reports[-1][1]["results"]
    assert result["state"] == "failed" and "virtnet did not create it" in result["error"]
    assert result["error_code"] == "device_conflict"
    assert net.devices["vnet1"].master is None  # a foreign device is never adopted


def test_unplug_and_reconcile_leave_only_the_desired_state() -> None:
    host, net, reports = agent()
    host.realise(NETWORK)
    host.apply_ports([port(1), port(2), port(3)])
    net.add_foreign("eth9")
    host.apply_ports([port(3, present=False, generation=2)])
    assert "vnet3" not in net.devices
    host.reconcile([NETWORK], [port(1)])
    assert sorted(net.devices) == ["eth9", "virbr1", "vnet1"]
    host.reconcile([], [])
    assert sorted(net.devices) == ["eth9"]
