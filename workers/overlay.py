"""The host side of overlay networks: desired state (app.messages.OverlayState) to kernel
calls, and what the host reports back."""

from __future__ import annotations

import logging

from app.messages import NetworkSpec, OverlayReport, OverlayState
from workers.kernel import KernelError, OwnedDevice
from workers.kernel.interface import HostNetwork
from workers.kernel.vxlan import OVERHEAD, OverlaySpec, device_name
from workers.wire import error_code, error_text

log = logging.getLogger("virtnet.worker")
DEFAULT_UNDERLAY_MTU = 1500


def overhead(underlay: str | None) -> int:
    return OVERHEAD[6] if underlay and ":" in underlay else OVERHEAD[4]


def with_mtu(network: NetworkSpec, underlay: str | None, underlay_mtu: int | None) -> NetworkSpec:
    """The network spec with the bridge MTU leaving room for VXLAN's encapsulation."""
    room = (underlay_mtu or DEFAULT_UNDERLAY_MTU) - overhead(underlay)
    asked = network.mtu
    if asked is not None and asked > room:
        raise KernelError(
            f"network {network.name}: MTU {asked} does not fit this host's underlay "
            f"(MTU {underlay_mtu or DEFAULT_UNDERLAY_MTU}, VXLAN adds {overhead(underlay)} "
            f"bytes): at most {room}"
        )
    return network.model_copy(update={"mtu": asked or room})


def spec(state: OverlayState) -> OverlaySpec:
    return OverlaySpec(
        owner=state.uuid,
        bridge=state.bridge,
        vni=state.vni,
        port=state.port,
        local=state.local or "",
        flood=state.flood,
        peers=tuple(state.peers),
        remote=tuple((mac, dst) for mac, dst in state.remote),
    )


def apply(
    net: HostNetwork, state: OverlayState, underlay: str | None, *, host: str, full: bool
) -> OverlayReport:
    entries, requests, error, code = 0, 0, None, None
    try:
        if not underlay:
            raise KernelError(
                "this host has no underlay address: start its worker with --underlay ADDRESS"
            )
        if state.local != underlay:
            raise KernelError(
                f"the overlay state names underlay {state.local}, but this host's is "
                f"{underlay}; waiting for the new state"
            )
        result = net.ensure_overlay(spec(state), tuple(state.allowed), full=full)
        entries, requests = result.remote_entries, result.requests
    except Exception as exc:  # report every failure; a silent host is worse
        if not isinstance(exc, KernelError):
            log.exception("overlay of network %s failed", state.name)
        error, code = error_text(exc), error_code(exc)
    return OverlayReport(
        host=host,
        network_id=state.network_id,
        generation=state.generation,
        digest=state.digest,
        remote_entries=entries,
        requests=requests,
        error=error,
        error_code=code,
    )


def remove_leftovers(
    net: HostNetwork, owned: list[OwnedDevice], networks: list[NetworkSpec]
) -> None:
    """Drop VXLAN devices and firewall chains of overlays this host should no longer have."""
    wanted = {n.overlay.vni for n in networks if n.overlay is not None}
    for device in owned:
        if device.kind == "vxlan" and device.name.startswith("vxn"):
            vni = int(device.name[3:]) if device.name[3:].isdigit() else None
            if vni is not None and vni not in wanted and device.name == device_name(vni):
                net.remove_overlay(vni, owner=device.owner)
    for vni in net.overlay_chains():
        if vni not in wanted:
            net.remove_overlay(vni, owner="")
