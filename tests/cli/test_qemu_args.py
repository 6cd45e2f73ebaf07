"""`virtnet qemu-args`: the exact QEMU arguments for a running domain's taps (pure part)."""

from __future__ import annotations

from typing import Any

import pytest

from app.cli import qemu
from app.cli.client_api import ClientError


def domain(*interfaces: dict[str, Any], kind: str = "kvm") -> dict[str, Any]:
    return {
        "name": "vm1",
        "type": kind,
        "interfaces": list(interfaces),
        "status": {"state": "running"},
    }


def iface(mac: str, tap: str, **live: Any) -> dict[str, Any]:
    model = live.pop("model", None)
    actual = {"tap": tap, "state": "plugged", "device": "tap", "vnet_hdr": True, **live}
    return {"type": "network", "mac": mac, "model": model, "actual": actual}


def test_one_line_per_interface_in_order() -> None:
    lines = qemu.arguments(
        domain(
            iface("52:54:00:00:00:01", "vnet0", mtu=9000),
            iface("52:54:00:00:00:02", "vnet3", queues=4),
            iface("52:54:00:00:00:03", "vnet4", model="e1000", mtu=1400, vnet_hdr=False),
        ),
        vhost=True,
    )
    assert lines == [
        [
            "-netdev", "tap,id=net0,ifname=vnet0,script=no,downscript=no,vhost=on",
            "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,host_mtu=9000",
        ],
        [
            "-netdev", "tap,id=net1,ifname=vnet3,script=no,downscript=no,vhost=on,queues=4",
            "-device", "virtio-net-pci,netdev=net1,mac=52:54:00:00:00:02,mq=on,vectors=10",
        ],
        [
            "-netdev", "tap,id=net2,ifname=vnet4,script=no,downscript=no,vnet_hdr=off,vhost=on",
            "-device", "e1000,netdev=net2,mac=52:54:00:00:00:03",
        ],
    ]  # fmt: skip
    plain = qemu.arguments(domain(iface("52:54:00:00:00:01", "vnet0")), vhost=False)
    assert plain[0][1] == "tap,id=net0,ifname=vnet0,script=no,downscript=no"


def test_no_arguments_for_a_container_or_a_domain_not_running() -> None:
    with pytest.raises(ClientError, match="container"):
        qemu.arguments(domain(kind="lxc"), vhost=False)
    stopped = domain({"type": "network", "mac": "52:54:00:00:00:01", "actual": None})
    stopped["status"]["state"] = "shut_off"
    with pytest.raises(ClientError, match=r"shut_off\); start the domain first"):
        qemu.arguments(stopped, vhost=False)
