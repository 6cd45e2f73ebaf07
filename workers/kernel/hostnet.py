"""HostNet: the host's bridges, taps and FDB entries, as virtnet wants them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute

from . import bridges, guestns, links, nlsock, ports, tapuse, veth
from .errors import KernelError, from_errno
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
        self._ipr: IPRoute | None = None  # pyroute2, for veth pairs and namespaces

    @property
    def host_netns(self) -> str:
        return self.netns or ""

    def _pyroute2(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute(netns=self.netns) if self.netns else IPRoute()
        return self._ipr

    # -- lifecycle

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
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
        error = self.plug_many([spec])[0]
        if error is not None:
            raise error

    def plug_many(self, specs: Sequence[PortSpec]) -> list[Exception | None]:
        """Taps in one batch; a container's veth pairs one by one (rarer, and each touches
        its own namespace)."""
        results: list[Exception | None] = [None] * len(specs)
        taps = [(i, s) for i, s in enumerate(specs) if s.kind == "tap"]
        tapuse.reuse_held(self._sock, [s for _, s in taps if s.reuse_held])
        for (i, _), error in zip(
            taps, ports.plug_many(self._sock, self._runner, [s for _, s in taps]), strict=True
        ):
            results[i] = error
        for i, spec in enumerate(specs):
            if spec.kind == "veth":
                results[i] = self._guarded(veth.plug, self._sock, self._pyroute2(), spec)
        return results

    def _guarded(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args, self.host_netns)
        except KernelError as exc:
            return exc
        except OSError as exc:  # pyroute2's NetlinkError is one
            code = getattr(exc, "code", None) or exc.errno or 5
            return from_errno(code, f"{fn.__module__.rsplit('.', 1)[-1]} {args[-1].tap}")

    def unplug(
        self, tap: str, owner: str, bridge: str | None = None, guest_mac: str | None = None
    ) -> bool:
        result = ports.unplug_many(self._sock, [PortRef(tap, owner, bridge, guest_mac)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def unplug_many(self, refs: Sequence[PortSpec | PortRef]) -> list[bool | Exception]:
        """Unplug many ports; True (removed), False (already gone) or the error, per port."""
        results: list[bool | Exception] = [False] * len(refs)
        taps = [(i, r) for i, r in enumerate(refs) if r.kind == "tap"]
        for (i, _), result in zip(
            taps, ports.unplug_many(self._sock, [r for _, r in taps]), strict=True
        ):
            results[i] = result
        for i, ref in enumerate(refs):
            if ref.kind == "veth":
                results[i] = self._guarded(veth.unplug, self._sock, ref)
        return results

    def held_taps(self, names: Sequence[str]) -> set[str]:
        """Taps a process (a hypervisor) holds open."""
        return tapuse.held(self._sock, names) if names else set()

    # -- containers' namespaces

    def created_namespaces(self) -> list[str]:
        return guestns.created(self.host_netns)

    def remove_namespace_if_unused(self, name: str) -> bool:
        return guestns.remove_if_unused(name, self.host_netns)

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
