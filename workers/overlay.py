"""The host side of overlay networks: desired state (app.messages.OverlayState, or an
OverlayDelta on top of the one held) to kernel calls, and what the host reports back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.messages import NetworkSpec, OverlayDelta, OverlayReport, OverlayState
from app.messages.overlay import add_sums, entry_hash, remote_sum
from workers.kernel import KernelError, OwnedDevice
from workers.kernel.interface import HostNetwork
from workers.kernel.vxlan import OVERHEAD, OverlaySpec, device_name
from workers.wire import error_code, error_text

log = logging.getLogger("virtnet.worker")
#: seconds before a host that asked for an overlay's whole state (and got none) asks again
ASK_AGAIN = 1.0
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


@dataclass(frozen=True)
class Held:
    """The overlay state a host last applied, whole: what the next delta builds on."""

    state: OverlayState
    #: MAC -> its remote entry's destination
    remote: dict[str, str]
    #: the sum of the entries' hashes (app.messages.overlay.remote_sum)
    total: int


class Tables:
    """Each overlay network's state as this host last applied it, so that a change arrives
    as the few entries it touches (OverlayDelta), checked against the whole state's digest.

    Only in memory: a restarted worker holds nothing, and its first delta asks for the
    whole state, as does a delta that does not fit (one before it was lost)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._held: dict[int, Held] = {}
        #: network id -> when this host last asked for its whole state: deltas queued
        #: behind a lost one (or before a restart) ask once, not each
        self._asked: dict[int, float] = {}
        self._clock = clock

    def held(self, network_id: int) -> OverlayState | None:
        held = self._held.get(network_id)
        return held.state if held is not None else None

    def forget(self, network_id: int) -> None:
        self._held.pop(network_id, None)
        self._asked.pop(network_id, None)

    def full(
        self,
        net: HostNetwork,
        state: OverlayState,
        underlay: str | None,
        *,
        host: str,
        full: bool = False,
    ) -> OverlayReport:
        """Apply a whole state (a full one reads the kernel back first)."""
        held = Held(state, dict(state.remote), remote_sum(state.remote))
        if state.digest_with(held.total) != state.digest:  # a sender of another version?
            log.warning("overlay of network %s: the digest sent is not the state's", state.name)
        return self._apply(net, held, underlay, host=host, full=full)

    def delta(
        self, net: HostNetwork, delta: OverlayDelta, underlay: str | None, *, host: str
    ) -> OverlayReport:
        """Apply a delta to the state held, if the result is the state it was made from."""
        held = self._held.get(delta.network_id)
        new = _patched(held, delta) if held is not None else None
        if new is None:
            now = self._clock()
            ask = now - self._asked.get(delta.network_id, -ASK_AGAIN) >= ASK_AGAIN
            if ask:
                self._asked[delta.network_id] = now
            log.warning(
                "overlay of network %s: a change does not fit the table held here (a message "
                "was lost, or this worker restarted); asking for the whole table",
                delta.name,
            )
            return OverlayReport(
                host=host,
                network_id=delta.network_id,
                generation=delta.generation,
                digest=held.state.digest if held is not None else None,
                remote_entries=len(held.remote) if held is not None else 0,
                resync=ask,
            )
        return self._apply(net, new, underlay, host=host, full=False)

    def _apply(
        self, net: HostNetwork, held: Held, underlay: str | None, *, host: str, full: bool
    ) -> OverlayReport:
        state = held.state
        report = apply(net, state, underlay, host=host, full=full)
        if report.error is None:
            self._held[state.network_id] = held
            self._asked.pop(state.network_id, None)
        else:  # what the kernel has is unknown: the next delta asks for the whole state
            self._held.pop(state.network_id, None)
        return report


def _patched(held: Held, delta: OverlayDelta) -> Held | None:
    """The held state with the delta applied, or None if its digest is not the delta's."""
    if held.state.uuid != delta.uuid or held.state.generation != delta.generation:
        return None  # another run of the network: only a whole state starts it
    remote, total, macs = dict(held.remote), held.total, set(delta.macs)
    for mac in macs:
        if (dst := remote.pop(mac, None)) is not None:
            total = add_sums(total, -entry_hash(mac, dst))
    for mac, dst in delta.remote:
        if mac not in macs or mac in remote:
            return None  # malformed: an entry the delta did not say it changes
        remote[mac] = dst
        total = add_sums(total, entry_hash(mac, dst))
    head = delta.model_dump(exclude={"macs", "remote"})
    if OverlayState(**head).digest_with(total) != delta.digest:
        return None
    # the fields were validated as the delta's: no need to check 900 entries again
    state = OverlayState.model_construct(**head, remote=sorted(remote.items()))
    return Held(state, remote, total)


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
