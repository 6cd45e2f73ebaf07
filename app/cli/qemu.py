"""The QEMU arguments that attach a VM to virtnet's taps, from a domain as the API shows it."""

from __future__ import annotations

from typing import Any

from app.cli.client_api import ClientError

#: libvirt's <model type=...> names that are QEMU device names of their own
VIRTIO = "virtio-net-pci"


def device_model(model: str | None) -> str:
    return VIRTIO if model in (None, "virtio", "virtio-net") else model


def arguments(domain: dict[str, Any], *, vhost: bool) -> list[list[str]]:
    """One ``[-netdev, ..., -device, ...]`` list per interface, in the domain's order.

    The tap exists already (virtnet made it, persistent), so QEMU opens it by name with no
    scripts; its MAC is the guest's. ``vhost=on`` only where /dev/vhost-net exists; a port
    with queues gets a multiqueue tap and ``mq=on`` with 2N+2 vectors, as libvirt does.
    """
    name = domain.get("name")
    if domain.get("type") == "lxc":
        raise ClientError(
            f"domain {name!r} is a container (type lxc): its interfaces are veth pairs in "
            "its namespace, not taps for QEMU"
        )
    out: list[list[str]] = []
    for n, interface in enumerate(domain.get("interfaces", [])):
        live = interface.get("actual") or {}
        if not live.get("tap") or live.get("state") != "plugged":
            state = domain.get("status", {}).get("state")
            raise ClientError(
                f"interface {interface.get('mac')} of domain {name!r} has no plugged tap "
                f"(the domain is {state}); start the domain first",
                hint=f"virtnet start {name}",
            )
        netdev = [f"tap,id=net{n}", f"ifname={live['tap']}", "script=no", "downscript=no"]
        if not live.get("vnet_hdr", True):
            netdev.append("vnet_hdr=off")
        if vhost:
            netdev.append("vhost=on")
        queues = live.get("queues") or 1
        model = device_model(interface.get("model"))
        device = [model, f"netdev=net{n}", f"mac={interface['mac']}"]
        if queues > 1:
            netdev.append(f"queues={queues}")
            if model == VIRTIO:
                device += ["mq=on", f"vectors={2 * queues + 2}"]
        if model == VIRTIO and live.get("mtu"):
            device.append(f"host_mtu={live['mtu']}")
        out.append(["-netdev", ",".join(netdev), "-device", ",".join(device)])
    return out
