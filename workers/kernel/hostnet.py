"""HostNet: the host's bridges, taps and FDB entries, as virtnet wants them."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute

from . import (
    addresses,
    bridges,
    guestns,
    links,
    nftables,
    nl,
    nlsock,
    overlay_firewall,
    port_single,
    ports,
    qos_scan,
    tapuse,
    veth,
    vlanprobe,
    vxlan,
)
from . import bandwidth as bw
from .dnsmasq import DnsmasqSupervisor
from .errors import KernelError, from_errno
from .nsexec import NamespaceRunner, tun_openable
from .qos import Tc
from .specs import (
    Bandwidth,
    BridgeResult,
    BridgeSpec,
    Floor,
    HostCapabilities,
    OwnedDevice,
    PortRef,
    PortSpec,
)

CAP_NET_ADMIN = 12
#: a reconcile's plug batch reads the taps that exist from the link dump of its
#: ``owned_devices`` if that dump is at most this old (seconds)
DUMP_REUSE_SECONDS = 10.0


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
        self._8021q: bool | None = None
        self.dnsmasq: DnsmasqSupervisor | None = None
        if state_dir is not None:
            self.dnsmasq = DnsmasqSupervisor(state_dir / "dnsmasq", self._runner.run)
        self._tc: Tc | None = None
        #: how each port's outbound limit was last made ('police', 'ifb'), by device name
        self.outbound_modes: dict[str, str | None] = {}
        self._ipr: IPRoute | None = None  # pyroute2: veth pairs, namespaces, VXLAN devices
        #: per VXLAN device: the static part of its spec and its table as last written
        self._overlays: dict[str, tuple[tuple[Any, ...], vxlan.Applied]] = {}
        self._firewalls: dict[int, overlay_firewall.FirewallSpec] = {}
        #: the last ``owned_devices`` dump (when, links by name), for a reconcile's plug
        self._dumped: tuple[float, dict[str, nl.Link]] | None = None

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
        if self._tc is not None:
            self._tc.close()
        self._sock.close()
        self._runner.close()

    @property
    def tc(self) -> Tc:
        """pyroute2's tc requests, on a socket opened inside this host's namespace."""
        if self._tc is None:
            self._tc = Tc(IPRoute(netns=self.netns) if self.netns else IPRoute())
        return self._tc

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
        if self._8021q is None:
            try:
                self._8021q = vlanprobe.probe_8021q(self._pyroute2())
            except KernelError:
                self._8021q = False
        return HostCapabilities(
            kernel_release=os.uname().release,
            vlan_filtering=self._vlan_supported,
            tun=self._runner.run(tun_openable),
            net_admin=_has_net_admin(),
            vlan_8021q=self._8021q,
        )

    def owned_devices(self) -> list[OwnedDevice]:
        """Every device virtnet created here. The dump it reads is kept for the plug batch
        of the same reconcile (``plug_many(check_qos=True)``), which would otherwise read
        every link again (0.5 s at 10,000 taps) to adopt the taps that exist."""
        out = []
        dumped = links.dump_links(self._sock)
        for link in dumped:
            owner = links.owner_of(link)
            if owner is not None:
                out.append(OwnedDevice(link.name, links.device_kind(link), owner))
        self._dumped = (time.monotonic(), {link.name: link for link in dumped})
        return out

    def _reuse_dump(self) -> dict[str, nl.Link] | None:
        """The links of the last ``owned_devices`` dump, once, if it is recent."""
        dumped, self._dumped = self._dumped, None
        if dumped is None or time.monotonic() - dumped[0] > DUMP_REUSE_SECONDS:
            return None
        return dumped[1]

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
        error = self.plug_many([spec])[0]
        if error is not None:
            raise error

    def plug_many(
        self, specs: Sequence[PortSpec], *, check_qos: bool = False
    ) -> list[Exception | None]:
        """Plug ports, then their isolation-independent extras: bandwidth and floors.

        ``check_qos`` (reconcile) compares every port's qdiscs, also of ports that never
        had bandwidth; otherwise only ports with (or once with) bandwidth are looked at.
        """
        # a reconcile: the taps found existing are as its owned_devices dump showed them
        # (it changed none of them since but the leftovers it removed, which unplug_many
        # took out of the dump; a name missing from it is looked up)
        known = self._reuse_dump() if check_qos else None
        self._dumped = None
        errors = self._plug_devices(specs, known)
        skip: set[str] = set()
        if check_qos:  # the ports with nothing to compare, found in that dump and a qdisc dump
            wanted = [s for s in specs if qos_scan.wants_no_qos(s)]
            skip = qos_scan.bare(self._sock, wanted, known)
        for pos, spec in enumerate(specs):
            if spec.tap in skip and errors[pos] is None:
                self.outbound_modes[spec.tap] = None
                continue
            if errors[pos] is None and (check_qos or spec.qos or spec.bandwidth or spec.class_id):
                try:
                    self.apply_port_qos(spec)
                except KernelError as exc:
                    errors[pos] = exc
        return errors

    def apply_port_qos(self, spec: PortSpec) -> None:
        self.outbound_modes[spec.tap] = self.set_port_bandwidth(
            spec.tap, spec.owner, spec.bandwidth
        )
        if spec.floor is not None:
            bw.ensure_floor(self.tc, spec.bridge, spec.floor)
        elif spec.class_id is not None:
            bw.remove_floors(self.tc, spec.bridge, {spec.class_id})

    def set_port_bandwidth(
        self, device: str, owner: str, bandwidth: Bandwidth | None
    ) -> str | None:
        """Limits on any bridge port by name (a tap, a veth's host end); returns how the
        outbound side is limited: 'police', 'ifb', or None."""
        links.check_ifname(device, "setting bandwidth")
        return bw.ensure_port(self.tc, device, owner, bandwidth)

    def set_port_isolated(self, device: str, isolated: bool) -> None:
        """The bridge port flag 'isolated' on any bridge port by name."""
        what = f"setting isolated on bridge port {device}"
        links.check_ifname(device, what)
        link = links.get_link(self._sock, device)
        if link is None or not link.master:
            raise KernelError(f"{what}: it is not a bridge port", 19)
        reply = self._sock.transact([ports.brport_request(link.index, isolated=int(isolated))])[0]
        if reply.error:
            raise from_errno(reply.error, what, reply.message)

    def ensure_bridge_bandwidth(
        self, bridge: str, owner: str, bandwidth: Bandwidth | None
    ) -> str | None:
        return bw.ensure_bridge(self.tc, bridge, owner, bandwidth)

    def remove_floors(self, bridge: str, *, keep: set[int]) -> list[int]:
        return bw.remove_floors(self.tc, bridge, keep=keep)

    def set_floor(self, bridge: str, floor: Floor) -> None:
        bw.ensure_floor(self.tc, bridge, floor)

    def remove_ifb(self, owner: str) -> bool:
        return self.tc.remove_ifb(owner)

    def _plug_devices(
        self, specs: Sequence[PortSpec], known: dict[str, nl.Link] | None = None
    ) -> list[Exception | None]:
        """Taps in one batch; a container's veth pairs one by one (rarer, and each touches
        its own namespace)."""
        results: list[Exception | None] = [None] * len(specs)
        taps = [(i, s) for i, s in enumerate(specs) if s.kind == "tap"]
        renamed = tapuse.reuse_held(self._sock, [s for _, s in taps if s.reuse_held])
        if known is not None and renamed:
            known = None  # a held tap changed its name and owner: look every tap up
        tap_specs = [s for _, s in taps]
        for (i, _), error in zip(
            taps, ports.plug_many(self._sock, self._runner, tap_specs, known), strict=True
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
        """Unplug many ports; True (removed), False (already gone) or the error, per port.
        A port's floor class on the bridge and its IFB device go with it."""
        if self._dumped is not None:
            for ref in refs:  # what the last dump shows of them is no longer true
                self._dumped[1].pop(ref.tap, None)
        results = self._unplug_devices(refs)
        for pos, ref in enumerate(refs):
            if isinstance(results[pos], Exception):
                continue
            try:
                if ref.class_id is not None and ref.bridge:
                    bw.remove_floors(self.tc, ref.bridge, {ref.class_id})
                if ref.class_id is not None or getattr(ref, "qos", True):
                    bw.clear_port(self.tc, ref.owner)
            except KernelError as exc:
                results[pos] = exc
            self.outbound_modes.pop(ref.tap, None)
        return results

    def _unplug_devices(self, refs: Sequence[PortSpec | PortRef]) -> list[bool | Exception]:
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
        port_single.set_fdb(self._sock, bridge, tap, guest_mac, present)

    def port_state(self, tap: str) -> dict[str, Any] | None:
        return port_single.port_state(self._sock, tap)

    # -- overlays

    @property
    def ipr(self) -> IPRoute:
        return self._pyroute2()

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
