"""What the host agent needs of a host's network: HostNet (the kernel) or FakeHostNet (memory)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from . import vxlan
from .dnsmasq import DnsmasqSupervisor
from .specs import (
    Bandwidth,
    BridgeResult,
    BridgeSpec,
    HostCapabilities,
    OwnedDevice,
    PortRef,
    PortSpec,
)


class HostNetwork(Protocol):
    """The kernel layer's operations; each is idempotent and raises only KernelError."""

    #: per plugged tap, how its outbound limit is applied ('police', 'ifb' or None)
    outbound_modes: dict[str, str | None]

    def probe(self) -> HostCapabilities: ...

    def owned_devices(self) -> list[OwnedDevice]: ...

    def ensure_bridge(self, spec: BridgeSpec) -> BridgeResult: ...

    def remove_bridge(self, name: str, owner: str) -> bool: ...

    def check_bridge(self, name: str) -> None: ...

    def plug_many(
        self, specs: Sequence[PortSpec], *, check_qos: bool = False
    ) -> list[Exception | None]: ...

    def unplug_many(self, refs: Sequence[PortSpec | PortRef]) -> list[bool | Exception]: ...

    def ensure_bridge_bandwidth(
        self, bridge: str, owner: str, bandwidth: Bandwidth | None
    ) -> str | None: ...

    def remove_floors(self, bridge: str, *, keep: set[int]) -> list[int]: ...

    def remove_ifb(self, owner: str) -> bool: ...

    def held_taps(self, names: Sequence[str]) -> set[str]: ...

    def created_namespaces(self) -> list[str]: ...

    def remove_namespace_if_unused(self, name: str) -> bool: ...

    # -- a network's own addresses, firewall and DHCP/DNS (workers/network_services.py)

    #: the supervisor of this host's dnsmasq processes; None without a state directory
    dnsmasq: DnsmasqSupervisor | None

    def ensure_addresses(
        self, bridge: str, wanted: Sequence[str]
    ) -> tuple[list[str], list[str]]: ...

    def ensure_firewall(self, spec: dict[str, Any]) -> None: ...

    def remove_firewall(self, tables: Sequence[str]) -> None: ...

    def firewall_tables(self) -> set[str]: ...

    def enable_ip_forwarding(self, versions: set[int]) -> None: ...

    # -- overlays (workers/overlay.py)

    def ensure_overlay(
        self, spec: vxlan.OverlaySpec, allowed: tuple[str, ...], *, full: bool = False
    ) -> vxlan.OverlayResult: ...

    def remove_overlay(self, vni: int, owner: str) -> bool: ...

    def underlay_mtu(self, address: str) -> int | None: ...

    def overlay_chains(self) -> list[int]: ...

    def close(self) -> None: ...


if TYPE_CHECKING:  # both implementations keep to the protocol (checked by mypy)
    from .fake import FakeHostNet
    from .hostnet import HostNet

    def _implementations(real: HostNet, fake: FakeHostNet) -> list[HostNetwork]:
        return [real, fake]
