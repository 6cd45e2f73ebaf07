"""HostNet: the host's bridges, taps and FDB entries, as virtnet wants them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from . import bridges, links, nlsock, overlay_firewall, ports, vxlan
from .errors import KernelError
from .nsexec import NamespaceRunner, tun_openable
from .specs import (
    BridgeResult,
    BridgeSpec,
    HostCapabilities,
    OwnedDevice,
    PortRef,
    PortSpec,
)

CAP_NET_ADMIN = 12


class HostNet:
    """Kernel network state of one host, or of the network namespace ``netns``.

    Not thread-safe beyond its socket lock: give each worker thread its own HostNet.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._runner = NamespaceRunner(netns)
        try:
            self._sock: nlsock.NetlinkSocket = self._runner.run(nlsock.NetlinkSocket)
        except BaseException:
            self._runner.close()
            raise
        self._vlan_supported: bool | None = None
        self._ipr: Any = None
        #: per VXLAN device: the static part of its spec and its table as last written
        self._overlays: dict[str, tuple[tuple[Any, ...], vxlan.Applied]] = {}
        self._firewalls: dict[int, overlay_firewall.FirewallSpec] = {}

    # -- lifecycle

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
        self._sock.close()
        self._runner.close()

    def __enter__(self) -> HostNet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- host

    def probe(self) -> HostCapabilities:
        if self._vlan_supported is None:
            try:
                self._vlan_supported = bridges.probe_vlan_filtering(self._sock)
            except KernelError:
                self._vlan_supported = False
        return HostCapabilities(
            kernel_release=os.uname().release,
            vlan_filtering=self._vlan_supported,
            tun=self._runner.run(tun_openable),
            net_admin=_has_net_admin(),
        )

    def owned_devices(self) -> list[OwnedDevice]:
        out = []
        for link in links.dump_links(self._sock):
            owner = links.owner_of(link)
            if owner is not None:
                out.append(OwnedDevice(link.name, links.device_kind(link), owner))
        return out

    # -- bridges

    def ensure_bridge(self, spec: BridgeSpec) -> BridgeResult:
        result, self._vlan_supported = bridges.ensure_bridge(self._sock, spec, self._vlan_supported)
        return result

    def remove_bridge(self, name: str, owner: str) -> bool:
        return bridges.remove_bridge(self._sock, name, owner)

    def check_bridge(self, name: str) -> None:
        bridges.check_bridge(self._sock, name)

    # -- ports

    def plug(self, spec: PortSpec) -> None:
        error = ports.plug_many(self._sock, self._runner, [spec])[0]
        if error is not None:
            raise error

    def plug_many(self, specs: Sequence[PortSpec]) -> list[Exception | None]:
        return list(ports.plug_many(self._sock, self._runner, specs))

    def unplug(
        self, tap: str, owner: str, bridge: str | None = None, guest_mac: str | None = None
    ) -> bool:
        result = ports.unplug_many(self._sock, [PortRef(tap, owner, bridge, guest_mac)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def unplug_many(self, refs: Sequence[PortSpec | PortRef]) -> list[bool | Exception]:
        """Unplug many ports; True (removed), False (already gone) or the error, per port."""
        return list(ports.unplug_many(self._sock, refs))

    def set_fdb(self, bridge: str, tap: str, guest_mac: str, present: bool) -> None:
        ports.set_fdb(self._sock, bridge, tap, guest_mac, present)

    def port_state(self, tap: str) -> dict[str, Any] | None:
        return ports.port_state(self._sock, tap)

    # -- overlays

    @property
    def ipr(self) -> Any:
        if self._ipr is None:
            from pyroute2 import IPRoute

            self._ipr = IPRoute(netns=self.netns) if self.netns else IPRoute()
        return self._ipr

    def ensure_overlay(
        self, spec: vxlan.OverlaySpec, allowed: tuple[str, ...], *, full: bool = False
    ) -> vxlan.OverlayResult:
        """VXLAN device, its forwarding table and its firewall chain as ``spec`` says.

        A repeated call with the same device settings only writes the table's delta, unless
        ``full`` (then the device is checked and its table read back from the kernel)."""
        static = (spec.owner, spec.bridge, spec.vni, spec.port, spec.local, spec.flood, spec.mtu)
        cached = self._overlays.get(spec.device)
        created, requests = False, 0
        if full or cached is None or cached[0] != static:
            index, created, requests = vxlan.ensure_device(self._sock, self.ipr, spec)
            applied = vxlan.Applied(index) if created else vxlan.read_table(self.ipr, index)
            requests += 0 if created else 1
        else:
            applied = cached[1]
        try:
            applied, count = vxlan.sync_table(self._sock, applied, spec)
        except KernelError:
            self._overlays.pop(spec.device, None)  # unknown state: read it back next time
            raise
        self._overlays[spec.device] = (static, applied)
        requests += count + self._ensure_firewall(spec, allowed, full)
        remote = len(applied.masters)
        return vxlan.OverlayResult(spec.device, created, remote, requests)

    def _ensure_firewall(
        self, spec: vxlan.OverlaySpec, allowed: tuple[str, ...], full: bool
    ) -> int:
        wanted = overlay_firewall.FirewallSpec(spec.vni, spec.port, tuple(sorted(allowed)))
        if not full and self._firewalls.get(spec.vni) == wanted:
            return 0
        self._runner.run(overlay_firewall.ensure, wanted)
        self._firewalls[spec.vni] = wanted
        return 1

    def remove_overlay(self, vni: int, owner: str) -> bool:
        """Remove the network's VXLAN device (entries go with it) and its firewall chain."""
        name = vxlan.device_name(vni)
        self._overlays.pop(name, None)
        self._firewalls.pop(vni, None)
        removed = vxlan.remove_device(self._sock, name, owner)
        return self._runner.run(overlay_firewall.remove, vni) or removed

    def underlay_mtu(self, address: str) -> int | None:
        """The MTU of the device holding the underlay ``address``; None when no device has it."""
        for entry in self.ipr.get_addr(address=address):
            link = links.get_link_by_index(self._sock, entry["index"])
            if link is not None:
                return link.mtu
        return None

    def overlay_chains(self) -> list[int]:
        """VNIs that have a chain in virtnet's overlay firewall table on this host."""
        return self._runner.run(overlay_firewall.chains)


def _has_net_admin() -> bool:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return False
