"""FakeHostNet: HostNet's behaviour in memory, for tests of the code above the kernel layer.

It needs no root and keeps the same rules: ownership by alias, DeviceConflict on foreign
devices, BridgeMissing, BridgeFull at 1023 ports, idempotent plug/unplug, degraded VLAN
filtering. tests/kernel/test_kernel_fake.py checks it against the real thing.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from . import links, vxlan
from .bridges import NO_VLAN_FILTERING, effective_delay
from .dnsmasq import DnsmasqSupervisor
from .errors import BridgeFull, BridgeMissing, DeviceConflict, KernelError
from .specs import (
    ALIAS_PREFIX,
    Bandwidth,
    BridgeResult,
    BridgeSpec,
    HostCapabilities,
    OwnedDevice,
    PortRef,
    PortSpec,
    owner_alias,
)

MAX_PORTS = 1023


@dataclass
class FakeDevice:
    name: str
    kind: str  # "bridge", "tap" or anything else for foreign devices
    alias: str | None = None
    index: int = 0
    mac: str = "02:00:00:00:00:01"
    mtu: int = 1500
    mtu_by_user: bool = False
    up: bool = False
    master: str | None = None
    stp: bool = False
    forward_delay: int = 1500
    vlan_filtering: bool = False
    learning: bool = True
    unicast_flood: bool = True
    isolated: bool = False
    vnet_hdr: bool = False
    multi_queue: bool = False
    uid: int | None = None
    gid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FakeHostNet:
    def __init__(self, netns: str | None = None, *, vlan_filtering: bool = False) -> None:
        self.netns = netns
        self.devices: dict[str, FakeDevice] = {}
        #: no tc here: bandwidth is the real kernel's (tests/kernel/test_kernel_bandwidth.py)
        self.outbound_modes: dict[str, str | None] = {}
        self.fdb: dict[tuple[str, str], str] = {}  # (bridge, guest mac) -> tap
        self._vlan_supported = vlan_filtering
        self._next_index = 2  # 1 is lo
        self.addrs: dict[str, set[str]] = {}  # bridge -> "addr/prefix"
        self.tables: dict[str, dict[str, Any]] = {}  # nftables table name -> spec
        self.ip_forwarding: set[int] = set()
        self.dnsmasq: DnsmasqSupervisor | None = None  # no processes: dnsmasq needs a real host

    def _add(self, device: FakeDevice) -> FakeDevice:
        device.index = self._next_index
        self._next_index += 1
        self.devices[device.name] = device
        return device

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeHostNet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- test helpers

    def add_foreign(self, name: str, kind: str = "tap", alias: str | None = None) -> FakeDevice:
        """A device virtnet did not create (as `ip link add` would make it)."""
        return self._add(FakeDevice(name, kind, alias))

    # -- host

    def probe(self) -> HostCapabilities:
        return HostCapabilities(os.uname().release, self._vlan_supported, True, True, False)

    def owned_devices(self) -> list[OwnedDevice]:
        return [
            OwnedDevice(d.name, d.kind, d.alias[len(ALIAS_PREFIX) :])
            for d in self.devices.values()
            if d.alias and d.alias.startswith(ALIAS_PREFIX)
        ]

    # -- bridges

    def _owned(self, name: str, owner: str, kind: str, what: str) -> FakeDevice | None:
        device = self.devices.get(name)
        if device is None:
            return None
        if device.alias != owner_alias(owner):
            raise DeviceConflict(
                f"{what}: {name} exists and virtnet did not create it for "
                f"{owner!r}; virtnet never adopts it"
            )
        if device.kind != kind:
            raise DeviceConflict(f"{what}: {name} is a {device.kind}, not a {kind}")
        return device

    def ensure_bridge(self, spec: BridgeSpec) -> BridgeResult:
        links.check_ifname(spec.name, f"bridge {spec.name}")
        device = self._owned(spec.name, spec.owner, "bridge", f"ensuring bridge {spec.name}")
        created = device is None
        if device is None:
            device = self._add(FakeDevice(spec.name, "bridge", owner_alias(spec.owner)))
        if spec.mac is not None:
            device.mac = spec.mac.lower()
        if spec.mtu is not None and spec.mtu != device.mtu:
            device.mtu, device.mtu_by_user = spec.mtu, True
        device.up = True
        device.stp = spec.stp
        device.forward_delay = effective_delay(spec)
        device.vlan_filtering = spec.vlan_filtering and self._vlan_supported
        degraded = NO_VLAN_FILTERING if spec.vlan_filtering and not self._vlan_supported else None
        return BridgeResult(spec.name, created, device.vlan_filtering, degraded)

    def remove_bridge(self, name: str, owner: str) -> bool:
        if self._owned(name, owner, "bridge", f"removing bridge {name}") is None:
            return False
        del self.devices[name]
        for device in self.devices.values():
            if device.master == name:
                device.master = None
        self.fdb = {k: v for k, v in self.fdb.items() if k[0] != name}
        self.addrs.pop(name, None)
        return True

    def ensure_addresses(self, bridge: str, wanted: Sequence[str]) -> tuple[list[str], list[str]]:
        if bridge not in self.devices:
            raise KernelError(f"device {bridge} does not exist", errno.ENODEV)
        have, want = self.addrs.get(bridge, set()), set(wanted)
        self.addrs[bridge] = want
        return sorted(want - have), sorted(have - want)

    def addresses(self, bridge: str) -> list[str]:
        return sorted(self.addrs.get(bridge, set()))

    def ensure_firewall(self, spec: dict[str, Any]) -> None:
        self.tables[spec["table"]] = spec

    def remove_firewall(self, tables: Sequence[str]) -> None:
        for name in tables:
            if not name.startswith("virtnet_"):
                raise KernelError(f"refusing to delete nftables table {name!r}", errno.EPERM)
            self.tables.pop(name, None)

    def firewall_tables(self) -> set[str]:
        return set(self.tables)

    def enable_ip_forwarding(self, versions: set[int]) -> None:
        self.ip_forwarding |= versions

    def check_bridge(self, name: str) -> None:
        device = self.devices.get(name)
        if device is None:
            raise BridgeMissing(f"bridge {name} does not exist on this host", errno.ENODEV)
        if device.kind != "bridge":
            raise BridgeMissing(
                f"{name} exists on this host but is a {device.kind}, not a bridge", errno.EINVAL
            )

    # -- ports

    def plug(self, spec: PortSpec) -> None:
        error = self.plug_many([spec])[0]
        if error is not None:
            raise error

    def plug_many(
        self, specs: Sequence[PortSpec], *, check_qos: bool = False
    ) -> list[Exception | None]:
        results: list[Exception | None] = []
        seen: set[str] = set()
        for spec in specs:
            try:
                if spec.tap in seen:
                    raise KernelError(f"plugging tap {spec.tap}: the tap appears twice")
                seen.add(spec.tap)
                self._plug(spec)
                results.append(None)
            except KernelError as exc:
                results.append(exc)
        return results

    # -- bandwidth: tc is the real kernel's alone (tests/kernel/test_kernel_bandwidth.py);
    # here a network's limits are only remembered on its bridge

    def ensure_bridge_bandwidth(
        self, bridge: str, owner: str, bandwidth: Bandwidth | None
    ) -> str | None:
        device = self._owned(bridge, owner, "bridge", f"setting bandwidth on bridge {bridge}")
        if device is None:
            raise BridgeMissing(f"setting bandwidth on bridge {bridge}: no such bridge")
        device.extra["bandwidth"] = bandwidth
        return None

    def remove_floors(self, bridge: str, *, keep: set[int]) -> list[int]:
        return []

    def remove_ifb(self, owner: str) -> bool:
        return False

    # -- guests: no process holds a fake tap, and the fake makes no namespaces

    def held_taps(self, names: Sequence[str]) -> set[str]:
        return set()

    def created_namespaces(self) -> list[str]:
        return []

    def remove_namespace_if_unused(self, name: str) -> bool:
        return False

    # -- overlays: VXLAN is the real kernel's alone (tests/kernel)

    def ensure_overlay(
        self, spec: vxlan.OverlaySpec, allowed: tuple[str, ...], *, full: bool = False
    ) -> vxlan.OverlayResult:
        raise KernelError("the fake kernel has no VXLAN")

    def remove_overlay(self, vni: int, owner: str) -> bool:
        return False

    def underlay_mtu(self, address: str) -> int | None:
        return None

    def overlay_chains(self) -> list[int]:
        return []

    def _plug(self, spec: PortSpec) -> None:
        what = f"plugging tap {spec.tap}"
        links.check_ifname(spec.tap, what)
        links.check_mac(spec.guest_mac, what)
        if spec.mac_table_manager not in ("kernel", "libvirt"):
            raise KernelError(f"{what}: macTableManager {spec.mac_table_manager!r} is unknown")
        bridge = self.devices.get(spec.bridge)
        if bridge is None or bridge.kind != "bridge":
            raise BridgeMissing(f"{what}: bridge {spec.bridge} does not exist on this host")
        tap = self._owned(spec.tap, spec.owner, "tap", what)
        if tap is None or tap.master != spec.bridge:
            ports = sum(1 for d in self.devices.values() if d.master == spec.bridge)
            if ports >= MAX_PORTS:
                raise BridgeFull(f"{what}: bridge {spec.bridge} already has 1023 ports")
        if tap is None:
            tap = self._add(FakeDevice(spec.tap, "tap", owner_alias(spec.owner)))
        if tap.master != spec.bridge:
            self._drop_fdb(tap.name)
            tap.learning = tap.unicast_flood = True
        tap.vnet_hdr, tap.multi_queue = spec.vnet_hdr, spec.multi_queue
        tap.uid = spec.owner_uid if spec.owner_uid is not None else tap.uid
        tap.gid = spec.owner_gid if spec.owner_gid is not None else tap.gid
        tap.mac = links.host_mac(spec.guest_mac)
        tap.mtu = spec.mtu or bridge.mtu
        old_master, tap.master = tap.master, spec.bridge
        self._auto_mtu(spec.bridge)
        if old_master is not None and old_master != spec.bridge:
            self._auto_mtu(old_master)
        tap.up = True
        libvirt = spec.mac_table_manager == "libvirt"
        tap.learning = tap.unicast_flood = not libvirt
        tap.isolated = spec.isolated
        key = (spec.bridge, spec.guest_mac.lower())
        if libvirt and spec.fdb:
            self.fdb[key] = spec.tap
        elif self.fdb.get(key) == spec.tap:
            del self.fdb[key]

    def _auto_mtu(self, bridge: str) -> None:
        """The kernel keeps a bridge at its smallest port MTU unless the MTU was set on it."""
        device = self.devices.get(bridge)
        if device is None or device.mtu_by_user:
            return
        mtus = [d.mtu for d in self.devices.values() if d.master == bridge]
        device.mtu = min(mtus) if mtus else 1500

    def _drop_fdb(self, tap: str) -> None:
        self.fdb = {k: v for k, v in self.fdb.items() if v != tap}

    def unplug(
        self, tap: str, owner: str, bridge: str | None = None, guest_mac: str | None = None
    ) -> bool:
        result = self.unplug_many([PortRef(tap, owner, bridge, guest_mac)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def unplug_many(self, refs: Sequence[PortSpec | PortRef]) -> list[bool | Exception]:
        results: list[bool | Exception] = []
        for ref in refs:
            held = self.devices.get(ref.tap)
            if held is not None and held.kind == "tap" and _other_port(held.alias, ref.owner):
                results.append(False)  # the name went to another port: this one's is gone
                continue
            try:
                device = self._owned(ref.tap, ref.owner, "tap", f"unplugging {ref.tap}")
            except KernelError as exc:
                results.append(exc)
                continue
            if device is None:
                results.append(False)
                continue
            self._drop_fdb(ref.tap)
            del self.devices[ref.tap]
            if device.master is not None:
                self._auto_mtu(device.master)
            results.append(True)
        return results

    def set_fdb(self, bridge: str, tap: str, guest_mac: str, present: bool) -> None:
        what = f"{'adding' if present else 'removing'} FDB entry {guest_mac} on {tap}"
        device = self.devices.get(tap)
        if device is None:
            if present:
                raise KernelError(f"{what}: tap {tap} does not exist", errno.ENODEV)
            return
        if not (device.alias or "").startswith(ALIAS_PREFIX):
            raise DeviceConflict(f"{what}: {tap} was not created by virtnet")
        if bridge not in self.devices:
            raise BridgeMissing(f"{what}: bridge {bridge} does not exist", errno.ENODEV)
        if device.master != bridge:
            if present:
                raise KernelError(f"{what}: {tap} is not a port of bridge {bridge}")
            return
        key = (bridge, guest_mac.lower())
        if present:
            self.fdb[key] = tap
        elif self.fdb.get(key) == tap:
            del self.fdb[key]

    def port_state(self, tap: str) -> dict[str, Any] | None:
        device = self.devices.get(tap)
        if device is None:
            return None
        owner = (
            device.alias[len(ALIAS_PREFIX) :]
            if (device.alias and device.alias.startswith(ALIAS_PREFIX))
            else None
        )
        enslaved = device.master is not None
        return {
            "exists": True,
            "name": device.name,
            "index": device.index,
            "kind": device.kind,
            "owner": owner,
            "alias": device.alias,
            "master": device.master,
            "up": device.up,
            "mtu": device.mtu,
            "mac": device.mac,
            "learning": device.learning if enslaved else None,
            "unicast_flood": device.unicast_flood if enslaved else None,
            "mcast_flood": True if enslaved else None,
            "bcast_flood": True if enslaved else None,
            "isolated": device.isolated if enslaved else None,
            "pi": False,
            "vnet_hdr": device.vnet_hdr,
            "multi_queue": device.multi_queue,
            "tun_owner": device.uid,
            "tun_group": device.gid,
            "static_fdb": sorted(m for (_, m), t in self.fdb.items() if t == tap),
        }


def _other_port(alias: str | None, owner: str) -> bool:
    """``alias`` marks a device virtnet made for an owner other than ``owner``."""
    return bool(alias and alias.startswith(links.ALIAS_PREFIX) and alias != owner_alias(owner))
