"""HostNet: the host's bridges, taps and FDB entries, as virtnet wants them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from . import addresses, bridges, links, nftables, nlsock, ports
from .dnsmasq import DnsmasqSupervisor
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

    def __init__(self, netns: str | None = None, state_dir: Path | None = None) -> None:
        self.netns = netns
        self._runner = NamespaceRunner(netns)
        try:
            self._sock: nlsock.NetlinkSocket = self._runner.run(nlsock.NetlinkSocket)
        except BaseException:
            self._runner.close()
            raise
        self._vlan_supported: bool | None = None
        self.dnsmasq: DnsmasqSupervisor | None = None
        if state_dir is not None:
            self.dnsmasq = DnsmasqSupervisor(state_dir / "dnsmasq", self._runner.run)

    # -- lifecycle

    def close(self) -> None:
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

    # -- addresses, forwarding rules

    def ensure_addresses(self, bridge: str, wanted: Sequence[str]) -> tuple[list[str], list[str]]:
        """Give ``bridge`` exactly the ``wanted`` addresses (``addr/prefix``)."""
        return self._runner.run(addresses.ensure_addresses, bridge, list(wanted))

    def addresses(self, bridge: str) -> list[str]:
        return sorted(str(a) for a in self._runner.run(addresses.addresses_of, bridge))

    def ensure_firewall(self, spec: dict[str, Any]) -> None:
        self._runner.run(nftables.ensure_table, spec)

    def remove_firewall(self, tables: Sequence[str]) -> None:
        self._runner.run(nftables.delete_tables, list(tables))

    def firewall_tables(self) -> set[str]:
        return self._runner.run(nftables.owned_tables)

    def enable_ip_forwarding(self, versions: set[int]) -> None:
        self._runner.run(nftables.set_ip_forwarding, versions)

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


def _has_net_admin() -> bool:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return False
