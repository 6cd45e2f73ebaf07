"""The host side of overlay networks: desired state (a dict from the control plane) to kernel
calls, and what the host reports back."""

from __future__ import annotations

import logging
from typing import Any

from workers.kernel import KernelError, OwnedDevice
from workers.kernel.interface import HostNetwork
from workers.kernel.vxlan import OVERHEAD, OverlaySpec, device_name

log = logging.getLogger("virtnet.worker")
DEFAULT_UNDERLAY_MTU = 1500


def overhead(underlay: str | None) -> int:
    return OVERHEAD[6] if underlay and ":" in underlay else OVERHEAD[4]


def with_mtu(network: dict[str, Any], underlay: str | None, underlay_mtu: int | None) -> Any:
    """The network spec with the bridge MTU leaving room for VXLAN's encapsulation."""
    room = (underlay_mtu or DEFAULT_UNDERLAY_MTU) - overhead(underlay)
    asked = network.get("mtu")
    if asked is not None and asked > room:
        raise KernelError(
            f"network {network['name']}: MTU {asked} does not fit this host's underlay "
            f"(MTU {underlay_mtu or DEFAULT_UNDERLAY_MTU}, VXLAN adds {overhead(underlay)} "
            f"bytes): at most {room}"
        )
    return {**network, "mtu": asked or room}


def spec(state: dict[str, Any]) -> OverlaySpec:
    return OverlaySpec(
        owner=state["uuid"],
        bridge=state["bridge"],
        vni=state["vni"],
        port=state["port"],
        local=state["local"],
        flood=state["flood"],
        peers=tuple(state["peers"]),
        remote=tuple((mac, dst) for mac, dst in state["remote"]),
    )


def apply(
    net: HostNetwork, state: dict[str, Any], underlay: str | None, *, full: bool
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "network_id": state["network_id"],
        "generation": state["generation"],
        "digest": state["digest"],
        "remote_entries": 0,
        "error": None,
        "requests": 0,
    }
    try:
        if not underlay:
            raise KernelError(
                "this host has no underlay address: start its worker with --underlay ADDRESS"
            )
        if state["local"] != underlay:
            raise KernelError(
                f"the overlay state names underlay {state['local']}, but this host's is "
                f"{underlay}; waiting for the new state"
            )
        result = net.ensure_overlay(spec(state), tuple(state["allowed"]), full=full)
        report.update(remote_entries=result.remote_entries, requests=result.requests)
    except KernelError as exc:
        report["error"] = str(exc)
    except Exception as exc:  # report every failure; a silent host is worse
        log.exception("overlay of network %s failed", state.get("name"))
        report["error"] = f"unexpected error: {exc}"
    return report


def remove_leftovers(
    net: HostNetwork, owned: list[OwnedDevice], networks: list[dict[str, Any]]
) -> None:
    """Drop VXLAN devices and firewall chains of overlays this host should no longer have."""
    wanted = {n["overlay"]["vni"] for n in networks if n.get("overlay")}
    for device in owned:
        if device.kind == "vxlan" and device.name.startswith("vxn"):
            vni = int(device.name[3:]) if device.name[3:].isdigit() else None
            if vni is not None and vni not in wanted and device.name == device_name(vni):
                net.remove_overlay(vni, owner=device.owner)
    for vni in net.overlay_chains():
        if vni not in wanted:
            net.remove_overlay(vni, owner="")
